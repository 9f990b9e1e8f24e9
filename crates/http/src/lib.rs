//! The one HTTP(S) client of Keel (ureq 2 with rustls): pulls, graph polls, Ignition and
//! metadata fetches, lock and etcd requests all build their agents here, so they trust the same
//! CAs ([`trust`]: the node's store plus extra PEM bundles, or OSTree's `tls-ca-path` in its
//! place) and follow the same rules: custom headers, a connection pool (sized for parallel
//! transfers when asked), errors that say whether a retry can help, and transfers that cannot
//! hang: a bounded wait for the connection and the response headers, a no-progress timeout and
//! a low-speed limit on every body read, and an optional limit for the whole request
//! ([`stall`]).

// The HTTP client module itself: the one place allowed to build ureq agents and requests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod stall;
mod trust;

pub use stall::{
    within, Stalled, DEFAULT_LOW_SPEED_LIMIT, DEFAULT_LOW_SPEED_TIME, DEFAULT_NO_PROGRESS,
    MAX_STUCK,
};
use stall::{Guarded, SpeedLimits};

pub use trust::{node_ca_bundle, CaRoots, SYSTEM_CA_BUNDLE};

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings for a [`Client`].
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// The CAs trusted besides `extra_ca_pem` (default: the node's store).
    pub roots: CaRoots,
    /// PEM bundles trusted in addition to `roots`.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// How long to wait for the connection, the response headers, and any byte of the body
    /// (None: [`DEFAULT_NO_PROGRESS`]).
    pub response_header_timeout: Option<Duration>,
    /// Limit for establishing a connection (None: `response_header_timeout`).
    pub connect_timeout: Option<Duration>,
    /// Idle connections kept per host, for callers that run transfers in parallel (None:
    /// one).
    pub pool_per_host: Option<usize>,
    /// Limit for one whole request including the body (None: no limit).
    pub request_timeout: Option<Duration>,
    /// `User-Agent` sent with every request.
    pub user_agent: Option<String>,
    /// Send every request through this HTTP proxy (`http://host:port`).
    pub proxy: Option<String>,
    /// Largest body [`Client::get`] and [`Client::post`] hold in memory (None:
    /// [`DEFAULT_MAX_BODY`]); [`Client::open`] streams and leaves the bound to its caller.
    pub max_body_bytes: Option<u64>,
}

/// Default bound of a body held in memory: configs, graphs and lock answers are far smaller,
/// and an endless body from a hostile server must not take the process's memory.
pub const DEFAULT_MAX_BODY: u64 = 64 << 20;

/// Failure of an HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with a non-success status.
    #[error("GET {url}: server answered HTTP {code}")]
    Status { url: String, code: u16 },
    /// Connecting, TLS, or reading the response failed.
    #[error("HTTP request to {url}: {message}")]
    Transport { url: String, message: String },
    /// The server's TLS certificate does not chain to a trusted CA (or is otherwise invalid).
    #[error("HTTPS request to {url}: {message}")]
    Certificate { url: String, message: String },
    /// A CA bundle could not be used.
    #[error("invalid CA certificate bundle: {0}")]
    BadCa(String),
    /// The proxy URL could not be used.
    #[error("invalid proxy {0}")]
    BadProxy(String),
}

impl HttpError {
    /// Whether trying again later may succeed (network errors and 5xx; not 4xx or bad CAs).
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Status { code, .. } => *code >= 500,
            // As a transport failure: callers that wait for a network (Ignition, the agent's
            // polls) keep waiting while an administrator fixes the trust store.
            HttpError::Transport { .. } | HttpError::Certificate { .. } => true,
            HttpError::BadCa(_) | HttpError::BadProxy(_) => false,
        }
    }
}

/// A response whose body is streamed.
pub struct Response {
    /// The HTTP status (below 400).
    pub status: u16,
    /// `Content-Length`, when the server sent one.
    pub length: Option<u64>,
    /// The body, held to the client's stall and low-speed limits.
    pub body: Box<dyn Read + Send + Sync + 'static>,
}

/// A reusable HTTP client.
#[derive(Clone)]
pub struct Client {
    pooled: ureq::Agent,
    fresh: ureq::Agent,
    /// Set once a reused connection left the headers unanswered: from then on every request
    /// uses a fresh connection, whose reads all time out (a helper given up on a reused
    /// connection waits for as long as the server keeps it open).
    avoid_pool: Arc<AtomicBool>,
    limits: SpeedLimits,
    total: Option<Duration>,
    max_body: u64,
    /// Where the trusted CAs came from, for certificate errors.
    trust: Arc<str>,
}

