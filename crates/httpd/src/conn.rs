//! One client connection: requests read by [`crate::head`], answered by the router, written
//! back with an exact Content-Length; kept alive until a deadline passes, the client or the
//! server closes it, or the accept loop evicts it for a newcomer.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::{Method, Request, StatusCode, Version};
use axum::response::Response;
use axum::Router;
use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tower_service::Service;

use crate::error::error_response;
use crate::head::{read_body, read_head, BodyError, Framing, Head, HeadOutcome, Refusal};
use crate::listener::Slot;
use crate::options::Limits;
use crate::stats::Stats;

/// How long a refused connection is drained before it is closed.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
/// Most bytes drained from a refused connection.
const LINGER_BYTES: usize = 1024 * 1024;

/// What a connection needs besides its socket.
pub(crate) struct Context {
    pub router: Router,
    pub limits: Limits,
    pub stats: Arc<Stats>,
}

/// Serves requests on `stream` until it is done (see the module documentation).
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    ctx: Arc<Context>,
    slot: Arc<Slot>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = Vec::new();
    let mut first = true;
    loop {
        // Until a whole request is in, the connection may be evicted for a newcomer: a slow
        // head or body is no better than an idle connection.
        slot.set_idle(true);
        let read = tokio::select! {
            read = read_request(&mut stream, &mut buf, &ctx, first) => read,
            _ = slot.evicted() => return,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        first = false;
        slot.set_idle(false);
        let (head, body) = match read {
            Ok(request) => request,
            Err(Ending::Closed) => return,
            Err(Ending::TimedOut(None)) => return Stats::add(&ctx.stats.timed_out),
            Err(Ending::TimedOut(Some(refusal))) => {
                Stats::add(&ctx.stats.timed_out);
                return refuse(&mut stream, &ctx, refusal).await;
            }
            Err(Ending::Refused(refusal)) => return refuse(&mut stream, &ctx, refusal).await,
        };
        let answer = Answer {
            is_head: head.method == Method::HEAD,
            version: head.version,
            keep_alive: head.keep_alive && !*shutdown.borrow(),
        };
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = head.method;
        *request.uri_mut() = head.uri;
        *request.version_mut() = head.version;
        *request.headers_mut() = head.headers;
        let response = match ctx.router.clone().call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let keep_alive = answer.keep_alive;
        if !send(&mut stream, &ctx, response, answer).await || !keep_alive {
            return;
        }
    }
}

/// Why no request was read.
enum Ending {
    /// The client closed the connection, or it failed.
    Closed,
    /// A deadline passed; with the refusal to send when a request had begun.
    TimedOut(Option<Refusal>),
    Refused(Refusal),
}

/// Reads the next request: its head (the first request's clock starts at accept, later ones
/// may wait the idle timeout to begin), then its body within the body timeout.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    ctx: &Context,
    first: bool,
) -> Result<(Head, Vec<u8>), Ending> {
    let limits = &ctx.limits;
    let wait = if first {
        limits.header_timeout
    } else {
        limits.idle_timeout
    };
    let deadline = Instant::now() + wait;
    let head = match read_head(stream, buf, deadline, limits.header_timeout, first).await {
        HeadOutcome::Request(head) => head,
        HeadOutcome::Closed => return Err(Ending::Closed),
        HeadOutcome::Idle => return Err(Ending::TimedOut(None)),
        HeadOutcome::TimedOut => {
            let refusal = timed_out("head", limits.header_timeout);
            return Err(Ending::TimedOut(Some(refusal)));
        }
        HeadOutcome::Refused(refusal) => return Err(Ending::Refused(refusal)),
    };
    if head.expect_continue && head.framing != Framing::None {
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let sent = tokio::time::timeout(limits.send_timeout, stream.write_all(interim)).await;
        if !matches!(sent, Ok(Ok(()))) {
            return Err(Ending::Closed);
        }
    }
    let deadline = Instant::now() + limits.body_timeout;
    match read_body(stream, buf, head.framing, limits.max_body_bytes, deadline).await {
        Ok(body) => Ok((head, body)),
        Err(BodyError::Closed) => Err(Ending::Closed),
        Err(BodyError::TimedOut) => Err(Ending::TimedOut(Some(timed_out(
            "body",
            limits.body_timeout,
        )))),
        Err(BodyError::Refused(refusal)) => Err(Ending::Refused(refusal)),
    }
}

/// The 408 refusal of a request whose `part` did not arrive within `limit`.
fn timed_out(part: &str, limit: std::time::Duration) -> Refusal {
    Refusal {
        status: StatusCode::REQUEST_TIMEOUT,
        kind: "request_timeout",
        value: format!(
            "the request {part} did not arrive within {} s; send it faster",
            limit.as_secs()
        ),
    }
}

/// How an answer is written.
struct Answer {
    is_head: bool,
    version: Version,
    keep_alive: bool,
}

/// Answers a refusal with its `{kind, value}` body and leaves the connection to be closed.
async fn refuse(stream: &mut TcpStream, ctx: &Context, refusal: Refusal) {
    Stats::add(&ctx.stats.refused);
    tracing::debug!(
        "refused a request ({} {}): {}",
        refusal.status,
        refusal.kind,
        refusal.value
    );
    let response = error_response(refusal.status, refusal.kind, refusal.value);
    let answer = Answer {
        is_head: false,
        version: Version::HTTP_11,
        keep_alive: false,
    };
    if send(stream, ctx, response, answer).await {
        linger(stream).await;
    }
}

/// After a refusal: closes the sending side, then reads and drops what the client still sends
/// (at most [`LINGER_BYTES`] for [`LINGER`]), so the refusal is not lost to a reset caused by
/// unread data (as nginx's lingering close).
async fn linger(stream: &mut TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut chunk = [0u8; 8192];
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// Writes `response` within the send timeout; returns whether it was written.
async fn send(stream: &mut TcpStream, ctx: &Context, response: Response, answer: Answer) -> bool {
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        tracing::warn!("a response body failed; closing the connection");
        return false;
    };
    let status = parts.status;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_length = false;
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH {
            // HEAD answers keep the length the GET answer would have; others get the real one.
            if !answer.is_head {
                continue;
            }
            has_length = true;
        }
        if name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless_status = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !bodiless_status && !has_length {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    if !answer.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if answer.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let body = if answer.is_head || bodiless_status {
        Bytes::new()
    } else {
        body
    };
    // Head and body leave in one vectored write; the body is not copied.
    let mut whole = Bytes::from(out).chain(body);
    match tokio::time::timeout(ctx.limits.send_timeout, stream.write_all_buf(&mut whole)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            Stats::add(&ctx.stats.timed_out);
            false
        }
    }
}
