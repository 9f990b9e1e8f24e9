//! A minimal TFTP read client (RFC 1350, octet mode, 512-byte blocks) for `tftp://` sources.

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

/// Downloads `url`. `timeout` bounds the wait for each packet; a lost packet is sent again up
/// to [`TRIES`] times.
pub fn fetch(url: &str, timeout: Duration) -> Result<Vec<u8>, TftpError> {
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

    let mut out = Vec::new();
    let mut expected: u16 = 1;
    let mut peer: Option<SocketAddr> = None;
    let mut last_sent = rrq;
    let mut buf = [0u8; 4 + BLOCK + 4];
    let mut tries = 0;
    loop {
        sock.send_to(&last_sent, peer.unwrap_or(server))
            .map_err(io)?;
        let deadline = Instant::now() + timeout;
        let got = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            sock.set_read_timeout(Some(left)).map_err(io)?;
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break None
                }
                Err(e) => return Err(io(e)),
            };
            // The server answers from a new port (its transfer id); ignore other senders.
            if from.ip() != server.ip() || peer.is_some_and(|p| p != from) || n < 4 {
                continue;
            }
            let op = u16::from_be_bytes([buf[0], buf[1]]);
            let num = u16::from_be_bytes([buf[2], buf[3]]);
            match op {
                OP_ERROR => {
                    let message = String::from_utf8_lossy(&buf[4..n])
                        .trim_end_matches('\0')
                        .to_string();
                    return Err(TftpError::Server {
                        url: url.to_string(),
                        code: num,
                        message,
                    });
                }
                OP_DATA if num == expected => break Some((from, n - 4)),
                // A duplicate of an earlier block: our ACK was lost; acknowledge it again.
                OP_DATA => {
                    sock.send_to(&packet(OP_ACK, num), from).map_err(io)?;
                }
                _ => {}
            }
        };
        let Some((from, len)) = got else {
            tries += 1;
            if tries >= TRIES {
                return Err(TftpError::Timeout {
                    url: url.to_string(),
                    timeout,
                });
            }
            continue;
        };
        tries = 0;
        peer = Some(from);
        out.extend_from_slice(&buf[4..4 + len]);
        let ack = packet(OP_ACK, expected);
        if len < BLOCK {
            sock.send_to(&ack, from).map_err(io)?;
            return Ok(out);
        }
        last_sent = ack;
        expected = expected.wrapping_add(1);
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