impl Client {
    /// Builds a client trusting `opts.roots` and `opts.extra_ca_pem`.
    pub fn new(opts: &HttpOptions) -> Result<Client, HttpError> {
        let trust = trust::Trust::load(&opts.roots, &opts.extra_ca_pem)?;
        let roots = trust.store;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::BadCa(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let limits = SpeedLimits {
            no_progress: opts.response_header_timeout.unwrap_or(DEFAULT_NO_PROGRESS),
            ..SpeedLimits::default()
        };
        let tls = Arc::new(tls);
        let proxy = match &opts.proxy {
            Some(p) => {
                Some(ureq::Proxy::new(p).map_err(|e| HttpError::BadProxy(format!("{p:?}: {e}")))?)
            }
            None => None,
        };
        // No ureq deadline (`timeout`): it would replace the per-read timeout of the body.
        let agent = |pool: bool| {
            let mut builder = ureq::AgentBuilder::new()
                .tls_config(tls.clone())
                .try_proxy_from_env(false)
                .timeout_connect(opts.connect_timeout.unwrap_or(limits.no_progress))
                .timeout_read(limits.no_progress)
                .timeout_write(limits.no_progress);
            builder = match (pool, opts.pool_per_host) {
                (false, _) => builder.max_idle_connections(0),
                (true, Some(n)) => builder
                    .max_idle_connections(n.saturating_mul(2))
                    .max_idle_connections_per_host(n),
                (true, None) => builder,
            };
            if let Some(p) = &proxy {
                builder = builder.proxy(p.clone());
            }
            if let Some(ua) = &opts.user_agent {
                builder = builder.user_agent(ua);
            }
            builder.build()
        };
        Ok(Client {
            pooled: agent(true),
            fresh: agent(false),
            avoid_pool: Arc::new(AtomicBool::new(false)),
            limits,
            total: opts.request_timeout,
            max_body: opts.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
            trust: trust.from.into(),
        })
    }

    /// The same client with other limits for stuck transfers (the wait for the headers and
    /// for any byte of the body stays the one the client was built with).
    pub fn with_speed_limits(mut self, low_speed_limit: u64, low_speed_time: Duration) -> Client {
        self.limits.low_speed_limit = low_speed_limit;
        self.limits.low_speed_time = low_speed_time;
        self
    }

    /// Sends a request built by `send` and waits for the response headers within the limits;
    /// returns the response with any status, its body guarded.
    fn exchange(
        &self,
        url: &str,
        pooled: bool,
        send: impl FnOnce() -> Result<ureq::Response, Box<ureq::Transport>> + Send + 'static,
    ) -> Result<Response, HttpError> {
        let transport = |message: String| HttpError::Transport {
            url: url.to_string(),
            message,
        };
        let started = Instant::now();
        let wait = self
            .total
            .map_or(self.limits.no_progress, |t| t.min(self.limits.no_progress));
        let resp = within(wait, send)
            .map_err(|s| {
                if pooled
                    && matches!(s, Stalled::Headers(_))
                    && !self.avoid_pool.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        "{url}: a reused connection went silent; using fresh connections from now on"
                    );
                }
                transport(s.to_string())
            })?
            .map_err(|t| {
                // ureq's own read timeout (equal to the wait on a fresh connection) may fire
                // first: the same rule, named the same way.
                if timed_out(t.as_ref()) {
                    transport(Stalled::Headers(wait).to_string())
                } else {
                    self.transport_error(url, t)
                }
            })?;
        Ok(Response {
            status: resp.status(),
            length: resp
                .header("Content-Length")
                .and_then(|v| v.trim().parse().ok()),
            body: Box::new(Guarded::new(
                resp.into_reader(),
                self.limits,
                started,
                self.total,
            )),
        })
    }

    /// A transport failure; a refused server certificate is [`HttpError::Certificate`], naming
    /// the CAs trusted and how to add one.
    fn transport_error(&self, url: &str, t: Box<ureq::Transport>) -> HttpError {
        let url = url.to_string();
        match trust::certificate_refused(t.as_ref()) {
            Some(why) => HttpError::Certificate {
                url,
                message: format!(
                    "TLS certificate refused ({why}): it is not signed by a CA this client \
                     trusts (trusted: {}); add the CA to the node's trust store \
                     (/usr/local/share/ca-certificates/NAME.crt, then update-ca-certificates) \
                     or name its bundle with tls-ca-path",
                    self.trust
                ),
            },
            None => HttpError::Transport {
                url,
                message: t.to_string(),
            },
        }
    }

    /// The agent for the next request, and whether it may reuse a pooled connection.
    fn agent(&self, fresh: bool) -> (&ureq::Agent, bool) {
        if fresh || self.avoid_pool.load(Ordering::Relaxed) {
            (&self.fresh, false)
        } else {
            (&self.pooled, true)
        }
    }

    /// GETs `url` with extra `headers` and returns the body.
    pub fn get(&self, url: &str, headers: &[(String, String)]) -> Result<Vec<u8>, HttpError> {
        read_all(url, &mut self.open(url, headers)?, self.max_body)
    }

    /// GETs `url` with extra `headers` and returns the body as a stream, for callers that
    /// must not hold it in memory (an error reading it is a transport error of `url`). The
    /// stream keeps the client's stall and low-speed limits.
    pub fn open(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Box<dyn Read + Send + Sync + 'static>, HttpError> {
        Ok(self.fetch(url, headers, false)?.body)
    }

    /// GETs `url` with extra `headers`; a status of 400 or more is [`HttpError::Status`].
    /// With `fresh`, or once a reused connection went silent, the request opens a new
    /// connection (a retry should not wait on a connection that failed it).
    pub fn fetch(
        &self,
        url: &str,
        headers: &[(String, String)],
        fresh: bool,
    ) -> Result<Response, HttpError> {
        let (agent, pooled) = self.agent(fresh);
        let mut req = agent.get(url);
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let resp = self.exchange(url, pooled, move || any_status(req.call()))?;
        if resp.status >= 400 {
            return Err(HttpError::Status {
                url: url.to_string(),
                code: resp.status,
            });
        }
        Ok(resp)
    }

    /// POSTs `body` to `url` with extra `headers`. Any HTTP status is an answer (returned with
    /// the body, so callers can read error documents); only transport failures are errors.
    pub fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), HttpError> {
        let (agent, pooled) = self.agent(false);
        let mut req = agent.post(url);
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let body = body.to_vec();
        let mut resp = self.exchange(url, pooled, move || any_status(req.send_bytes(&body)))?;
        Ok((resp.status, read_all(url, &mut resp.body, self.max_body)?))
    }
}

