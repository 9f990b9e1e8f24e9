//! `keel graph`: the update graph server.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::server::{limits, Server};
use keel_httpd::HttpArgs;

/// `keel graph` arguments.
#[derive(Args)]
#[command(after_help = "Example:\n  keel graph serve --config /etc/keel/graph.toml")]
pub struct GraphArgs {
    #[command(subcommand)]
    pub command: GraphCommand,
}

/// `keel graph` subcommands.
#[derive(Subcommand)]
pub enum GraphCommand {
    /// Serve the Cincinnati update graph (GET /v1/graph) and Prometheus metrics (GET /metrics).
    #[command(after_help = "Example config (graph.toml):
  listen = \"127.0.0.1:8080\"
  reload_interval_secs = 30
  source_timeout_secs = 60     # a slower read fails; the last graph stays
  max_source_bytes = 33554432  # a larger source document fails
  [streams.stable]
  release_index = \"stable/releases.json\"     # path or http(s) URL
  updates = \"https://example.org/updates/stable.json\"
  architectures = [\"x86_64\", \"aarch64\"]

Connections: each has deadlines for its request head, its body, the wait for
the next request and taking in the answer; at --max-connections the one idle
longest is closed to admit a new one. Raise LimitNOFILE= to allow more.

Examples:
  keel graph serve --config /etc/keel/graph.toml
  keel graph serve --config graph.toml --header-timeout-secs 5 \\
      --max-connections 2000
  curl -G http://127.0.0.1:8080/v1/graph -d basearch=x86_64 -d stream=stable \\
      -d node_uuid=0123456789abcdef0123456789abcdef")]
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        http: HttpArgs,
    },
}

/// Runs a `keel graph` subcommand.
pub fn run(args: GraphArgs) -> anyhow::Result<()> {
    match args.command {
        GraphCommand::Serve { config, http } => {
            let config = Config::load(&config)?;
            let limits = limits(&http)?;
            let listener = std::net::TcpListener::bind(config.listen)
                .with_context(|| format!("listening on {} (setting `listen`)", config.listen))?;
            Server::load(config)?.run(listener, limits)
        }
    }
}
