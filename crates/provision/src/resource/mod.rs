//! Fetching a config resource: `data:`, `http(s)://` (with the config's CA bundles, headers,
//! timeouts and retries with backoff), `tftp://`; then gzip decompression and hash verification.
//!
//! Contents are streamed: [`Fetcher::fetch_to`] decompresses and hashes while it writes to its
//! [`Sink`] (a file being written in the target root), so a small gzip source that inflates to
//! gigabytes costs a fixed buffer of memory, and its size is bounded by the target filesystem.
//! The hash covers the decompressed bytes (Ignition's rule); a mismatch is found at the end of
//! the stream, before the file is renamed into place.

use keel_http::{Client, HttpError, HttpOptions};
use keel_ignition_config::types::{Config, Resource};
use keel_ignition_config::validate::decode_data_url;
use std::io::Read;
use std::time::{Duration, Instant};
use stream::{pump, Expected, Hasher, Source};

mod stream;

pub use stream::{FileSink, MemorySink, Sink};

/// Default wait for response headers, like Ignition (`ignition.timeouts.httpResponseHeaders`).
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause between retries; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a resource could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source needs the network but this is the offline stage.
    #[error("resource requires networking: {0}")]
    NeedsNetwork(String),
    #[error("unsupported source scheme in {0:?} (keel fetches data:, http:, https: and tftp:)")]
    Unsupported(String),
    #[error("invalid data URL: {0}")]
    DataUrl(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Tftp(#[from] crate::tftp::TftpError),
    #[error("{url}: gave up after {tries} tries in {elapsed:?} (ignition.timeouts.httpTotal); last error: {last}")]
    TimedOut {
        url: String,
        tries: u32,
        elapsed: Duration,
        last: String,
    },
    #[error("unsupported compression {0:?} (only \"gzip\")")]
    Compression(String),
    #[error("decompressing gzip data: {0}")]
    Gunzip(std::io::Error),
    #[error("malformed hash specifier {0:?} (expected sha512-<hex> or sha256-<hex>)")]
    BadHash(String),
    #[error("hash verification failed (calculated {calculated} but expected {expected})")]
    HashMismatch {
        calculated: String,
        expected: String,
    },
    /// Storing the fetched data failed (a full target filesystem is `StorageFull`).
    #[error("{}", write_message(.0))]
    Write(std::io::Error),
}

fn write_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => {
            format!("the target filesystem is full ({e}); the (decompressed) contents do not fit")
        }
        std::io::ErrorKind::FileTooLarge => format!(
            "the (decompressed) source is too large: {e}; configs, CA bundles and key files \
             must be smaller (put large contents in storage.files, which streams to disk)"
        ),
        _ => format!("writing the fetched data: {e}"),
    }
}

/// The most a config, CA bundle or key file may hold (they are kept in memory; file contents
/// stream to disk instead).
pub const MAX_IN_MEMORY: usize = keel_http::DEFAULT_MAX_BODY as usize;

impl FetchError {
    /// Whether trying the source again may help (network trouble; not bad data or a full disk).
    fn is_retryable(&self) -> bool {
        match self {
            FetchError::Http(e) => e.is_retryable(),
            FetchError::Tftp(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Does fetching `url` need the network?
pub fn needs_network(url: &str) -> bool {
    !(url.is_empty() || url.starts_with("data:"))
}

/// How resources are fetched: online or not, the HTTP client built from the config's CAs and
/// timeouts, and the total time budget.
pub struct Fetcher {
    offline: bool,
    client: Option<Client>,
    /// Clients through `ignition.proxy.httpProxy` / `httpsProxy`, and the `noProxy` list.
    http_proxy: Option<Client>,
    https_proxy: Option<Client>,
    no_proxy: Vec<String>,
    header_timeout: Duration,
    total: Option<Duration>,
}

/// Whether `url`'s host is exempt from proxying by a `noProxy` list: `*`, an exact host or
/// IP, or a domain (`example.com` and `.example.com` both cover its subdomains).
pub fn bypasses_proxy(url: &str, no_proxy: &[String]) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    }
    .to_ascii_lowercase();
    no_proxy
        .iter()
        .map(|e| e.trim().to_ascii_lowercase())
        .any(|e| {
            let e = e.split(':').next().unwrap_or("").to_string();
            let domain = e.trim_start_matches('.');
            e == "*"
                || (!domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}"))))
        })
}

impl Fetcher {
    /// A fetcher that only reads `data:` URLs (anything else is [`FetchError::NeedsNetwork`]).
    pub fn offline() -> Fetcher {
        Fetcher {
            offline: true,
            client: None,
            http_proxy: None,
            https_proxy: None,
            no_proxy: Vec::new(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            total: None,
        }
    }

    /// A network fetcher using the timeouts of `cfg` and trusting the given CA bundles.
    pub fn online(cfg: &Config, ca_bundles: Vec<Vec<u8>>) -> Result<Fetcher, FetchError> {
        let t = cfg.ignition.timeouts.clone().unwrap_or_default();
        let header_timeout = match t.http_response_headers {
            Some(0) => Duration::from_secs(3600),
            Some(s) => Duration::from_secs(s.max(0) as u64),
            None => DEFAULT_HEADER_TIMEOUT,
        };
        let total = t
            .http_total
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64));
        let opts = HttpOptions {
            extra_ca_pem: ca_bundles,
            response_header_timeout: Some(header_timeout),
            request_timeout: total,
            user_agent: Some(format!("keel-ignition/{}", env!("CARGO_PKG_VERSION"))),
            proxy: None,
            max_body_bytes: Some(MAX_IN_MEMORY as u64),
            ..HttpOptions::default()
        };
        let proxy = cfg.ignition.proxy.clone().unwrap_or_default();
        let via = |p: &Option<String>| -> Result<Option<Client>, FetchError> {
            match p.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => Ok(Some(Client::new(&HttpOptions {
                    proxy: Some(p.to_string()),
                    ..opts.clone()
                })?)),
                None => Ok(None),
            }
        };
        Ok(Fetcher {
            offline: false,
            http_proxy: via(&proxy.http_proxy)?,
            https_proxy: via(&proxy.https_proxy)?,
            no_proxy: proxy.no_proxy,
            client: Some(Client::new(&opts)?),
            header_timeout,
            total,
        })
    }

