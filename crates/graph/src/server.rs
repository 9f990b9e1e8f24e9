//! The HTTP server: `GET /v1/graph` (Cincinnati JSON), `GET /metrics` (Prometheus), periodic
//! reload of every stream's sources. Runs on a tokio runtime with 2 worker threads; connections
//! are served by `keel-httpd` (deadlines, connection cap, JSON refusals).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keel_httpd::{error_response, Limits, Stats};

use crate::config::{Config, StreamConfig};
use crate::load::{build_stream, Fetcher, LoadedStream};
use crate::metrics::Metrics;
use crate::query::{self, ApiError};

/// Current time in UNIX seconds; replaceable so tests can pin "now".
pub type Clock = fn() -> i64;

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Largest request body accepted (the API has none; 413 above).
const MAX_BODY_BYTES: u64 = 4096;

struct Shared {
    streams: RwLock<HashMap<String, Arc<LoadedStream>>>,
    metrics: Metrics,
    http: Arc<Stats>,
    clock: Clock,
}

/// A configured server with every stream loaded.
pub struct Server {
    config: Config,
    fetcher: Fetcher,
    shared: Arc<Shared>,
}

impl Server {
    /// Loads every stream once; fails when a source is unreadable or malformed, so a broken
    /// configuration is reported at start rather than served as empty graphs.
    pub fn load(config: Config) -> anyhow::Result<Server> {
        let fetcher = Fetcher::new(&config)?;
        let shared = Arc::new(Shared {
            streams: RwLock::new(HashMap::new()),
            metrics: Metrics::default(),
            http: Arc::default(),
            clock: system_clock,
        });
        for stream in &config.streams {
            let (digest, index, updates) = fetcher.fetch_stream(stream)?;
            let loaded = build_stream(stream, digest, &index, &updates)?;
            install(&shared, stream, loaded);
        }
        Ok(Server {
            config,
            fetcher,
            shared,
        })
    }

    /// Uses `clock` instead of the system time for rollout ramps.
    pub fn with_clock(mut self, clock: Clock) -> Server {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.clock = clock;
        }
        self
    }

    /// Serves on `listener` within `limits` until SIGINT/SIGTERM (blocking). A source read
    /// that hangs does not hold the exit up.
    pub fn run(self, listener: std::net::TcpListener, limits: Limits) -> anyhow::Result<()> {
        keel_httpd::run_blocking(self.serve(listener, limits))
    }

    async fn serve(self, listener: std::net::TcpListener, limits: Limits) -> anyhow::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let interval = Duration::from_secs(self.config.reload_interval_secs);
        for stream in self.config.streams.clone() {
            tokio::spawn(reload_loop(
                self.shared.clone(),
                self.fetcher.for_stream(),
                stream,
                interval,
            ));
        }
        let app = Router::new()
            .route("/v1/graph", get(graph).fallback(not_allowed))
            .route("/metrics", get(metrics).fallback(not_allowed))
            .fallback(not_found)
            .with_state(self.shared.clone());
        tracing::info!(
            "graph server listening on {} (at most {} connections)",
            listener.local_addr()?,
            limits.max_connections
        );
        keel_httpd::serve(listener, app, limits, self.shared.http.clone()).await;
        tracing::info!("graph server stopped");
        Ok(())
    }
}

/// The connection limits of the graph server from its command-line flags.
pub fn limits(args: &keel_httpd::HttpArgs) -> anyhow::Result<Limits> {
    Ok(Limits::new(args, MAX_BODY_BYTES)?)
}

fn install(shared: &Shared, stream: &StreamConfig, loaded: LoadedStream) {
    let sizes = stream
        .architectures
        .iter()
        .filter_map(|a| {
            loaded
                .arches
                .get(a)
                .map(|g| (a.clone(), g.graph.nodes().len(), g.graph.edge_count()))
        })
        .collect();
    shared
        .metrics
        .loaded(&stream.name, loaded.build_time, sizes);
    tracing::info!("stream {} loaded in {:?}", stream.name, loaded.build_time);
    shared
        .streams
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(stream.name.clone(), Arc::new(loaded));
}

/// Re-fetches the stream's sources every `interval` and rebuilds when their content changed.
async fn reload_loop(
    shared: Arc<Shared>,
    fetcher: Fetcher,
    stream: StreamConfig,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let previous = shared
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&stream.name)
            .map(|s| s.inputs);
        let (fetcher2, stream2) = (fetcher.clone(), stream.clone());
        let result =
            tokio::task::spawn_blocking(move || -> anyhow::Result<Option<LoadedStream>> {
                let (digest, index, updates) = fetcher2.fetch_stream(&stream2)?;
                if Some(digest) == previous {
                    return Ok(None);
                }
                build_stream(&stream2, digest, &index, &updates).map(Some)
            })
            .await;
        match result {
            Ok(Ok(Some(loaded))) => install(&shared, &stream, loaded),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                shared.metrics.reload_failed(&stream.name);
                tracing::warn!(
                    "reloading stream {} failed, keeping the previous graph: {e:#}",
                    stream.name
                );
            }
            Err(e) => {
                shared.metrics.reload_failed(&stream.name);
                tracing::warn!("reloading stream {} failed: {e}", stream.name);
            }
        }
    }
}

fn api_error(shared: &Shared, e: ApiError) -> Response {
    shared.metrics.request(e.status);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_response(status, e.kind, e.value)
}

async fn graph(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let q = match query::parse(raw.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return api_error(&shared, e),
    };
    let stream = shared
        .streams
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&q.stream)
        .cloned();
    let Some(stream) = stream else {
        return api_error(
            &shared,
            ApiError::new(
                404,
                "unknown_stream",
                format!("stream {:?} is not served here", q.stream),
            ),
        );
    };
    let Some(arch) = stream.arches.get(&q.basearch) else {
        return api_error(
            &shared,
            ApiError::new(
                404,
                "unknown_basearch",
                format!("stream {:?} has no architecture {:?}", q.stream, q.basearch),
            ),
        );
    };
    let body = arch.answer(q.wariness, (shared.clock)());
    shared.metrics.request(200);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.request(200);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render() + &shared.http.render("keel_graph"),
    )
        .into_response()
}

async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    api_error(
        &shared,
        ApiError::new(
            404,
            "not_found",
            "only GET /v1/graph and GET /metrics exist",
        ),
    )
}

async fn not_allowed(State(shared): State<Arc<Shared>>) -> Response {
    api_error(
        &shared,
        ApiError::new(
            405,
            "method_not_allowed",
            "only GET /v1/graph and GET /metrics exist",
        ),
    )
}
