//! `keel fleetlock`: the reboot coordination server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::etcd::Etcd;
use keel_httpd::HttpArgs;

use crate::limits::{lock_ttl, Limits, LimitsFile};
use crate::server::{self, Server};
use crate::store::{system_clock, Store};

/// `keel fleetlock` arguments.
#[derive(Args)]
#[command(
    after_help = "Example:\n  keel fleetlock serve --etcd http://127.0.0.1:2379 --listen 0.0.0.0:3333"
)]
pub struct FleetLockArgs {
    #[command(subcommand)]
    pub command: FleetLockCommand,
}

/// `keel fleetlock` subcommands.
#[derive(Subcommand)]
pub enum FleetLockCommand {
    /// Serve the FleetLock protocol (POST /v1/pre-reboot, /v1/steady-state) with locks in etcd.
    #[command(
        after_help = "Slot counts per group and the lock TTL can be changed while running
via --limits FILE (re-read on every sweep when it changed):
  default_slots = 1
  lock_ttl_secs = 3600       # 1 to 9223372036854775807
  [groups]
  workers = 3

Connections: each has deadlines for its request head, its body, the wait for
the next request and taking in the answer; at --max-connections the one idle
longest is closed to admit a new one. Raise LimitNOFILE= to allow more.

Examples:
  keel fleetlock serve --etcd http://10.0.0.1:2379,http://10.0.0.2:2379 \\
      --listen 0.0.0.0:3333
  keel fleetlock serve --etcd 127.0.0.1:2379 --slots 2 --lock-ttl-secs 1800 \\
      --limits /etc/keel/fleetlock.toml --header-timeout-secs 5
  curl -H 'fleet-lock-protocol: true' \\
      -d '{\"client_params\":{\"id\":\"node1\",\"group\":\"default\"}}' \\
      http://127.0.0.1:3333/v1/pre-reboot"
    )]
    Serve {
        /// etcd client endpoints, comma-separated; the next one is used when one is down.
        #[arg(long, value_delimiter = ',', required = true)]
        etcd: Vec<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3333")]
        listen: SocketAddr,
        /// Slots of groups not listed in the limits file.
        #[arg(long, default_value_t = 1)]
        slots: u64,
        /// A held slot is freed after this many seconds (a node that never came back);
        /// 1 to 9223372036854775807.
        #[arg(long, default_value_t = 3600, value_parser = parse_ttl)]
        lock_ttl_secs: i64,
        /// TOML file with default_slots, lock_ttl_secs and [groups] slot counts; re-read when it changes.
        #[arg(long)]
        limits: Option<PathBuf>,
        /// Seconds between expiry sweeps (and limits file checks).
        #[arg(long, default_value_t = 10)]
        sweep_secs: u64,
        /// Timeout of one etcd request, in seconds.
        #[arg(long, default_value_t = 5)]
        etcd_timeout_secs: u64,
        #[command(flatten)]
        http: HttpArgs,
    },
}

fn parse_ttl(value: &str) -> Result<i64, String> {
    let secs: u64 = value
        .parse()
        .map_err(|e| format!("{value:?} is not a number of seconds: {e}"))?;
    lock_ttl(secs).map_err(|e| e.to_string())
}

/// Runs a `keel fleetlock` subcommand.
pub fn run(args: FleetLockArgs) -> anyhow::Result<()> {
    match args.command {
        FleetLockCommand::Serve {
            etcd,
            listen,
            slots,
            lock_ttl_secs,
            limits,
            sweep_secs,
            etcd_timeout_secs,
            http,
        } => {
            anyhow::ensure!(sweep_secs > 0, "--sweep-secs must be at least 1");
            let http = server::limits(&http)?;
            let defaults = Limits {
                default_slots: slots,
                lock_ttl_secs,
                groups: Default::default(),
            };
            let mut limits_file = limits.map(|p| LimitsFile::new(&p, defaults.clone()));
            let initial = match limits_file.as_mut() {
                Some(f) => f.reload_if_changed()?.unwrap_or(defaults),
                None => defaults,
            };
            let etcd = Etcd::new(&etcd, Duration::from_secs(etcd_timeout_secs))?;
            let store = Arc::new(Store::new(etcd, initial, system_clock));
            let listener = std::net::TcpListener::bind(listen)
                .with_context(|| format!("listening on {listen} (--listen)"))?;
            Server {
                store,
                limits_file,
                sweep_interval: Duration::from_secs(sweep_secs),
            }
            .run(listener, http)
        }
    }
}
