//! The shared HTTP client (provisioning's fetcher, the agent's graph client, the graph server's
//! metadata sources, FleetLock) against servers on 127.0.0.1 that try to keep it waiting: no
//! answer on a kept-alive connection (ureq 2 sets no read timeout for the headers of a reused
//! connection: before, such a GET waited for as long as the server liked), a body dripped one
//! byte at a time, and an endless slow body. Every call ends within a bound derived from the
//! options and names the rule; the client keeps working afterwards.

use keel_http::{Client, HttpOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the server does with a request to a path.
#[derive(Clone, Copy)]
enum Behave {
    /// `200` with the body `hello`, connection kept open.
    Hello,
    /// Never answer.
    Silent,
    /// Announce 1 MB, send one byte every this often.
    Drip(Duration),
    /// Announce nothing and send 4 KB every 100 ms forever (fast enough, never ending).
    Endless,
    /// Announce nothing and send as fast as the client takes it, forever.
    Flood,
}

fn behave(path: &str) -> Behave {
    match path {
        "/silent" => Behave::Silent,
        "/drip" => Behave::Drip(Duration::from_millis(500)),
        "/endless" => Behave::Endless,
        "/flood" => Behave::Flood,
        _ => Behave::Hello,
    }
}

struct Server {
    url: String,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let s = s.clone();
                std::thread::spawn(move || connection(stream.unwrap(), &s));
            }
        });
        Server { url, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn connection(stream: TcpStream, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request = String::new();
        loop {
            let mut line = String::new();
            if !matches!(reader.read_line(&mut line), Ok(1..)) {
                return;
            }
            if line.trim_end().is_empty() {
                break;
            }
            request.push_str(&line);
        }
        if let Some(len) = request.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        }) {
            let mut body = vec![0u8; len.parse().unwrap_or(0)];
            if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                return;
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        let sent = match behave(&path) {
            Behave::Hello => out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Behave::Silent => {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            Behave::Drip(gap) => {
                let mut r = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
                while r.is_ok() && !stop.load(Ordering::SeqCst) {
                    r = out.write_all(b"x");
                    std::thread::sleep(gap);
                }
                return;
            }
            Behave::Endless => {
                let mut r = out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                while r.is_ok() && !stop.load(Ordering::SeqCst) {
                    r = out.write_all(&[b'y'; 4096]);
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
            Behave::Flood => {
                let mut r = out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                while r.is_ok() && !stop.load(Ordering::SeqCst) {
                    r = out.write_all(&[b'z'; 65536]);
                }
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn client(header_secs: u64, total_secs: Option<u64>) -> Client {
    Client::new(&HttpOptions {
        response_header_timeout: Some(Duration::from_secs(header_secs)),
        request_timeout: total_secs.map(Duration::from_secs),
        ..HttpOptions::default()
    })
    .unwrap()
}

/// Runs `f`, asserts it failed within `bound` naming `rule`, and that the client still works.
fn assert_cut(
    c: &Client,
    server: &Server,
    bound: Duration,
    rule: &str,
    f: impl FnOnce() -> String,
) {
    let start = Instant::now();
    let err = f();
    let took = start.elapsed();
    eprintln!("failed after {took:?} (bound {bound:?}): {err}");
    assert!(took < bound, "took {took:?}: {err}");
    assert!(err.contains(rule), "names {rule:?}: {err}");
    let body = c.get(&format!("{}/hello", server.url), &[]).unwrap();
    assert_eq!(body, b"hello", "the client still works");
}

#[test]
fn silent_answer_on_a_reused_connection_is_cut() {
    let server = Server::start();
    let c = client(1, None);
    // One good answer puts the connection in the pool; the next GET reuses it.
    assert_eq!(
        c.get(&format!("{}/hello", server.url), &[]).unwrap(),
        b"hello"
    );
    let url = format!("{}/silent", server.url);
    assert_cut(
        &c,
        &server,
        Duration::from_secs(3),
        "no progress for 1 s",
        || c.get(&url, &[]).unwrap_err().to_string(),
    );
}

#[test]
fn silent_answer_to_a_post_is_cut() {
    let server = Server::start();
    let c = client(1, Some(60));
    let url = format!("{}/silent", server.url);
    assert_cut(
        &c,
        &server,
        Duration::from_secs(3),
        "waiting for the response headers",
        || c.post(&url, &[], b"{}").unwrap_err().to_string(),
    );
}

#[test]
fn dripped_body_is_cut_by_the_low_speed_rule() {
    let server = Server::start();
    let c = client(5, None).with_speed_limits(1000, Duration::from_secs(2));
    let url = format!("{}/drip", server.url);
    assert_cut(
        &c,
        &server,
        Duration::from_secs(5),
        "below 1000 bytes/s over 2 s",
        || c.get(&url, &[]).unwrap_err().to_string(),
    );
}

#[test]
fn endless_body_is_cut_by_the_request_limit() {
    let server = Server::start();
    let c = client(5, Some(2));
    let url = format!("{}/endless", server.url);
    assert_cut(
        &c,
        &server,
        Duration::from_secs(5),
        "took longer than 2 s",
        || c.get(&url, &[]).unwrap_err().to_string(),
    );
}

/// A fast endless body is cut at the in-memory bound, not after the time limit has let it grow
/// (at loopback speed that would be gigabytes).
#[test]
fn fast_endless_body_is_cut_at_the_size_bound() {
    let server = Server::start();
    let c = Client::new(&HttpOptions {
        max_body_bytes: Some(1 << 20),
        ..HttpOptions::default()
    })
    .unwrap();
    let url = format!("{}/flood", server.url);
    assert_cut(
        &c,
        &server,
        Duration::from_secs(5),
        "larger than 1048576 bytes",
        || c.get(&url, &[]).unwrap_err().to_string(),
    );
    let post = c.post(&url, &[], b"{}").unwrap_err().to_string();
    assert!(post.contains("larger than 1048576 bytes"), "{post}");
}
