//! Reading one request off a connection: its head (parsed with `httparse`), its framing, and
//! its body, each under a deadline and a size limit.
//!
//! Why not hyper's server: hyper answers its own parse errors (400, 414, 431) with bodiless
//! responses and offers no hook to change them, while Keel promises a `{kind, value}` JSON
//! body for every refusal. Parsing stays with `httparse` (hyper's own parser); this module only
//! adds the limits, the framing rules of RFC 9112 (one Content-Length, or chunked alone) and
//! the deadlines.

use axum::http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::options::{MAX_HEADERS, MAX_HEAD_BYTES, MAX_URI_BYTES};

/// Longest chunk-size line (with extensions) accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 1024;

/// A request refused by the connection layer: answered with `{kind, value}` and closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    pub kind: &'static str,
    pub value: String,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, value: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind,
            value: value.into(),
        }
    }

    fn bad(value: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "bad_request", value)
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

/// What reading a head ended with.
#[derive(Debug)]
pub enum HeadOutcome {
    Request(Head),
    /// The client closed the connection (or it failed) before a request began.
    Closed,
    /// No request began before the deadline.
    Idle,
    /// A request began but its head was not complete before the deadline (slowloris).
    TimedOut,
    Refused(Refusal),
}

/// What reading a body ended with, when it did not yield the body.
#[derive(Debug)]
pub enum BodyError {
    Closed,
    TimedOut,
    Refused(Refusal),
}

enum Fill {
    Eof,
    TimedOut,
}

/// Appends what the stream has to `buf`, waiting at most until `deadline`.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), Fill> {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        Err(_) => Err(Fill::TimedOut),
        Ok(Ok(0)) | Ok(Err(_)) => Err(Fill::Eof),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Whether `buf` holds the blank line ending a head, looking only from `from` (minus the three
/// bytes a terminator may straddle), so a dripped head costs linear time.
fn head_ends(buf: &[u8], from: usize) -> bool {
    let tail = &buf[from.saturating_sub(3)..];
    tail.windows(4).any(|w| w == b"\r\n\r\n") || tail.windows(2).any(|w| w == b"\n\n")
}

/// Reads the next request head into `buf` (which may already hold pipelined bytes) and removes
/// it from there. The first byte must come before `wait_deadline`; from then on the whole head
/// must arrive within `header_timeout` (and never after `wait_deadline` when `strict`, as for
/// a connection's first request, whose clock starts at accept).
pub async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    wait_deadline: Instant,
    header_timeout: std::time::Duration,
    strict: bool,
) -> HeadOutcome {
    let mut deadline = wait_deadline;
    let mut scanned = 0;
    // Whether the head's own clock runs (blank lines before it count as its start too, so
    // dripping them cannot hold a connection).
    let mut begun = strict || !buf.is_empty();
    if begun && !strict {
        deadline = Instant::now() + header_timeout;
    }
    loop {
        // Empty lines before a request line are ignored (RFC 9112, section 2.2).
        let blank = buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if blank > 0 {
            buf.drain(..blank);
            scanned = 0;
        }
        if !buf.is_empty() && (head_ends(buf, scanned) || buf.len() >= MAX_HEAD_BYTES) {
            return match parse_head(buf) {
                Ok(Some((head, consumed))) => {
                    buf.drain(..consumed);
                    HeadOutcome::Request(head)
                }
                Ok(None) => HeadOutcome::Refused(Refusal::bad("incomplete request head")),
                Err(refusal) => HeadOutcome::Refused(refusal),
            };
        }
        scanned = buf.len();
        match fill(stream, buf, deadline).await {
            Ok(()) if !begun => {
                begun = true;
                deadline = Instant::now() + header_timeout;
            }
            Ok(()) => {}
            Err(Fill::Eof) => return HeadOutcome::Closed,
            Err(Fill::TimedOut) if buf.is_empty() => return HeadOutcome::Idle,
            Err(Fill::TimedOut) => return HeadOutcome::TimedOut,
        }
    }
}

