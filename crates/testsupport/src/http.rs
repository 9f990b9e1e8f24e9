//! HTTP servers for pull tests, all on 127.0.0.1:
//! - [`FaultServer`]: a tiny static server over `std::net` that misbehaves on purpose (error
//!   statuses, resets, stalls, truncated, wrong or endless bodies, dying after N requests) and
//!   records every request path;
//! - [`PyServer`]: `python3 -m http.server`, the plain static server used as the neutral party
//!   in interop tests, with its request log.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fault server does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Serve the file below the root (404 if missing).
    Serve,
    /// Answer with this status and an empty body.
    Status(u16),
    /// Close the connection without answering.
    Close,
    /// Accept and never answer.
    Stall,
    /// Announce the file's full length, send only this many bytes, close.
    Truncate(usize),
    /// Answer 200 with exactly these bytes.
    Body(Vec<u8>),
    /// Answer 200 without a length and send `prefix` followed by `repeat` forever.
    Endless {
        /// Bytes sent first.
        prefix: Vec<u8>,
        /// Bytes repeated until the client hangs up.
        repeat: Vec<u8>,
    },
}

/// Decides the [`Action`] for (request path, how many times this path was asked for before,
/// how many requests the server saw before).
pub type Policy = dyn Fn(&str, usize, usize) -> Action + Send + Sync;

struct Shared {
    root: PathBuf,
    policy: Box<Policy>,
    log: Mutex<Vec<String>>,
    stop: AtomicBool,
    die_after: Option<usize>,
}

/// A misbehaving static file server (see the module docs).
pub struct FaultServer {
    /// Base URL, ending in `/`.
    pub url: String,
    shared: Arc<Shared>,
}

impl FaultServer {
    /// Serve `root` with `policy`. With `die_after`, the server stops listening and drops
    /// every connection once it has seen that many requests (like a killed server).
    pub fn start(
        root: &Path,
        die_after: Option<usize>,
        policy: impl Fn(&str, usize, usize) -> Action + Send + Sync + 'static,
    ) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let url = format!("http://{}/", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            policy: Box::new(policy),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            die_after,
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || {
                            let _ = serve_connection(stream, &s);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FaultServer { url, shared }
    }

    /// Every request path seen so far (without the leading `/`), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Has the server died (see `die_after`)?
    pub fn is_dead(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn serve_connection(stream: TcpStream, s: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || s.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h.trim_end().is_empty() {
                break;
            }
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/");
        let rel = target.trim_start_matches('/').to_string();
        let (before_path, before_all) = {
            let mut log = s.log.lock().unwrap();
            let n = log.iter().filter(|p| **p == rel).count();
            let total = log.len();
            if s.die_after.is_some_and(|d| total >= d) {
                s.stop.store(true, Ordering::SeqCst);
                return Ok(());
            }
            log.push(rel.clone());
            (n, total)
        };
        let rel = rel.as_str();
        match (s.policy)(rel, before_path, before_all) {
            Action::Serve => match std::fs::read(s.root.join(rel)) {
                Ok(data) => respond(&mut out, 200, &data)?,
                Err(_) => respond(&mut out, 404, b"")?,
            },
            Action::Status(code) => respond(&mut out, code, b"")?,
            Action::Body(b) => respond(&mut out, 200, &b)?,
            Action::Close => return Ok(()),
            Action::Stall => {
                while !s.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(());
            }
            Action::Truncate(n) => {
                let data = std::fs::read(s.root.join(rel)).unwrap_or_default();
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    data.len()
                )?;
                out.write_all(&data[..n.min(data.len())])?;
                return Ok(());
            }
            Action::Endless { prefix, repeat } => {
                write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
                out.write_all(&prefix)?;
                while !s.stop.load(Ordering::SeqCst) {
                    out.write_all(&repeat)?;
                }
                return Ok(());
            }
        }
    }
}

fn respond(out: &mut TcpStream, code: u16, body: &[u8]) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}

/// Count requests per path.
pub fn count_paths(paths: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for p in paths {
        *m.entry(p.clone()).or_insert(0) += 1;
    }
    m
}

/// `python3 -m http.server --bind 127.0.0.1 0 --directory DIR`, stopped on drop.
pub struct PyServer {
    /// Base URL, ending in `/`.
    pub url: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl PyServer {
    /// Start serving `dir` on a free port (reads the port from the server's banner).
    pub fn start(dir: &Path) -> PyServer {
        let mut cmd = Command::new("python3");
        cmd.args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "0",
            "--directory",
        ])
        .arg(dir);
        PyServer::spawn(cmd)
    }

    /// Starts a Python server that prints `http.server`'s banner (`… port N …`) on stdout
    /// and logs requests on stderr.
    pub(crate) fn spawn(mut cmd: Command) -> PyServer {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3 (apt-get install python3)");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        stdout.read_line(&mut banner).expect("server banner");
        let port = banner
            .split(" port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no port in the http.server banner {banner:?}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let mut stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                while let Some(i) = text.find('\n') {
                    let line: String = text.drain(..=i).collect();
                    l.lock().unwrap().push(line.trim_end().to_string());
                }
            }
        });
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stdout.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        PyServer {
            url: format!("http://127.0.0.1:{port}/"),
            child,
            log,
        }
    }

    /// Paths of the GET requests logged so far (`"GET /path HTTP/1.1" 200`).
    pub fn get_paths(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.split("\"GET ").nth(1))
            .filter_map(|r| r.split_whitespace().next())
            .map(|p| p.trim_start_matches('/').to_string())
            .collect()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
