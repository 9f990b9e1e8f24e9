//! `keel graph`: the update graph server.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::server::Server;

/// `keel graph` arguments.
#[derive(Args)]
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
  [streams.stable]
  release_index = \"stable/releases.json\"     # path or http(s) URL
  updates = \"https://example.org/updates/stable.json\"
  architectures = [\"x86_64\", \"aarch64\"]

Examples:
  keel graph serve --config /etc/keel/graph.toml
  curl 'http://127.0.0.1:8080/v1/graph?basearch=x86_64&stream=stable&node_uuid=0123456789abcdef0123456789abcdef'")]
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs a `keel graph` subcommand.
pub fn run(args: GraphArgs) -> anyhow::Result<()> {
    match args.command {
        GraphCommand::Serve { config } => {
            let config = Config::load(&config)?;
            let listener = std::net::TcpListener::bind(config.listen)
                .with_context(|| format!("listening on {} (setting `listen`)", config.listen))?;
            Server::load(config)?.run(listener)
        }
    }
}