/// Parses a head; `Ok(None)` when it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Refusal> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD_BYTES => n,
        Ok(httparse::Status::Complete(_)) => return Err(head_too_large()),
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Ok(None),
        Ok(httparse::Status::Partial) if !buf[..MAX_HEAD_BYTES].contains(&b'\n') => {
            return Err(Refusal::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!("the request line is longer than {MAX_HEAD_BYTES} bytes"),
            ))
        }
        Ok(httparse::Status::Partial) => return Err(head_too_large()),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("more than {MAX_HEADERS} header fields"),
            ))
        }
        Err(e) => return Err(Refusal::bad(format!("malformed request head: {e}"))),
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Ok(None);
    };
    if path.len() > MAX_URI_BYTES {
        return Err(Refusal::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request target has {} bytes, more than {MAX_URI_BYTES}",
                path.len()
            ),
        ));
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| Refusal::bad(format!("invalid method {method:?}")))?;
    let uri: Uri = path
        .parse()
        .map_err(|e| Refusal::bad(format!("invalid request target: {e}")))?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for field in req.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| Refusal::bad(format!("invalid header name {:?}", field.name)))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| Refusal::bad(format!("invalid value of header {name}")))?;
        headers.append(name, value);
    }
    let framing = framing(&headers, version)?;
    let tokens = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let connection = tokens(CONNECTION);
    let keep_alive = !connection.iter().any(|t| t == "close")
        && (version == Version::HTTP_11 || connection.iter().any(|t| t == "keep-alive"));
    let expect_continue = version == Version::HTTP_11 && tokens(EXPECT) == ["100-continue"];
    Ok(Some((
        Head {
            method,
            uri,
            version,
            headers,
            framing,
            keep_alive,
            expect_continue,
        },
        consumed,
    )))
}

fn head_too_large() -> Refusal {
    Refusal::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        format!("the request head is longer than {MAX_HEAD_BYTES} bytes"),
    )
}

/// The body framing of RFC 9112 section 6.3; anything ambiguous (both Content-Length and
/// Transfer-Encoding, differing lengths) is refused, as it is how requests are smuggled.
fn framing(headers: &HeaderMap, version: Version) -> Result<Framing, Refusal> {
    let lengths: Vec<&HeaderValue> = headers.get_all(CONTENT_LENGTH).iter().collect();
    let codings: Vec<&HeaderValue> = headers.get_all(TRANSFER_ENCODING).iter().collect();
    if !codings.is_empty() {
        if !lengths.is_empty() || version == Version::HTTP_10 {
            return Err(Refusal::bad(
                "Transfer-Encoding with Content-Length or in HTTP/1.0 is ambiguous",
            ));
        }
        let chunked_only = codings.len() == 1
            && codings[0]
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if !chunked_only {
            return Err(Refusal::new(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported_transfer_encoding",
                "only Transfer-Encoding: chunked is supported",
            ));
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for value in lengths {
        let parsed = value
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Refusal::bad("Content-Length must be a decimal number"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(Refusal::bad("differing Content-Length values"));
        }
        length = Some(parsed);
    }
    Ok(match length {
        None | Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

/// A refusal of a body larger than `max` bytes.
pub fn too_large(max: u64) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request bodies are limited to {max} bytes"),
    )
}

fn fill_body(r: Result<(), Fill>) -> Result<(), BodyError> {
    r.map_err(|f| match f {
        Fill::Eof => BodyError::Closed,
        Fill::TimedOut => BodyError::TimedOut,
    })
}

/// Reads a body of `framing` (at most `max` bytes) that must be complete by `deadline`; bytes
/// after it stay in `buf` for the next request.
pub async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    framing: Framing,
    max: u64,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) if n > max => Err(BodyError::Refused(too_large(max))),
        Framing::Length(n) => {
            let n = usize::try_from(n).map_err(|_| BodyError::Refused(too_large(max)))?;
            while buf.len() < n {
                fill_body(fill(stream, buf, deadline).await)?;
            }
            Ok(buf.drain(..n).collect())
        }
        Framing::Chunked => read_chunked(stream, buf, max, deadline).await,
    }
}

