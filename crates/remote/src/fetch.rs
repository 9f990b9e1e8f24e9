//! Blocking HTTP fetches for pull, over the shared [`keel_http::Client`] (so a pull
//! trusts the same CAs as every other request of the node: its trust store, or the remote's
//! `tls-ca-path`): one shared connection pool, bounded bodies, and retries with exponential
//! backoff on 5xx answers, broken connections and stuck transfers.
//!
//! No attempt can hang: each one, the first included, waits at most
//! [`FetchOptions::read_timeout`] for the response headers and for any byte of the body, and
//! fails when the body arrives slower than [`FetchOptions::low_speed_limit`] bytes/s over
//! [`FetchOptions::low_speed_time`] (libcurl's low-speed rule, with ostree's defaults); see
//! `keel_http::stall`.
//!
//! Bodies are never trusted to be the size the server claims: metadata is read into memory up
//! to a cap (OSTree's 128 MiB by default) and content objects are streamed by the caller through
//! [`CappedReader`], so a wrong, truncated or endless body ends in a clear error with bounded
//! memory.

use keel_http::{self as http, CaRoots, Client, HttpError, HttpOptions};
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// OSTree's limit for one metadata object (`OSTREE_MAX_METADATA_SIZE`).
pub const MAX_METADATA_SIZE: u64 = 128 * 1024 * 1024;

/// Tunables of a [`Fetcher`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Limit for establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait without progress, on every attempt: for the connection and the response
    /// headers together, and for any byte of the body.
    pub read_timeout: Duration,
    /// Slowest acceptable average body speed in bytes/s over `low_speed_time` (0: no limit).
    pub low_speed_limit: u64,
    /// The window the average speed is measured over (zero: no limit).
    pub low_speed_time: Duration,
    /// Attempts after the first for retryable failures.
    pub retries: u32,
    /// Wait before the first retry; doubles for each further one.
    pub backoff: Duration,
    /// Largest metadata object (and summary) accepted.
    pub max_metadata_size: u64,
    /// Requests in flight at once (and pooled connections).
    pub parallel: usize,
    /// The CAs an `https://` remote's certificate must chain to.
    pub roots: CaRoots,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: http::DEFAULT_NO_PROGRESS,
            low_speed_limit: http::DEFAULT_LOW_SPEED_LIMIT,
            low_speed_time: http::DEFAULT_LOW_SPEED_TIME,
            retries: 4,
            backoff: Duration::from_millis(250),
            max_metadata_size: MAX_METADATA_SIZE,
            parallel: 12,
            roots: CaRoots::System,
        }
    }
}

/// A failed fetch. `what` names the thing fetched (e.g. "dirtree object 3f…").
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// HTTP 404.
    #[error("{what}: not found on the server (GET {url}: HTTP 404)")]
    NotFound {
        /// What was fetched.
        what: String,
        /// Full URL.
        url: String,
    },
    /// Another error status.
    #[error("{what}: GET {url}: server answered HTTP {code}")]
    Status {
        /// What was fetched.
        what: String,
        /// Full URL.
        url: String,
        /// HTTP status.
        code: u16,
    },
    /// Connecting, a timeout, or a connection broken mid-body.
    #[error("{what}: GET {url}: {message}")]
    Transport {
        /// What was fetched.
        what: String,
        /// Full URL.
        url: String,
        /// Cause.
        message: String,
    },
    /// A retryable failure that lasted through every attempt.
    #[error("{last}; gave up after {attempts} attempt{}", if *.attempts == 1 { "" } else { "s" })]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The failure of the last one.
        last: Box<FetchError>,
    },
    /// The server's TLS certificate was refused: trying again cannot help.
    #[error("{what}: GET {url}: {message}")]
    Certificate {
        /// What was fetched.
        what: String,
        /// Full URL.
        url: String,
        /// Why, and which CAs are trusted.
        message: String,
    },
    /// The HTTP client could not be set up (an unusable CA bundle).
    #[error("{url}: {source}")]
    Client {
        /// The remote's base URL.
        url: String,
        /// Cause.
        source: HttpError,
    },
    /// The body is unacceptable (too large, or not what was asked for).
    #[error("{what}: GET {url}: {message}")]
    Body {
        /// What was fetched.
        what: String,
        /// Full URL.
        url: String,
        /// Cause.
        message: String,
    },
}

impl FetchError {
    /// Whether another attempt may succeed: 5xx, 408, 429 and transport failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Status { code, .. } => *code >= 500 || *code == 408 || *code == 429,
            FetchError::Transport { .. } => true,
            FetchError::NotFound { .. }
            | FetchError::Body { .. }
            | FetchError::GaveUp { .. }
            | FetchError::Certificate { .. }
            | FetchError::Client { .. } => false,
        }
    }

    /// This failure, as the last of `attempts` attempts.
    pub fn gave_up(self, attempts: u32) -> FetchError {
        FetchError::GaveUp {
            attempts,
            last: Box::new(self),
        }
    }
}