    /// Fetches, decompresses and verifies a resource into memory (configs, CA bundles, key
    /// files). An absent or empty source gives no data.
    pub fn fetch(&self, r: &Resource) -> Result<Vec<u8>, FetchError> {
        let mut sink = MemorySink::new(MAX_IN_MEMORY);
        self.fetch_to(r, &mut sink)?;
        Ok(sink.data)
    }

    /// Fetches a resource into `sink`, decompressing and hashing while it streams; returns
    /// the number of bytes written. On a hash mismatch the sink holds the bad data: the caller
    /// must not keep it.
    pub fn fetch_to(&self, r: &Resource, sink: &mut dyn Sink) -> Result<u64, FetchError> {
        let expected = r
            .verification
            .as_ref()
            .and_then(|v| v.hash.as_deref())
            .map(Expected::parse)
            .transpose()?;
        let gzip = match r.compression.as_deref() {
            None | Some("") => false,
            Some("gzip") => true,
            Some(other) => return Err(FetchError::Compression(other.to_string())),
        };
        let mut hasher = Hasher::None;
        let mut written = 0;
        let url = r.source.as_deref().unwrap_or("");
        self.stream_url(url, &headers(r), &mut |body| {
            sink.restart().map_err(FetchError::Write)?;
            hasher = expected.as_ref().map_or(Hasher::None, Expected::hasher);
            let mut source = Source {
                inner: body,
                url,
                failed: None,
            };
            written = pump(&mut source, gzip, sink, &mut hasher)?;
            Ok(())
        })?;
        sink.flush().map_err(FetchError::Write)?;
        if let Some(e) = expected {
            e.check(hasher)?;
        }
        Ok(written)
    }