async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: u64,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    let malformed = |what: &str| BodyError::Refused(Refusal::bad(format!("chunked body: {what}")));
    let mut body = Vec::new();
    // Bytes of `buf` used so far; dropped only before reading more, so that many tiny chunks
    // cost linear time.
    let mut pos = 0;
    loop {
        let (consumed, size) = loop {
            match httparse::parse_chunk_size(&buf[pos..]) {
                Ok(httparse::Status::Complete(found)) => break found,
                Ok(httparse::Status::Partial) if buf.len() - pos <= MAX_CHUNK_LINE => {
                    refill(stream, buf, &mut pos, deadline).await?
                }
                _ => return Err(malformed("invalid chunk size line")),
            }
        };
        pos += consumed;
        if size == 0 {
            buf.drain(..pos);
            skip_trailers(stream, buf, deadline).await?;
            return Ok(body);
        }
        if body.len() as u64 + size > max {
            return Err(BodyError::Refused(too_large(max)));
        }
        // Bounded by `max` just above, which a usize holds.
        let size = size as usize;
        while buf.len() - pos < size + 2 {
            refill(stream, buf, &mut pos, deadline).await?;
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(malformed("chunk data not followed by CRLF"));
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// Drops the `pos` bytes already used from `buf`, then reads more.
async fn refill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    pos: &mut usize,
    deadline: Instant,
) -> Result<(), BodyError> {
    buf.drain(..*pos);
    *pos = 0;
    fill_body(fill(stream, buf, deadline).await)
}

/// Skips the trailer fields after the last chunk, up to the blank line (at most
/// [`MAX_HEAD_BYTES`] of them).
async fn skip_trailers(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), BodyError> {
    let mut pos = 0;
    let mut dropped = 0;
    loop {
        match buf[pos..].iter().position(|b| *b == b'\n') {
            Some(end) => {
                let line = &buf[pos..pos + end];
                let blank = line.is_empty() || line == b"\r";
                pos += end + 1;
                if blank {
                    buf.drain(..pos);
                    return Ok(());
                }
            }
            None => {
                dropped += pos;
                refill(stream, buf, &mut pos, deadline).await?;
            }
        }
        if dropped + buf.len() > MAX_HEAD_BYTES + MAX_CHUNK_LINE {
            return Err(BodyError::Refused(head_too_large()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Result<Option<Head>, Refusal> {
        parse_head(raw.as_bytes()).map(|h| h.map(|(h, _)| h))
    }

    #[test]
    fn head_table() {
        for (raw, want) in [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", Ok(Framing::None)),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                Ok(Framing::Length(5)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
                Ok(Framing::Length(5)),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
                Ok(Framing::Chunked),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Err(400),
            ),
            ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", Err(400)),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Err(501),
            ),
            ("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", Err(400)),
            ("GARBAGE\r\n\r\n", Err(400)),
            ("GET / HTTP/2.0\r\n\r\n", Err(400)),
        ] {
            let got = parsed(raw)
                .map(|h| h.expect("complete").framing)
                .map_err(|r| r.status.as_u16());
            assert_eq!(got, want, "{raw:?}");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES));
        assert_eq!(parsed(&long).unwrap_err().status, 414);
        let endless_line = "GET /".to_string() + &"a".repeat(MAX_HEAD_BYTES);
        assert_eq!(parsed(&endless_line).unwrap_err().status, 414);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parsed(&raw).unwrap_err().status, 431);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parsed(&big).unwrap_err().status, 431);
        assert!(parsed("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn keep_alive_and_expect_table() {
        for (raw, keep, expect) in [
            ("GET / HTTP/1.1\r\n\r\n", true, false),
            ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, false),
            ("GET / HTTP/1.0\r\n\r\n", false, false),
            (
                "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                true,
                false,
            ),
            (
                "POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
                true,
                true,
            ),
        ] {
            let h = parsed(raw).unwrap().unwrap();
            assert_eq!((h.keep_alive, h.expect_continue), (keep, expect), "{raw:?}");
        }
    }

    #[test]
    fn head_end_scan_table() {
        assert!(head_ends(b"GET / HTTP/1.1\r\n\r\n", 0));
        assert!(head_ends(b"GET / HTTP/1.1\r\n\r\n", 16));
        assert!(head_ends(b"GET / HTTP/1.1\n\n", 15));
        assert!(!head_ends(b"GET / HTTP/1.1\r\nHost: x\r\n", 0));
    }
}
