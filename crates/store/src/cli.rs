//! `keel repo`: the command-line front end of the store.

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Content-addressed OS trees in an OSTree-compatible repository.
#[derive(Args)]
pub struct RepoArgs {
    /// Path to the repository.
    #[arg(long, global = true, default_value = ".")]
    pub repo: PathBuf,
    #[command(subcommand)]
    pub command: RepoCommand,
}

/// `keel repo` subcommands.
#[derive(Subcommand)]
pub enum RepoCommand {}

/// Run a `keel repo` command.
pub fn run(args: RepoArgs) -> anyhow::Result<()> {
    match args.command {}
}
