//! The connection layer in-process, over real loopback sockets, against a small router:
//! HTTP/1.1 framing that must stay correct (pipelining, HEAD, 100-continue, HTTP/1.0, chunked
//! bodies with trailers), request smuggling shapes that must be refused, and eviction of the
//! longest-idle connection at a connection cap of 4.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use keel_httpd::{HttpArgs, Limits, Stats};
use keel_testsupport::attack::{
    count_closed, drip_until_closed, exchange, idle_connections, read_answer,
};

const LIMIT: Duration = Duration::from_secs(5);

/// Serves a router with `GET /hello` and `POST /echo` on a free port with `max_connections`
/// and bodies up to `max_body` bytes.
fn start_with(max_connections: u64, max_body: u64) -> (SocketAddr, Arc<Stats>) {
    let args = HttpArgs {
        header_timeout_secs: 2,
        idle_timeout_secs: 20,
        max_connections,
        ..HttpArgs::default()
    };
    let limits = Limits::new(&args, max_body).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let served = stats.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let router = Router::new()
                .route("/hello", get(|| async { "hello" }))
                .route("/echo", post(|body: String| async move { body }));
            keel_httpd::serve(listener, router, limits, served).await;
        });
    });
    (addr, stats)
}

fn start(max_connections: u64) -> (SocketAddr, Arc<Stats>) {
    start_with(max_connections, 1024)
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (addr, _) = start(0);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\none\
          POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\nX-Trailer: t\r\n\r\n\
          HEAD /hello HTTP/1.1\r\n\r\n\
          GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let answers: Vec<&str> = raw.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 4, "{raw}");
    assert!(answers[0].starts_with("200 ") && answers[0].ends_with("\r\n\r\none"));
    assert!(answers[1].starts_with("200 ") && answers[1].ends_with("\r\n\r\ntwo"));
    // HEAD: the GET's length, and no body before the next answer.
    assert!(answers[2].contains("content-length: 5\r\n") && answers[2].ends_with("\r\n\r\n"));
    assert!(answers[3].contains("connection: close") && answers[3].ends_with("\r\n\r\nhello"));
}

#[test]
fn expect_continue_and_http10_close() {
    let (addr, _) = start(0);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"ok").unwrap();
    assert_eq!(read_answer(&mut s, LIMIT).unwrap().body, b"ok");

    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /hello HTTP/1.0\r\n\r\n").unwrap();
    let answer = read_answer(&mut s, LIMIT).unwrap();
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    s.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0, "HTTP/1.0 must be closed");
}

/// Blank lines dripped on a kept-alive connection start the head's clock: the connection is
/// closed after the header timeout (2 s), not held open by each new line.
#[test]
fn dripped_blank_lines_do_not_hold_a_connection() {
    let (addr, _) = start(0);
    let every = Duration::from_millis(300);
    let request = b"GET /hello HTTP/1.1\r\n\r\n";
    let (closed, received) = drip_until_closed(addr, request, b"\r\n", every, LIMIT * 2);
    assert!(String::from_utf8_lossy(&received).ends_with("hello"));
    let closed = closed.expect("blank lines held the connection open");
    assert!(closed < Duration::from_secs(4), "closed after {closed:?}");
}

/// 60,000 one-byte chunks (360 kB on the wire) are decoded in bounded time.
#[test]
fn many_tiny_chunks_cost_linear_time() {
    let (addr, _) = start_with(0, 64 * 1024);
    let mut raw = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..60_000 {
        raw.extend_from_slice(b"1\r\nx\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let started = Instant::now();
    let answer = exchange(addr, &raw, LIMIT);
    let took = started.elapsed();
    assert_eq!((answer.status, answer.body.len()), (200, 60_000));
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// Ambiguous framing (how requests are smuggled past a proxy) is refused, and the connection
/// is closed so nothing after it is read as a request.
#[test]
fn smuggling_shapes_are_refused_and_close_the_connection() {
    let (addr, _) = start(0);
    for raw in [
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabcGET /hello HTTP/1.1\r\n\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n0\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        read_answer(&mut s, LIMIT)
            .unwrap()
            .assert_refusal(400, "bad_request");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{raw:?} answered more: {rest:?}");
    }
    let big = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n";
    exchange(addr, big.as_bytes(), LIMIT).assert_refusal(413, "body_too_large");
}

/// At the cap, each newcomer closes the connection that waited longest without a complete
/// request: a client hoarding idle or dripping connections cannot lock others out.
#[test]
fn newcomers_evict_the_longest_idle_connection_at_the_cap() {
    let (addr, stats) = start(4);
    // The oldest is dripping a body: no better than idle.
    let oldest = idle_connections(addr, 1);
    (&oldest[0])
        .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nx")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let others = idle_connections(addr, 3);
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let answer = exchange(
        addr,
        b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n",
        LIMIT,
    );
    assert_eq!(answer.body, b"hello");
    assert!(started.elapsed() < Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(count_closed(&oldest), 1, "the oldest idle connection stays");
    assert_eq!(
        count_closed(&others),
        0,
        "a younger idle connection was closed"
    );
    assert_eq!(stats.evicted(), 1);
    assert!(stats.open() <= 4);
}