    /// Fetches the raw bytes behind a URL into memory (see [`Fetcher::stream_url`]).
    pub fn fetch_url(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Vec<u8>, FetchError> {
        let mut sink = MemorySink::new(MAX_IN_MEMORY);
        self.stream_url(url, headers, &mut |body| {
            sink.data.clear();
            let mut source = Source {
                inner: body,
                url,
                failed: None,
            };
            pump(&mut source, false, &mut sink, &mut Hasher::None).map(drop)
        })?;
        Ok(sink.data)
    }

    /// Opens the raw bytes behind a URL and hands them to `consume`, retrying network errors
    /// and 5xx answers (from opening or from `consume` reading) with exponential backoff until
    /// `httpTotal` runs out (forever when it is unset, like Ignition). An empty URL gives an
    /// empty stream.
    pub fn stream_url(
        &self,
        url: &str,
        headers: &[(String, String)],
        consume: &mut dyn FnMut(&mut dyn Read) -> Result<(), FetchError>,
    ) -> Result<(), FetchError> {
        if url.is_empty() {
            return consume(&mut std::io::empty());
        }
        if url.starts_with("data:") {
            let data = decode_data_url(url).map_err(FetchError::DataUrl)?;
            return consume(&mut data.as_slice());
        }
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        if !matches!(scheme, "http" | "https" | "tftp") {
            return Err(FetchError::Unsupported(url.to_string()));
        }
        let direct = match (&self.client, self.offline) {
            (Some(c), false) => c,
            _ => return Err(FetchError::NeedsNetwork(url.to_string())),
        };
        let proxied = match scheme {
            "http" => self.http_proxy.as_ref(),
            "https" => self.https_proxy.as_ref(),
            _ => None,
        };
        let client = match proxied {
            Some(p) if !bypasses_proxy(url, &self.no_proxy) => p,
            _ => direct,
        };
        let start = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            let attempt = match scheme {
                "tftp" => crate::tftp::Transfer::start(url, self.header_timeout)
                    .map_err(FetchError::from)
                    .and_then(|mut transfer| consume(&mut transfer)),
                _ => client
                    .open(url, headers)
                    .map_err(FetchError::from)
                    .and_then(|mut body| consume(&mut body)),
            };
            let e = match attempt {
                Ok(()) => return Ok(()),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            let elapsed = start.elapsed();
            if self.total.is_some_and(|t| elapsed + backoff > t) {
                return Err(FetchError::TimedOut {
                    url: url.to_string(),
                    tries,
                    elapsed,
                    last: e.to_string(),
                });
            }
            tracing::warn!("fetching {url} failed (try {tries}): {e}; retrying in {backoff:?}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Ignition's default request headers, overridden by the resource's own.
fn headers(r: &Resource) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        (
            "Accept".into(),
            "application/vnd.coreos.ignition+json;version=3.5.0, */*;q=0.1".into(),
        ),
        ("Accept-Encoding".into(), "identity".into()),
    ];
    for h in &r.http_headers {
        let (Some(name), Some(value)) = (&h.name, &h.value) else {
            continue;
        };
        out.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        out.push((name.clone(), value.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use keel_ignition_config::types::{HttpHeader, Verification};

    fn res(source: &str, compression: Option<&str>, hash: Option<&str>) -> Resource {
        Resource {
            source: Some(source.into()),
            compression: compression.map(Into::into),
            verification: hash.map(|h| Verification {
                hash: Some(h.into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn offline_fetch_table() {
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(b"hello").unwrap();
            e.finish().unwrap()
        };
        let gz_url = format!(
            "data:;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&gz)
        );
        let sha256_hi = "sha256-8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
        let upper = format!(
            "sha256-{}",
            sha256_hi.trim_start_matches("sha256-").to_uppercase()
        );
        let cases: Vec<(Resource, Result<&[u8], &str>)> = vec![
            (res("data:,hi", None, None), Ok(b"hi")),
            (res("", None, None), Ok(b"")),
            (res(&gz_url, Some("gzip"), None), Ok(b"hello")),
            (res("data:,hi", None, Some(sha256_hi)), Ok(b"hi")),
            (res("data:,hi", None, Some(&upper)), Ok(b"hi")),
            (
                res("data:,ho", None, Some(sha256_hi)),
                Err("hash verification failed"),
            ),
            (
                res("data:,hi", None, Some("md5-00")),
                Err("malformed hash specifier"),
            ),
            (
                res("data:,notgzip", Some("gzip"), None),
                Err("decompressing gzip"),
            ),
            (
                res("data:,x", Some("xz"), None),
                Err("unsupported compression"),
            ),
            (
                res("http://127.0.0.1:9/x", None, None),
                Err("requires networking"),
            ),
            (
                res("tftp://127.0.0.1/x", None, None),
                Err("requires networking"),
            ),
            (
                res("s3://bucket/x", None, None),
                Err("unsupported source scheme"),
            ),
            (res("data:,a b", None, None), Err("invalid data URL")),
        ];
        let f = Fetcher::offline();
        for (r, want) in cases {
            match (want, f.fetch(&r)) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{r:?}"),
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{r:?}: {e}"),
                (w, g) => panic!("{r:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn no_proxy_table() {
        let list: Vec<String> = ["example.com", ".corp.local", "10.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cases = [
            ("http://example.com/x", true),
            ("https://a.b.example.com:8443/x", true),
            ("http://notexample.com/x", false),
            ("http://corp.local/", true),
            ("http://db.corp.local/", true),
            ("http://10.0.0.1:8080/c.ign", true),
            ("http://10.0.0.2/c.ign", false),
            ("http://user@EXAMPLE.com/x", true),
        ];
        for (url, want) in cases {
            assert_eq!(bypasses_proxy(url, &list), want, "{url}");
        }
        assert!(bypasses_proxy("http://anything/", &["*".to_string()]));
        assert!(!bypasses_proxy("http://anything/", &[]));
    }

    #[test]
    fn custom_headers_override_defaults() {
        let mut r = res("http://x/", None, None);
        r.http_headers = vec![HttpHeader {
            name: Some("accept".into()),
            value: Some("text/plain".into()),
        }];
        let h = headers(&r);
        assert_eq!(
            h.iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
                .count(),
            1
        );
        assert!(h.contains(&("accept".into(), "text/plain".into())));
    }
}
