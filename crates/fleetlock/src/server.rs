//! The FleetLock HTTP server: `POST /v1/pre-reboot`, `POST /v1/steady-state`, `GET /metrics`,
//! and a periodic sweep that frees expired slots and re-reads the limits file. Connections are
//! served by `keel-httpd` (deadlines, connection cap, JSON refusals).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use keel_httpd::{error_response, HttpArgs, Limits, Stats};

use crate::limits::{valid_group, LimitsFile};
use keel_proto::fleetlock::{ClientParams, Request, HEADER, PRE_REBOOT, STEADY_STATE};

/// Largest request body accepted (a FleetLock body is well under 1 KiB; 413 above).
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// The connection limits of the FleetLock server from its command-line flags.
pub fn limits(args: &HttpArgs) -> anyhow::Result<Limits> {
    Ok(Limits::new(args, MAX_BODY_BYTES)?)
}
use crate::store::{Store, StoreError};

/// A server around a [`Store`].
pub struct Server {
    pub store: Arc<Store>,
    /// Re-read on every sweep when it changed.
    pub limits_file: Option<LimitsFile>,
    pub sweep_interval: Duration,
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
    error_response(status, kind, e.to_string())
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
        Err((kind, text)) => error_response(StatusCode::BAD_REQUEST, kind, text),
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
                Err(e) => {
                    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                }
            }
        }
    };
    store.metrics.request(api, response.status().as_u16());
    response
}

async fn pre_reboot(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    handle(app.store, "pre_reboot", headers, body).await
}

async fn steady_state(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    handle(app.store, "steady_state", headers, body).await
}

/// What the handlers share.
#[derive(Clone)]
struct App {
    store: Arc<Store>,
    http: Arc<Stats>,
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.store.metrics.render() + &app.http.render("keel_fleetlock"),
    )
        .into_response()
}

fn endpoints() -> String {
    format!("FleetLock serves POST {PRE_REBOOT}, POST {STEADY_STATE} and GET /metrics")
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", endpoints())
}

async fn not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        endpoints(),
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
            // Keys it skips are logged one by one by the sweep itself.
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
    /// Serves on `listener` within `limits` until SIGINT/SIGTERM, on a 2-worker tokio runtime
    /// (blocking).
    pub fn run(self, listener: std::net::TcpListener, limits: Limits) -> anyhow::Result<()> {
        keel_httpd::run_blocking(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(sweep_loop(
                self.store.clone(),
                self.limits_file,
                self.sweep_interval,
            ));
            let http = Arc::new(Stats::default());
            let app = Router::new()
                .route(PRE_REBOOT, post(pre_reboot).fallback(not_allowed))
                .route(STEADY_STATE, post(steady_state).fallback(not_allowed))
                .route("/metrics", get(metrics).fallback(not_allowed))
                .fallback(not_found)
                .with_state(App {
                    store: self.store,
                    http: http.clone(),
                });
            tracing::info!(
                "FleetLock server listening on {} (at most {} connections)",
                listener.local_addr()?,
                limits.max_connections
            );
            keel_httpd::serve(listener, app, limits, http).await;
            tracing::info!("FleetLock server stopped");
            anyhow::Ok(())
        })
    }
}
