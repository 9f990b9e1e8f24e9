//! Hostile HTTP clients for the server tests (`tests/hostile*.rs`): the real `keel` binary run
//! with a low open-file limit, idle connection floods, slowloris heads and bodies, raw requests
//! the HTTP stack must refuse, and a SIGTERM that must end the process promptly.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::KillOnDrop;

/// The `keel` binary of this build (`target/<profile>/keel`, next to the test's `deps/`).
/// Panics, saying how to build it, when it is missing: a hostile test must not pass unrun.
pub fn keel_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps");
    let keel = profile_dir.join("keel");
    assert!(
        keel.exists(),
        "{} is missing: run `cargo build -p keel` before these tests",
        keel.display()
    );
    keel
}

/// Starts `keel args…` with both open-file limits at `nofile` (as `ulimit -n` does), its
/// stderr going to `log`; killed when dropped.
pub fn spawn_limited(args: &[&str], nofile: u64, log: &Path) -> KillOnDrop {
    let log = std::fs::File::create(log).expect("creating the server log");
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(keel_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting keel");
    KillOnDrop(child)
}

/// The address a server started with `-v` and a listen port of 0 logged ("listening on
/// ADDR") into `log`, once it accepts connections; panics with the log after `limit`. (A port
/// picked by the test could be taken by a parallel test before the server binds it.)
pub fn listening_address(log: &Path, limit: Duration) -> SocketAddr {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let addr = text.lines().find_map(|line| {
            let (_, rest) = line.split_once("listening on ")?;
            rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
        });
        if let Some(addr) = addr {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return addr;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server never listened; its log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer as read off the wire.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Status line and header fields, lowercased.
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// Asserts a `{kind, value}` JSON refusal with `status` and `kind`.
    pub fn assert_refusal(&self, status: u16, kind: &str) {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{}\n{body}", self.head);
        assert!(
            self.head.contains("content-type: application/json"),
            "{}",
            self.head
        );
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {body:?}"));
        assert_eq!(json["kind"], kind, "{body}");
        assert!(
            json["value"].as_str().is_some_and(|v| !v.is_empty()),
            "{body}"
        );
    }
}

/// Sends `raw` on a new connection and reads one answer (at most `limit`).
pub fn exchange(addr: SocketAddr, raw: &[u8], limit: Duration) -> Answer {
    let mut stream = TcpStream::connect_timeout(&addr, limit)
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream.write_all(raw).expect("sending the request");
    read_answer(&mut stream, limit).unwrap_or_else(|e| panic!("reading the answer: {e}"))
}

/// Reads one answer with a Content-Length body; bytes after it are dropped, so this is not
/// for pipelined answers.
pub fn read_answer(stream: &mut TcpStream, limit: Duration) -> std::io::Result<Answer> {
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "no complete answer",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= end + 4 + n) {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = raw[end + 4..end + 4 + length.unwrap_or(0)].to_vec();
                return Ok(Answer { status, head, body });
            }
        }
        match stream.read(&mut chunk)? {
            0 => {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("closed after {:?}", String::from_utf8_lossy(&raw)),
                ))
            }
            n => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A GET of `target` on a new connection.
pub fn get(addr: SocketAddr, target: &str, limit: Duration) -> Answer {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    exchange(addr, raw.as_bytes(), limit)
}

/// Opens `n` connections to `addr` that never send a byte.
pub fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect()
}

/// How many of `streams` the server has closed (read returns end of file or an error).
pub fn count_closed(streams: &[TcpStream]) -> usize {
    streams
        .iter()
        .filter(|s| {
            let _ = s.set_nonblocking(true);
            let mut byte = [0u8; 1];
            let mut s: &TcpStream = s;
            !matches!(s.read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count()
}

/// Sends `prefix`, then one byte of `drip` (cyclically) every `every`, until the server closes
/// the connection or `limit` passes. Returns when it closed (None: still open at `limit`)
/// and what it sent.
pub fn drip_until_closed(
    addr: SocketAddr,
    prefix: &[u8],
    drip: &[u8],
    every: Duration,
    limit: Duration,
) -> (Option<Duration>, Vec<u8>) {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let mut received = Vec::new();
    if stream.write_all(prefix).is_err() {
        return (Some(started.elapsed()), received);
    }
    let _ = stream.set_read_timeout(Some(every));
    let mut chunk = [0u8; 4096];
    let mut next = drip.iter().cycle();
    while started.elapsed() < limit {
        match stream.read(&mut chunk) {
            Ok(0) => return (Some(started.elapsed()), received),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let byte = [*next.next().unwrap_or(&b'x')];
                if stream.write_all(&byte).is_err() {
                    return (Some(started.elapsed()), received);
                }
            }
            Err(_) => return (Some(started.elapsed()), received),
        }
    }
    (None, received)
}

/// Sends SIGTERM to `child` and returns how long it took to exit (panics after `limit`).
pub fn sigterm(child: &mut KillOnDrop, limit: Duration) -> Duration {
    let started = Instant::now();
    let pid = rustix::process::Pid::from_child(&child.0);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("sending SIGTERM");
    loop {
        if child
            .0
            .try_wait()
            .expect("waiting for the server")
            .is_some()
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the server did not exit within {limit:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Slowloris clients running on threads: half send `head` (an unfinished request head) and
/// then a header line a byte at a time, half send `body_head` (a whole head announcing a body)
/// and then the body a byte at a time, one byte every 300 ms.
pub struct SlowClients(Vec<std::thread::JoinHandle<(Option<Duration>, Vec<u8>)>>);

impl SlowClients {
    pub fn start(
        addr: SocketAddr,
        n: usize,
        head: &'static [u8],
        body_head: &'static [u8],
    ) -> SlowClients {
        let every = Duration::from_millis(300);
        let limit = Duration::from_secs(30);
        SlowClients(
            (0..n)
                .map(|i| {
                    std::thread::spawn(move || {
                        if i % 2 == 0 {
                            drip_until_closed(addr, head, b"X: y\r\n", every, limit)
                        } else {
                            drip_until_closed(addr, body_head, b" ", every, limit)
                        }
                    })
                })
                .collect(),
        )
    }

    /// Asserts that the server closed every client within `within`, answering at most 408.
    pub fn assert_cut_within(self, within: Duration) {
        for (i, t) in self.0.into_iter().enumerate() {
            let (closed, received) = t.join().expect("slow client thread");
            let closed = closed.unwrap_or_else(|| panic!("slow client {i} was never closed"));
            assert!(closed < within, "slow client {i} closed after {closed:?}");
            let text = String::from_utf8_lossy(&received);
            assert!(
                received.is_empty() || text.starts_with("HTTP/1.1 408 "),
                "slow client {i}: {text}"
            );
        }
    }
}
