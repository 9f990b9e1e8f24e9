//! The `keel` command line as a library: the top-level [`Cli`] and its dispatch to the library
//! crates. The binary (`main.rs`) only parses, sets up logging and reports the error; tests
//! parse the `keel` command lines of unit files with [`Cli`] so that a renamed flag fails a
//! unit test, not a boot.

use clap::{Parser, Subcommand};

pub mod cli_reference;
pub mod manpages;

/// Keel: an automatically updating, image-based operating system for running containers.
#[derive(Parser)]
#[command(name = "keel", version, propagate_version = true)]
#[command(
    after_help = "Examples:\n  keel repo --repo build/repo init --mode archive\n  keel repo --repo build/repo commit -b keel/stable/x86_64 rootfs/\n\nRun `keel <command> --help` for each command's options and examples."
)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Content-addressed OS trees in an OSTree-compatible repository; remotes, pull and signing.
    Repo(RepoCli),
    /// Compose a versioned OS commit from a manifest of Debian packages; diff two commits' packages.
    Compose(keel_compose::cli::ComposeArgs),
    /// Ignition configs: validate (spec 3.0.0-3.5.0), apply to a root, run the first-boot stages.
    Ignition(IgnitionCli),
    /// Translate Butane YAML (fcos 1.0.0-1.6.0, keel 1.0.0) to Ignition JSON.
    Butane(keel_butane::cli::ButaneArgs),
    /// Boot a disk image in a VM (QEMU, UEFI) with an Ignition or Butane config.
    Run(keel_vm::cli::RunArgs),
    /// Bootable disk images (qcow2, raw, raw.xz) from an OS commit; first-boot root growing.
    Image(keel_image::cli::ImageArgs),
    /// Node deployments: status, upgrade, deploy, rollback, kargs, pin, finalize, prepare-root, health.
    #[command(flatten)]
    Node(keel_update::cli::NodeCommand),
    /// Update graph server: Cincinnati graph with barriers, dead-ends and rollouts.
    Graph(keel_graph::cli::GraphArgs),
    /// Reboot coordination server (FleetLock protocol on etcd v3).
    Fleetlock(keel_fleetlock::cli::FleetLockArgs),
    /// The update agent service (polls the graph, stages, finalizes by strategy); its status and metrics.
    Agent(keel_agent::cli::AgentArgs),
    /// Check for an update, or apply it now (no window wait; still takes the FleetLock slot).
    Update(keel_agent::cli::UpdateArgs),
    /// Render Keel's man pages and Markdown CLI reference from these command definitions.
    #[command(hide = true)]
    Docs(manpages::DocsArgs),
}

/// `keel repo`: the store's subcommands and the remote ones (keel-remote builds on keel-store,
/// so the two command sets meet here), sharing `--repo` and `--json`.
#[derive(clap::Args)]
#[command(after_help = keel_store::cli::EXAMPLES)]
pub struct RepoCli {
    /// Path to the repository.
    #[arg(long, global = true, default_value = ".")]
    pub repo: std::path::PathBuf,
    /// Progress as JSON lines on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: RepoSub,
}

#[derive(Subcommand)]
pub enum RepoSub {
    #[command(flatten)]
    Store(keel_store::cli::RepoCommand),
    #[command(flatten)]
    Remote(keel_remote::cli::RemoteCommand),
}

/// `keel ignition`: validation from keel-ignition-config and provisioning from keel-provision
/// (which depends on the former, so the two command sets meet here).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  keel ignition validate config.ign\n  keel ignition apply --root /mnt/root config.ign\n  keel ignition stage files --root /sysroot --platform qemu\n  keel ignition firstboot-complete --boot /boot"
)]
pub struct IgnitionCli {
    #[command(subcommand)]
    pub command: IgnitionSub,
}

#[derive(Subcommand)]
pub enum IgnitionSub {
    #[command(flatten)]
    Config(keel_ignition_config::cli::IgnitionCommand),
    #[command(flatten)]
    Provision(keel_provision::cli::ProvisionCommand),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Repo(args) => match args.command {
            RepoSub::Store(command) => keel_store::cli::run(keel_store::cli::RepoArgs {
                repo: args.repo,
                json: args.json,
                command,
            }),
            RepoSub::Remote(command) => keel_remote::cli::run(&args.repo, args.json, command),
        },
        Command::Compose(args) => keel_compose::cli::run(args),
        Command::Ignition(args) => match args.command {
            IgnitionSub::Config(command) => {
                keel_ignition_config::cli::run(keel_ignition_config::cli::IgnitionArgs { command })
            }
            IgnitionSub::Provision(command) => keel_provision::cli::run(command),
        },
        Command::Butane(args) => keel_butane::cli::run(args),
        Command::Run(args) => keel_vm::cli::run(args),
        Command::Image(args) => keel_image::cli::run(args),
        Command::Node(command) => keel_update::cli::run(command),
        Command::Graph(args) => keel_graph::cli::run(args),
        Command::Fleetlock(args) => keel_fleetlock::cli::run(args),
        Command::Agent(args) => keel_agent::cli::run(args),
        Command::Update(args) => keel_agent::cli::run_update(args),
        Command::Docs(args) => manpages::run(args),
    }
}
