//! The `keel` command: parses arguments and dispatches to the library crates. No logic lives here.

use clap::{Parser, Subcommand};

/// Keel: an automatically updating, image-based operating system for running containers.
#[derive(Parser)]
#[command(name = "keel", version, propagate_version = true)]
#[command(after_help = "Examples:\n  keel repo --repo build/repo init --mode archive\n  keel repo --repo build/repo commit -b keel/stable/x86_64 rootfs/\n\nRun `keel <command> --help` for each command's options and examples.")]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Content-addressed OS trees in an OSTree-compatible repository.
    Repo(keel_store::cli::RepoArgs),
    /// Compose a versioned OS commit from a manifest of Debian packages; diff two commits' packages.
    Compose(keel_compose::cli::ComposeArgs),
    /// Ignition configs: validate (spec 3.0.0-3.5.0).
    Ignition(keel_ignition_config::cli::IgnitionArgs),
    /// Translate Butane YAML (fcos 1.0.0-1.6.0, keel 1.0.0) to Ignition JSON.
    Butane(keel_butane::cli::ButaneArgs),
}

fn main() {
    let cli = Cli::parse();
    keel_utils::logging::init(cli.verbose);
    let result = match cli.command {
        Command::Repo(args) => keel_store::cli::run(args),
        Command::Compose(args) => keel_compose::cli::run(args),
        Command::Ignition(args) => keel_ignition_config::cli::run(args),
        Command::Butane(args) => keel_butane::cli::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
