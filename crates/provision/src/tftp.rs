//! A minimal TFTP read client (RFC 1350, octet mode, 512-byte blocks) for `tftp://` sources,
//! streamed a block at a time ([`Transfer`]).

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

const OP_RRQ: u16 = 1;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const BLOCK: usize = 512;
/// Retransmissions of one packet before giving up.
const TRIES: u32 = 5;

/// Why a TFTP transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    #[error("invalid tftp URL {0:?} (expected tftp://HOST[:PORT]/PATH)")]
    BadUrl(String),
    #[error("tftp {url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("tftp {url}: server error {code}: {message}")]
    Server {
        url: String,
        code: u16,
        message: String,
    },
    #[error("tftp {url}: no answer after {TRIES} tries of {timeout:?}")]
    Timeout { url: String, timeout: Duration },
}

impl TftpError {
    /// Whether trying again may help (timeouts and socket errors; not "file not found").
    pub fn is_retryable(&self) -> bool {
        matches!(self, TftpError::Io { .. } | TftpError::Timeout { .. })
    }
}

/// Splits `tftp://host[:port]/path` into `host:port` and the file name.
fn split_url(url: &str) -> Result<(String, String), TftpError> {
    let bad = || TftpError::BadUrl(url.to_string());
    let rest = url.strip_prefix("tftp://").ok_or_else(bad)?;
    let (hostport, path) = rest.split_once('/').ok_or_else(bad)?;
    if hostport.is_empty() || path.is_empty() {
        return Err(bad());
    }
    let has_port = !hostport.ends_with(']')
        && hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let hostport = if has_port {
        hostport.to_string()
    } else {
        format!("{hostport}:69")
    };
    Ok((hostport, path.to_string()))
}

fn packet(op: u16, num: u16) -> Vec<u8> {
    let mut p = op.to_be_bytes().to_vec();
    p.extend_from_slice(&num.to_be_bytes());
    p
}

/// Downloads `url` into memory (see [`Transfer`]).
pub fn fetch(url: &str, timeout: Duration) -> Result<Vec<u8>, TftpError> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut Transfer::start(url, timeout)?, &mut out)
        .map_err(|e| from_io(url, e))?;
    Ok(out)
}

/// The [`TftpError`] inside an error from reading a [`Transfer`].
pub fn from_io(url: &str, e: std::io::Error) -> TftpError {
    match e.downcast::<TftpError>() {
        Ok(t) => t,
        Err(source) => TftpError::Io {
            url: url.to_string(),
            source,
        },
    }
}

/// One read transfer, streamed: each `read` hands out (the rest of) the current block and
/// acknowledges it only when the next one is wanted, so only one block is ever held.
/// `timeout` bounds the wait for each packet; a lost packet is sent again up to [`TRIES`]
/// times. Errors are [`TftpError`]s inside `io::Error` (see [`from_io`]).
pub struct Transfer {
    url: String,
    sock: UdpSocket,
    server: SocketAddr,
    peer: Option<SocketAddr>,
    timeout: Duration,
    expected: u16,
    last_sent: Vec<u8>,
    buf: [u8; 4 + BLOCK + 4],
    /// The current block's data is `buf[start..end]`.
    start: usize,
    end: usize,
    done: bool,
}

impl Transfer {
    /// Resolves the server and prepares the read request (sent on the first `read`).
    pub fn start(url: &str, timeout: Duration) -> Result<Transfer, TftpError> {
        let (hostport, file) = split_url(url)?;
        let io = |source| TftpError::Io {
            url: url.to_string(),
            source,
        };
        let server: SocketAddr = hostport
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| TftpError::BadUrl(url.to_string()))?;
        let bind = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let sock = UdpSocket::bind(bind).map_err(io)?;
        let mut rrq = OP_RRQ.to_be_bytes().to_vec();
        rrq.extend_from_slice(file.as_bytes());
        rrq.push(0);
        rrq.extend_from_slice(b"octet\0");
        Ok(Transfer {
            url: url.to_string(),
            sock,
            server,
            peer: None,
            timeout,
            expected: 1,
            last_sent: rrq,
            buf: [0u8; 4 + BLOCK + 4],
            start: 0,
            end: 0,
            done: false,
        })
    }

    fn io(&self, source: std::io::Error) -> TftpError {
        TftpError::Io {
            url: self.url.clone(),
            source,
        }
    }

    /// Sends the last packet (the request or the previous ACK) and waits for the expected
    /// block, resending on silence; leaves its data in `buf[start..end]`.
    fn next_block(&mut self) -> Result<(), TftpError> {
        let mut tries = 0;
        loop {
            self.sock
                .send_to(&self.last_sent, self.peer.unwrap_or(self.server))
                .map_err(|e| self.io(e))?;
            if let Some((from, len)) = self.wait()? {
                self.peer = Some(from);
                let ack = packet(OP_ACK, self.expected);
                if len < BLOCK {
                    self.sock.send_to(&ack, from).map_err(|e| self.io(e))?;
                    self.done = true;
                }
                self.last_sent = ack;
                self.expected = self.expected.wrapping_add(1);
                (self.start, self.end) = (4, 4 + len);
                return Ok(());
            }
            tries += 1;
            if tries >= TRIES {
                return Err(TftpError::Timeout {
                    url: self.url.clone(),
                    timeout: self.timeout,
                });
            }
        }
    }

    /// Waits up to the timeout for the expected DATA packet: its sender and data length.
    fn wait(&mut self) -> Result<Option<(SocketAddr, usize)>, TftpError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|e| self.io(e))?;
            let (n, from) = match self.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(self.io(e)),
            };
            // The server answers from a new port (its transfer id); ignore other senders.
            if from.ip() != self.server.ip() || self.peer.is_some_and(|p| p != from) || n < 4 {
                continue;
            }
            let op = u16::from_be_bytes([self.buf[0], self.buf[1]]);
            let num = u16::from_be_bytes([self.buf[2], self.buf[3]]);
            match op {
                OP_ERROR => {
                    let message = String::from_utf8_lossy(&self.buf[4..n])
                        .trim_end_matches('\0')
                        .to_string();
                    return Err(TftpError::Server {
                        url: self.url.clone(),
                        code: num,
                        message,
                    });
                }
                OP_DATA if num == self.expected => return Ok(Some((from, n - 4))),
                // A duplicate of an earlier block: our ACK was lost; acknowledge it again.
                OP_DATA => {
                    self.sock
                        .send_to(&packet(OP_ACK, num), from)
                        .map_err(|e| self.io(e))?;
                }
                _ => {}
            }
        }
    }
}

impl std::io::Read for Transfer {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.start == self.end {
            if self.done {
                return Ok(0);
            }
            self.next_block().map_err(std::io::Error::other)?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_table() {
        let ok = |h: &str, p: &str| Ok::<_, ()>((h.to_string(), p.to_string()));
        type Want = Result<(String, String), ()>;
        let cases: &[(&str, Want)] = &[
            ("tftp://127.0.0.1/a/b.ign", ok("127.0.0.1:69", "a/b.ign")),
            ("tftp://127.0.0.1:6969/c", ok("127.0.0.1:6969", "c")),
            ("tftp://host.example/x", ok("host.example:69", "x")),
            ("tftp://127.0.0.1/", Err(())),
            ("tftp:///x", Err(())),
            ("http://x/y", Err(())),
        ];
        for (url, want) in cases {
            assert_eq!(&split_url(url).map_err(|_| ()), want, "{url}");
        }
    }
}
