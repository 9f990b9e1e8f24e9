//! The error body every Keel server answers with: `{"kind": "<bounded id>", "value": "<text>"}`.
//! `kind` has bounded cardinality (clients use it as a metric label); `value` says what was
//! wrong and what to do.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
pub use keel_proto::ErrorBody;

/// An error answer with status `status` and a `{kind, value}` JSON body.
pub fn error_response(status: StatusCode, kind: &str, value: impl Into<String>) -> Response {
    let body = ErrorBody {
        kind: kind.into(),
        value: value.into(),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_json(),
    )
        .into_response()
}
