//! The FleetLock HTTP server: `POST /v1/pre-reboot`, `POST /v1/steady-state`, `GET /metrics`,
//! and a periodic sweep that frees expired slots and re-reads the limits file.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::limits::{valid_group, LimitsFile};
use crate::protocol::{ClientParams, ErrorBody, Request, HEADER, PRE_REBOOT, STEADY_STATE};
use crate::store::{Store, StoreError};

/// A server around a [`Store`].
pub struct Server {
    pub store: Arc<Store>,
    /// Re-read on every sweep when it changed.
    pub limits_file: Option<LimitsFile>,
    pub sweep_interval: Duration,
}

fn error(status: StatusCode, kind: &str, value: String) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        kind: kind.into(),
        value,
    })
    .unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn store_error(e: StoreError) -> Response {
    let (status, kind) = match &e {
        StoreError::Full { .. } => (StatusCode::LOCKED, "slots_full"),
        StoreError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        StoreError::Etcd(_) => (StatusCode::SERVICE_UNAVAILABLE, "etcd_unavailable"),
        StoreError::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_semaphore"),
    };
    if !matches!(e, StoreError::Full { .. }) {
        tracing::warn!("{e}");
    }
    error(status, kind, e.to_string())
}

/// Validates header and body; returns (group, id), or the error kind and text of a 400.
fn client(headers: &HeaderMap, body: &[u8]) -> Result<(String, String), (&'static str, String)> {
    if headers.get(HEADER).map(|v| v.as_bytes()) != Some(b"true") {
        return Err((
            "missing_header",
            format!("FleetLock requests need the header `{HEADER}: true`"),
        ));
    }
    let invalid = |text: String| ("invalid_client_params", text);
    let req: Request = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "body must be {{\"client_params\":{{\"id\":...,\"group\":...}}}}: {e}"
        ))
    })?;
    let ClientParams { id, group } = req.client_params;
    if id.is_empty() || id.len() > 256 {
        return Err(invalid("client_params.id must be 1-256 bytes".into()));
    }
    if !valid_group(&group) {
        return Err(invalid(format!(
            "client_params.group {group:?} must match ^[a-zA-Z0-9.-]+$"
        )));
    }
    Ok((group, id))
}

async fn handle(store: Arc<Store>, api: &'static str, headers: HeaderMap, body: Bytes) -> Response {
    let response = match client(&headers, &body) {
        Err((kind, text)) => error(StatusCode::BAD_REQUEST, kind, text),
        Ok((group, id)) => {
            let s = store.clone();
            let result = tokio::task::spawn_blocking(move || match api {
                "pre_reboot" => s.pre_reboot(&group, &id),
                _ => s.steady_state(&group, &id),
            })
            .await;
            match result {
                Ok(Ok(())) => StatusCode::OK.into_response(),
                Ok(Err(e)) => store_error(e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
            }
        }
    };
    store.metrics.request(api, response.status().as_u16());
    response
}

async fn pre_reboot(State(store): State<Arc<Store>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(store, "pre_reboot", headers, body).await
}

async fn steady_state(
    State(store): State<Arc<Store>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(store, "steady_state", headers, body).await
}

async fn metrics(State(store): State<Arc<Store>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        store.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("FleetLock serves POST {PRE_REBOOT}, POST {STEADY_STATE} and GET /metrics"),
    )
}

/// Frees expired slots and applies a changed limits file, every `interval`.
async fn sweep_loop(store: Arc<Store>, mut limits_file: Option<LimitsFile>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let s = store.clone();
        let file = limits_file.take();
        let result = tokio::task::spawn_blocking(move || {
            let mut file = file;
            if let Some(f) = file.as_mut() {
                match f.reload_if_changed() {
                    Ok(Some(limits)) => {
                        tracing::info!("limits changed: {limits:?}");
                        s.set_limits(limits);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("keeping the previous limits: {e:#}"),
                }
            }
            if let Err(e) = s.sweep() {
                tracing::warn!("expiry sweep failed: {e}");
            }
            file
        })
        .await;
        match result {
            Ok(file) => limits_file = file,
            Err(e) => tracing::warn!("expiry sweep panicked: {e}"),
        }
    }
}

impl Server {
    /// Serves on `listener` until SIGINT/SIGTERM, on a 2-worker tokio runtime (blocking).
    pub fn run(self, listener: std::net::TcpListener) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        runtime.block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(sweep_loop(
                self.store.clone(),
                self.limits_file,
                self.sweep_interval,
            ));
            let app = Router::new()
                .route(PRE_REBOOT, post(pre_reboot))
                .route(STEADY_STATE, post(steady_state))
                .route("/metrics", get(metrics))
                .fallback(not_found)
                .with_state(self.store);
            tracing::info!("FleetLock server listening on {}", listener.local_addr()?);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .context("serving HTTP")
        })
    }
}