/// A streaming response body.
pub struct Body {
    /// The body stream.
    pub reader: Box<dyn Read + Send + Sync>,
    /// `Content-Length`, when the server sent one.
    pub length: Option<u64>,
    /// The URL fetched.
    pub url: String,
}

/// An HTTP client bound to one remote base URL.
pub struct Fetcher {
    client: Client,
    base: String,
    opts: FetchOptions,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Fetcher {
    /// A client for the repository at `base_url` (`http://` or `https://`); fails when the CAs
    /// of `opts.roots` cannot be used.
    pub fn new(base_url: &str, opts: FetchOptions) -> Result<Fetcher, FetchError> {
        let base = base_url.trim_end_matches('/').to_string();
        let client = Client::new(&HttpOptions {
            roots: opts.roots.clone(),
            response_header_timeout: Some(opts.read_timeout),
            connect_timeout: Some(opts.connect_timeout),
            pool_per_host: Some(opts.parallel.clamp(1, 64)),
            user_agent: Some(concat!("keel/", env!("CARGO_PKG_VERSION")).to_string()),
            ..HttpOptions::default()
        })
        .map_err(|source| FetchError::Client {
            url: base.clone(),
            source,
        })?
        .with_speed_limits(opts.low_speed_limit, opts.low_speed_time);
        Ok(Fetcher {
            client,
            base,
            opts,
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// The URL of `path` below the base.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// GET requests sent so far (including retries).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Body bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Record body bytes received by a streaming reader.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Start one GET of `path` (no retries) and return its body stream, held to the
    /// no-progress and low-speed limits of the options. `attempt` 0 may reuse a pooled
    /// connection; later attempts, and every attempt once a reused connection went silent, use
    /// a fresh one.
    pub fn open(&self, path: &str, what: &str, attempt: u32) -> Result<Body, FetchError> {
        let url = self.url(path);
        self.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("GET {url} (attempt {})", attempt + 1);
        match self.client.fetch(&url, &[], attempt > 0) {
            Ok(resp) => Ok(Body {
                reader: resp.body,
                length: resp.length,
                url,
            }),
            Err(e) => Err(failure(e, what, url)),
        }
    }

    /// Run `attempt` until it succeeds, fails for good, or the retries are used up; sleeps
    /// with exponential backoff in between. A retryable failure of the last attempt comes back
    /// as [`FetchError::GaveUp`].
    pub fn retrying<T>(
        &self,
        mut attempt: impl FnMut(u32) -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let mut n = 0;
        loop {
            match attempt(n) {
                Err(e) if e.is_retryable() && n < self.opts.retries => {
                    let wait = self.backoff(n);
                    tracing::warn!(
                        "{e} (attempt {} of {}); retrying in {wait:?}",
                        n + 1,
                        self.opts.retries + 1
                    );
                    std::thread::sleep(wait);
                    n += 1;
                }
                Err(e) if e.is_retryable() => return Err(e.gave_up(n + 1)),
                other => return other,
            }
        }
    }

    /// The wait before retry number `n` (0-based).
    pub fn backoff(&self, n: u32) -> Duration {
        self.opts.backoff.saturating_mul(1u32 << n.min(16))
    }

    /// GET a whole body of at most `max` bytes, with retries. `Ok(None)` on 404.
    pub fn get_optional(
        &self,
        path: &str,
        what: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let r = self.retrying(|n| {
            let body = self.open(path, what, n)?;
            self.read_body(body, what, max)
        });
        match r {
            Ok(b) => Ok(Some(b)),
            Err(FetchError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a whole body of at most `max` bytes, with retries; 404 is an error.
    pub fn get(&self, path: &str, what: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        self.retrying(|n| {
            let body = self.open(path, what, n)?;
            self.read_body(body, what, max)
        })
    }

    /// Read a body into memory, refusing more than `max` bytes.
    pub fn read_body(&self, body: Body, what: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let url = body.url.clone();
        if let Some(len) = body.length.filter(|l| *l > max) {
            return Err(FetchError::Body {
                what: what.to_string(),
                url,
                message: format!("Content-Length {len} exceeds the {max}-byte limit"),
            });
        }
        let mut reader = CappedReader::new(body, max, what);
        let mut out = Vec::new();
        let res = reader.read_to_end(&mut out);
        self.add_bytes(out.len() as u64);
        res.map_err(|e| reader.error(e))?;
        Ok(out)
    }
}

/// The [`FetchError`] for a failed request.
fn failure(e: HttpError, what: &str, url: String) -> FetchError {
    let what = what.to_string();
    match e {
        HttpError::Status { code: 404, .. } => FetchError::NotFound { what, url },
        HttpError::Status { code, .. } => FetchError::Status { what, url, code },
        HttpError::Transport { message, .. } => FetchError::Transport { what, url, message },
        HttpError::Certificate { message, .. } => FetchError::Certificate { what, url, message },
        e @ (HttpError::BadCa(_) | HttpError::BadProxy(_)) => FetchError::Client { url, source: e },
    }
}

/// Reads a body while enforcing a byte limit and the announced `Content-Length`, and turns read
/// failures into [`FetchError`]s that say what went wrong.
pub struct CappedReader {
    body: Body,
    what: String,
    max: u64,
    read: u64,
    over_limit: bool,
    failed: Option<(io::ErrorKind, String)>,
}

impl CappedReader {
    /// Wrap `body` (of `what`), allowing at most `max` bytes.
    pub fn new(body: Body, max: u64, what: &str) -> CappedReader {
        CappedReader {
            body,
            what: what.to_string(),
            max,
            read: 0,
            over_limit: false,
            failed: None,
        }
    }

    /// Change the limit (e.g. once a header has told the real size).
    pub fn set_max(&mut self, max: u64) {
        self.max = max;
    }

    /// The failure of the body stream itself, if reading it failed (as opposed to a consumer
    /// of the stream rejecting the data).
    pub fn failure(&self) -> Option<FetchError> {
        self.failed
            .as_ref()
            .map(|(kind, msg)| self.error(io::Error::new(*kind, msg.clone())))
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The URL being read.
    pub fn url(&self) -> &str {
        &self.body.url
    }

    /// Explain a read failure `e` of this body.
    pub fn error(&self, e: io::Error) -> FetchError {
        let (what, url) = (self.what.clone(), self.body.url.clone());
        if self.over_limit {
            return FetchError::Body {
                what,
                url,
                message: format!("body is larger than the {}-byte limit", self.max),
            };
        }
        if e.kind() == io::ErrorKind::UnexpectedEof {
            let expected = self
                .body
                .length
                .map(|l| format!(" of the announced {l}"))
                .unwrap_or_default();
            return FetchError::Transport {
                what,
                url,
                message: format!("body truncated after {} bytes{expected}", self.read),
            };
        }
        FetchError::Transport {
            what,
            url,
            message: format!("reading the body after {} bytes: {e}", self.read),
        }
    }
}

impl Read for CappedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.read_inner(buf);
        if let Err(e) = &r {
            self.failed.get_or_insert((e.kind(), e.to_string()));
        }
        r
    }
}

impl CappedReader {
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = (self.max + 1).saturating_sub(self.read);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if want == 0 {
            self.over_limit = true;
            return Err(io::Error::other("body over the limit"));
        }
        let n = self.body.reader.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.max {
            self.over_limit = true;
            return Err(io::Error::other("body over the limit"));
        }
        if n == 0 && want > 0 {
            if let Some(len) = self.body.length.filter(|l| self.read < *l) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} of {len} bytes", self.read),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &'static [u8], length: Option<u64>) -> Body {
        Body {
            reader: Box::new(data),
            length,
            url: "http://h/x".into(),
        }
    }

    #[test]
    fn capped_reader_table() {
        for (data, length, max, want) in [
            (&b"hello"[..], Some(5), 5, Ok(5)),
            (b"hello", None, 5, Ok(5)),
            (b"hello", None, 4, Err("larger than the 4-byte limit")),
            (
                b"hel",
                Some(5),
                10,
                Err("truncated after 3 bytes of the announced 5"),
            ),
            (b"", None, 0, Ok(0)),
        ] {
            let mut r = CappedReader::new(body(data, length), max, "thing");
            let mut out = Vec::new();
            let got = r.read_to_end(&mut out).map_err(|e| r.error(e).to_string());
            assert_eq!(got.is_err(), r.failure().is_some());
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, w),
                (Err(e), Err(w)) => assert!(e.contains(w) && e.contains("http://h/x"), "{e}"),
                (g, w) => panic!("{data:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn retry_classification_and_backoff() {
        let f = Fetcher::new("http://127.0.0.1:9/", FetchOptions::default()).unwrap();
        assert_eq!(f.url("summary"), "http://127.0.0.1:9/summary");
        assert_eq!(f.backoff(0), Duration::from_millis(250));
        assert_eq!(f.backoff(2), Duration::from_millis(1000));
        let s = |code| FetchError::Status {
            what: "w".into(),
            url: "u".into(),
            code,
        };
        for (e, want) in [
            (s(500), true),
            (s(503), true),
            (s(429), true),
            (s(403), false),
        ] {
            assert_eq!(e.is_retryable(), want, "{e}");
        }
        let nf = FetchError::NotFound {
            what: "w".into(),
            url: "u".into(),
        };
        assert!(!nf.is_retryable());
        let refused = FetchError::Certificate {
            what: "w".into(),
            url: "u".into(),
            message: "TLS certificate refused".into(),
        };
        assert!(
            !refused.is_retryable(),
            "a refused certificate is not retried"
        );
    }
}
