//! `tracing` setup for the `keel` binary: compact, no timestamps (journald adds them), level from
//! `RUST_LOG` or `-v` flags, on stderr so that stdout stays machine-readable.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `verbosity` 0 = warn, 1 = info, 2 = debug, 3+ = trace.
pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person: not in the journal, a pipe or a file.
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .compact()
        .try_init();
}