/// Whether a transport failure is a socket timeout (ureq's per-read or connect timeout).
fn timed_out(t: &ureq::Transport) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// A response with any status is an answer; only transport failures are errors.
fn any_status(
    r: Result<ureq::Response, ureq::Error>,
) -> Result<ureq::Response, Box<ureq::Transport>> {
    match r {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => Ok(resp),
        Err(ureq::Error::Transport(t)) => Err(Box::new(t)),
    }
}

fn read_all(url: &str, reader: &mut impl Read, max: u64) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| HttpError::Transport {
            url: url.to_string(),
            message: format!("reading the response body: {e}"),
        })?;
    if body.len() as u64 > max {
        return Err(HttpError::Transport {
            url: url.to_string(),
            message: format!("the response body is larger than {max} bytes; refusing to hold more"),
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ureq's own read timeout (which may fire before the header wait on a fresh connection)
    /// is recognised, so it is reported as the header rule, not as a network error.
    #[test]
    fn ureq_read_timeouts_are_recognised() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let agent = ureq::AgentBuilder::new()
            .timeout_read(Duration::from_millis(200))
            .build();
        let Err(ureq::Error::Transport(t)) = agent.get(&url).call() else {
            panic!("a silent server must time out");
        };
        assert!(timed_out(&t), "{t}");
        drop(listener);
        let Err(ureq::Error::Transport(t)) = agent.get(&url).call() else {
            panic!("a closed port must fail");
        };
        assert!(!timed_out(&t), "{t}");
    }

    #[test]
    fn retry_classification_table() {
        let status = |code| HttpError::Status {
            url: "u".into(),
            code,
        };
        for (err, want) in [
            (status(500), true),
            (status(503), true),
            (status(404), false),
            (status(403), false),
            (
                HttpError::Transport {
                    url: "u".into(),
                    message: "refused".into(),
                },
                true,
            ),
            (
                HttpError::Certificate {
                    url: "u".into(),
                    message: "refused".into(),
                },
                true,
            ),
            (HttpError::BadCa("x".into()), false),
        ] {
            assert_eq!(err.is_retryable(), want, "{err}");
        }
    }

    #[test]
    fn user_ca_bundle_must_hold_a_certificate() {
        let opts = HttpOptions {
            extra_ca_pem: vec![b"not a pem".to_vec()],
            ..Default::default()
        };
        assert!(matches!(Client::new(&opts), Err(HttpError::BadCa(_))));
    }

    #[test]
    fn plain_http_get_and_status() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for (i, stream) in listener.incoming().take(2).enumerate() {
                let mut s = stream.unwrap();
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let reply: &[u8] = if i == 0 {
                    assert!(req.contains("x-test: 1"), "{req}");
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                s.write_all(reply).unwrap();
            }
        });
        let client = Client::new(&HttpOptions::default()).unwrap();
        let url = format!("http://{addr}/x");
        let body = client.get(&url, &[("X-Test".into(), "1".into())]).unwrap();
        assert_eq!(body, b"hello");
        let err = client.get(&url, &[]).unwrap_err();
        assert!(matches!(err, HttpError::Status { code: 404, .. }), "{err}");
        server.join().unwrap();
    }
}
