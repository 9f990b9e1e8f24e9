//! The `keel` command line as a library: the top-level [`Cli`] and its dispatch to the library
//! crates. The binary (`main.rs`) only parses, sets up logging and reports the error; tests
//! parse the `keel` command lines of unit files with [`Cli`] so that a renamed flag fails a
//! unit test, not a boot.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// The top-level help: commands grouped by where they run. clap lists subcommands under one
/// heading only, so the listing is written here; tests/cli_help.rs checks that it names every
/// visible command and nothing else.
const HELP_TEMPLATE: &str = "\
{before-help}{about-with-newline}
{usage-heading} {usage}

On a node:
  status       Show the deployments (booted, staged, rollback)
  upgrade      Upgrade to the newest commit of the origin ref
  deploy       Deploy a given version or commit
  rollback     Make the previous deployment the default boot entry
  kargs        Show or change kernel arguments
  cleanup      Remove unused deployments; -p discards the staged update
  pin          Keep a deployment through cleanups
  unpin        Let cleanups remove a deployment again
  config-diff  Show the /etc changes of a deployment
  health       Boot health checks
  update       Check for an update, or apply it now
  agent        The update agent service, its status and metrics

Building images and repositories:
  butane       Translate Butane YAML to Ignition JSON
  ignition     Validate Ignition configs, apply them to a root
  compose      Compose an OS commit from a manifest of Debian packages
  repo         OSTree-compatible repositories: commits, remotes, pull
  image        Bootable disk images from an OS commit
  run          Boot a disk image in a VM with an Ignition or Butane config

Fleet services:
  graph        Update graph server (Cincinnati)
  fleetlock    Reboot coordination server (FleetLock on etcd)

  help         Print this message or the help of the given command

Options:
{options}{after-help}";

pub mod cli_reference;
pub mod manpages;

/// Keel: an automatically updating, image-based operating system for running containers.
#[derive(Parser)]
#[command(name = "keel", version, propagate_version = true)]
#[command(
    help_template = HELP_TEMPLATE,
    after_help = "Examples:\n  keel status\n  keel update check\n  keel upgrade --reboot\n  keel butane --strict config.bu -o config.ign\n  keel ignition validate config.ign\n\nRun `keel <command> --help` for each command's options and examples."
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
/// so the two command sets meet here), sharing `--repo` and `--json-progress`.
#[derive(clap::Args)]
#[command(after_help = keel_store::cli::EXAMPLES)]
pub struct RepoCli {
    /// Path to the repository. Default: `.` when it is a repository, else the node's system
    /// repository /ostree/repo when it exists.
    #[arg(long, global = true)]
    pub repo: Option<PathBuf>,
    /// Progress as JSON lines on stderr. Results stay in ostree's text formats: no
    /// `keel repo` command prints a JSON result document, so this is not `--json`.
    #[arg(long = "json-progress", global = true)]
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
    after_help = "Examples:\n  keel ignition validate config.ign\n  keel ignition apply --root /mnt/root config.ign\n\nThe first-boot stages run from the initramfs (`keel ignition stage --help`)."
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
        Command::Repo(args) => {
            // `init` makes a repository: never the system one unless named.
            let init = matches!(
                args.command,
                RepoSub::Store(keel_store::cli::RepoCommand::Init { .. })
            );
            let system = Path::new("/").join(keel_proto::node::SYSTEM_REPO);
            let system = (!init).then_some(system.as_path());
            let (repo, why) = default_repo(args.repo, Path::new("."), system);
            let result = match args.command {
                RepoSub::Store(command) => keel_store::cli::run(keel_store::cli::RepoArgs {
                    repo: repo.clone(),
                    json: args.json,
                    command,
                }),
                RepoSub::Remote(command) => keel_remote::cli::run(&repo, args.json, command),
            };
            match why {
                Some(why) => {
                    result.with_context(|| format!("repository {} ({why})", repo.display()))
                }
                None => result,
            }
        }
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

/// The repository `keel repo` works on: `--repo`, else `here` when it is a repository, else
/// `system` when it exists (on a node, like `ostree` without `--repo`), else `here`. Without
/// `--repo`, also why, for errors to name the repository they are about.
fn default_repo(
    given: Option<PathBuf>,
    here: &Path,
    system: Option<&Path>,
) -> (PathBuf, Option<&'static str>) {
    let is_repo = |p: &Path| p.join("config").is_file() && p.join("objects").is_dir();
    match given {
        Some(p) => (p, None),
        None if is_repo(here) => (here.to_path_buf(), Some("the current directory")),
        None => match system.filter(|s| s.is_dir()) {
            Some(system) => (
                system.to_path_buf(),
                Some("the system repository: --repo not given and . is not a repository"),
            ),
            None => (
                here.to_path_buf(),
                Some("--repo not given and . is not a repository; pass --repo PATH"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_defaults_to_here_then_the_system_repository() {
        let dir = tempfile::tempdir().unwrap();
        let (here, system, repo) = (
            dir.path().join("here"),
            dir.path().join("system"),
            dir.path().join("repo"),
        );
        std::fs::create_dir_all(&here).unwrap();
        let pick = |given: Option<&Path>, system: Option<&Path>| {
            default_repo(given.map(Path::to_path_buf), &here, system).0
        };
        assert_eq!(pick(Some(&repo), Some(&system)), repo, "--repo wins");
        assert_eq!(pick(None, Some(&system)), here, "no system repository");
        std::fs::create_dir_all(&system).unwrap();
        assert_eq!(pick(None, Some(&system)), system, "on a node");
        assert_eq!(pick(None, None), here, "init never picks the system one");
        std::fs::create_dir_all(here.join("objects")).unwrap();
        std::fs::write(here.join("config"), "[core]\n").unwrap();
        assert_eq!(pick(None, Some(&system)), here, ". is a repository");
    }
}
