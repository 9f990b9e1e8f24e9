//! The error body every Keel server answers with: `{"kind": "<bounded id>", "value": "<text>"}`.
//! `kind` has bounded cardinality (clients use it as a metric label); `value` says what was
//! wrong and what to do.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Error body: `{"kind": "<bounded id>", "value": "<human text>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: String,
    pub value: String,
}

impl ErrorBody {
    /// The serialized body.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of two strings always serializes; the fallback keeps the shape regardless.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"kind":"internal","value":""}"#.to_vec())
    }
}

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
