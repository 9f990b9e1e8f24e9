//! `keel repo serve`: a development static file server for a repository, on loopback only.
//!
//! It speaks just enough HTTP/1.1 for pulls: `GET` and `HEAD` of regular files below the
//! repository, keep-alive, `Content-Length`, 404 for anything else. Every request is logged to
//! stderr as `GET /path STATUS BYTES`. Pulls do not depend on it: any static server works.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// A bound server.
pub struct Server {
    listener: TcpListener,
    root: PathBuf,
}

impl Server {
    /// Bind `127.0.0.1:port` (0: any free port) to serve the directory `root`.
    pub fn bind(root: &Path, port: u16) -> io::Result<Server> {
        let root = root.canonicalize()?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        Ok(Server { listener, root })
    }

    /// The address served.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until the process ends (one thread per connection).
    pub fn run(self) -> io::Result<()> {
        for stream in self.listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    continue;
                }
            };
            let root = self.root.clone();
            std::thread::spawn(move || {
                if let Err(e) = handle(stream, &root) {
                    tracing::debug!("connection: {e}");
                }
            });
        }
        Ok(())
    }
}

/// Map a request target to a file below `root`; None when it would leave `root`.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for c in Path::new(&decoded).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    let real = out.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn handle(stream: TcpStream, root: &Path) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = io::BufWriter::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.by_ref().take(8192).read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut keep_alive = request_line.trim_end().ends_with("HTTP/1.1");
        loop {
            let mut h = String::new();
            if reader.by_ref().take(8192).read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                if name.eq_ignore_ascii_case("connection") {
                    keep_alive = !value.trim().eq_ignore_ascii_case("close");
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let file = match method {
            "GET" | "HEAD" => resolve(root, target)
                .and_then(|p| File::open(&p).ok())
                .filter(|f| f.metadata().is_ok_and(|m| m.is_file())),
            _ => None,
        };
        let conn = if keep_alive { "keep-alive" } else { "close" };
        match file {
            Some(mut f) => {
                let len = f.metadata()?.len();
                write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: {conn}\r\n\r\n")?;
                if method == "GET" {
                    io::copy(&mut f, &mut out)?;
                }
                eprintln!("{method} {target} 200 {len}");
            }
            None => {
                let (code, text) = if method == "GET" || method == "HEAD" {
                    (404, "Not Found")
                } else {
                    (405, "Method Not Allowed")
                };
                write!(
                    out,
                    "HTTP/1.1 {code} {text}\r\nContent-Length: 0\r\nConnection: {conn}\r\n\r\n"
                )?;
                eprintln!("{method} {target} {code} 0");
            }
        }
        out.flush()?;
        if !keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("objects")).unwrap();
        std::fs::write(root.join("objects/a b"), "x").unwrap();
        std::fs::write(root.join("config"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("escape")).unwrap();
        for (target, want) in [
            ("/config", Some("config")),
            ("/objects/a%20b", Some("objects/a b")),
            ("/config?x=1", Some("config")),
            ("/../etc/passwd", None),
            ("/objects/../../x", None),
            ("/escape", None),
            ("/missing", None),
            ("/bad%zz", None),
        ] {
            assert_eq!(
                resolve(&root, target),
                want.map(|w| root.join(w)),
                "{target}"
            );
        }
    }
}
