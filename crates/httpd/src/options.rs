//! The connection layer's limits, their command-line flags, and the open-file limit they must
//! stay under.

use std::time::Duration;

use clap::Args;

/// File descriptors kept free for everything but client connections (listener, etcd and
/// metadata connections, files, the runtime's own).
pub const RESERVED_FDS: u64 = 64;

/// Upper bound of the derived connection cap, whatever the file limit.
const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

/// Largest connection cap accepted even without an open-file limit.
const MAX_CAP: u64 = 1 << 20;

/// Longest request head (request line and headers) in bytes; longer ones get 431 (or 414 when
/// the request line alone is that long).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest request target in bytes (414 above).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields in one request (431 above).
pub const MAX_HEADERS: usize = 64;

/// Command-line flags of the connection layer, shared by every `serve` command.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct HttpArgs {
    /// Seconds a client has to send a whole request head (request line and headers); a slower
    /// (slowloris) connection gets 408 and is closed.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request body once its head arrived.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub body_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub idle_timeout_secs: u64,
    /// Seconds a client has to take in an answer before the connection is closed.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub send_timeout_secs: u64,
    /// Most client connections open at once (0: the open-file limit minus 64, at most 4096).
    /// At the cap, the connection idle longest is closed to admit a new one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_connections: u64,
}

impl Default for HttpArgs {
    fn default() -> HttpArgs {
        HttpArgs {
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            idle_timeout_secs: 30,
            send_timeout_secs: 30,
            max_connections: 0,
        }
    }
}

/// Why limits cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("--{flag} must be at least 1 second")]
    ZeroTimeout { flag: &'static str },
    #[error(
        "--max-connections {wanted} does not fit the open-file limit {nofile} (minus {RESERVED_FDS} \
         kept for the server itself); lower it or raise the limit (LimitNOFILE= in the unit)"
    )]
    OverFileLimit { wanted: u64, nofile: u64 },
    #[error(
        "the open-file limit {nofile} leaves no room for clients ({RESERVED_FDS} are kept for the \
         server itself); raise it (LimitNOFILE= in the unit, ulimit -n)"
    )]
    FileLimitTooLow { nofile: u64 },
}

/// Effective limits of one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: u64,
}

impl Limits {
    /// Limits from the flags, the server's body size limit and the process's open-file limit
    /// (raised to its hard limit first, see [`raise_file_limit`]).
    pub fn new(args: &HttpArgs, max_body_bytes: u64) -> Result<Limits, LimitsError> {
        for (flag, secs) in [
            ("header-timeout-secs", args.header_timeout_secs),
            ("body-timeout-secs", args.body_timeout_secs),
            ("idle-timeout-secs", args.idle_timeout_secs),
            ("send-timeout-secs", args.send_timeout_secs),
        ] {
            if secs == 0 {
                return Err(LimitsError::ZeroTimeout { flag });
            }
        }
        let nofile = raise_file_limit();
        let room = nofile.saturating_sub(RESERVED_FDS);
        let max_connections = match args.max_connections {
            0 if room == 0 => return Err(LimitsError::FileLimitTooLow { nofile }),
            0 => room.min(DEFAULT_MAX_CONNECTIONS),
            wanted if wanted > room.min(MAX_CAP) => {
                return Err(LimitsError::OverFileLimit { wanted, nofile })
            }
            wanted => wanted,
        };
        Ok(Limits {
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            body_timeout: Duration::from_secs(args.body_timeout_secs),
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            send_timeout: Duration::from_secs(args.send_timeout_secs),
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            max_body_bytes,
        })
    }
}

/// Raises the soft open-file limit to the hard one (as Go and systemd's services do: the soft
/// limit of 1024 exists for `select()`, which Keel never uses) and returns the soft limit now
/// in force. Unlimited counts as `u64::MAX`.
pub fn raise_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("could not raise the open-file limit to its hard limit: {e}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_table() {
        let nofile = raise_file_limit();
        let l = Limits::new(&HttpArgs::default(), 1024).unwrap();
        assert_eq!(
            l.max_connections as u64,
            (nofile - RESERVED_FDS).min(DEFAULT_MAX_CONNECTIONS)
        );
        assert_eq!(l.header_timeout, Duration::from_secs(10));
        let zero = HttpArgs {
            body_timeout_secs: 0,
            ..HttpArgs::default()
        };
        assert!(Limits::new(&zero, 1)
            .unwrap_err()
            .to_string()
            .contains("--body-timeout-secs"));
        if nofile < u64::MAX - 1 {
            let over = HttpArgs {
                max_connections: nofile,
                ..HttpArgs::default()
            };
            let err = Limits::new(&over, 1).unwrap_err().to_string();
            assert!(err.contains("LimitNOFILE"), "{err}");
        }
    }
}
