//! `keel agent` (the service, `status`, `metrics`) and `keel update check|now`.

use crate::agent::{Agent, Clock, Mode, OriginPull, Paths, Pull, SystemClock};
use crate::graph::Release;
use crate::metrics;
use crate::state::{AgentState, Phase};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use keel_proto::output::Versioned;
use serde::Serialize;
use std::path::PathBuf;

/// Where the agent works (all default to the running node).
#[derive(Args, Debug, Clone)]
#[group(id = "AgentCommon")]
pub struct Common {
    /// Root for the configuration (`<root>/{usr/lib,etc,run}/keel/agent.d`), `/etc/machine-id`
    /// and the `/run` files (state, metrics socket, login message).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// `--sysroot`, `--stateroot` and the hidden `--assume-booted`, as the node commands take them.
    #[command(flatten)]
    pub node: keel_update::cli::Common,
}

/// Command that reboots the node after finalization is unlocked (run with `sh -c`).
#[derive(Args, Debug, Clone)]
pub struct Reboot {
    /// Command run (with `sh -c`) to reboot once finalization is unlocked.
    #[arg(long, default_value = "systemctl reboot")]
    pub reboot_command: String,
}

/// `keel agent`.
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  keel agent          # the service (keel-agent.service)\n  keel agent status\n  keel agent metrics\n  keel agent --root /tmp/node --sysroot /tmp/node/sysroot \\\n      --reboot-command 'touch /tmp/rebooted'\n\nConfiguration: TOML drop-ins in /usr/lib/keel/agent.d, /etc/keel/agent.d,\n/run/keel/agent.d (https://keel.dev/docs/updates/agent.html)."
)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    reboot: Reboot,
}

#[derive(Subcommand, Debug)]
enum AgentCommand {
    /// Show the running agent's state (from /run/keel/agent/state.json).
    #[command(after_help = "Examples:\n  keel agent status\n  keel agent status --json")]
    Status {
        /// Root holding `run/keel/agent/state.json`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Print the state record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the agent's Prometheus metrics (read from its Unix socket).
    #[command(after_help = "Example:\n  keel agent metrics")]
    Metrics {
        /// Root holding `run/keel/agent/metrics.sock`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

/// `keel update`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  keel update check\n  keel update check --json\n  # no waiting for the maintenance window; still takes the FleetLock slot:\n  keel update now"
)]
pub struct UpdateArgs {
    #[command(subcommand)]
    command: UpdateCommand,
}

#[derive(Subcommand, Debug)]
enum UpdateCommand {
    /// Poll the update graph once and print what the agent would do; changes nothing.
    #[command(after_help = "Examples:\n  keel update check\n  keel update check --json")]
    Check {
        #[command(flatten)]
        common: Common,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Update now: poll, stage, take the FleetLock slot (waiting for one), finalize and reboot,
    /// without waiting for a maintenance window or for interactive sessions.
    #[command(
        after_help = "Examples:\n  keel update now\n  keel update now --reboot-command true   # stage and unlock, reboot later"
    )]
    Now {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        reboot: Reboot,
    },
}

fn agent(common: &Common, reboot: &Reboot, mode: Mode) -> Result<Agent> {
    let puller: Box<dyn Pull> = Box::new(OriginPull);
    Agent::new(
        Paths {
            root: common.root.clone(),
            sysroot: common.node.sysroot.clone(),
            stateroot: common.node.stateroot.clone(),
            booted: common.node.assume_booted.clone(),
            reboot_command: reboot.reboot_command.clone(),
        },
        mode,
        puller,
        Box::new(SystemClock),
    )
}

/// Run `keel agent`.
pub fn run(args: AgentArgs) -> Result<()> {
    match args.command {
        Some(AgentCommand::Status { root, json }) => status(&root, json),
        Some(AgentCommand::Metrics { root }) => {
            let sock = root.join(metrics::SOCKET);
            let text = metrics::scrape(&sock)
                .with_context(|| format!("{}: is keel-agent.service running?", sock.display()))?;
            print!("{text}");
            Ok(())
        }
        None => {
            let mut a = agent(&args.common, &args.reboot, Mode::Service)?;
            let sock = args.common.root.join(metrics::SOCKET);
            metrics::serve(&sock, a.metrics.clone())
                .with_context(|| format!("metrics socket {}", sock.display()))?;
            tracing::info!(
                "keel agent: node {} strategy {} config {:?}",
                a.node_uuid(),
                a.strategy().kind.name(),
                a.config_files()
            );
            a.run_until(|_, _| false);
            Ok(())
        }
    }
}

fn when(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or(t.to_string(), |t| t.to_string())
}

/// `keel agent status --json`: the state record under `agent` (`null` when the agent has not
/// run since boot).
#[derive(Serialize, schemars::JsonSchema)]
pub struct StatusReport {
    /// The agent's state record; `null` when the agent has not run since boot.
    agent: Option<AgentState>,
}

fn status(root: &std::path::Path, json: bool) -> Result<()> {
    let p = root.join(crate::state::STATE_FILE);
    let st = crate::state::load(root).with_context(|| format!("{}", p.display()))?;
    if json {
        let out = Versioned::new(StatusReport { agent: st });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match st {
        Some(st) => print!("{}", describe(&st)),
        None => println!(
            "The update agent has not run since boot ({} is absent).",
            p.display()
        ),
    }
    Ok(())
}

/// The human-readable state (also what `keel status` shows).
pub fn describe(st: &AgentState) -> String {
    let mut o = format!(
        "Update agent: {} ({}): {}\n",
        st.phase.name(),
        st.strategy,
        st.summary
    );
    if let Some(v) = &st.booted_version {
        o += &format!("  booted: {v}\n");
    }
    if let Some(t) = &st.target {
        o += &format!("  target: {} ({})\n", t.version, t.commit);
    }
    if let Some(d) = &st.deadend {
        o += &format!("  dead-end: {d}\n");
    }
    if let Some(t) = st.last_poll {
        o += &format!("  last poll: {}\n", when(t));
    }
    if let Some(t) = st.next_window {
        o += &format!("  next window: {}\n", when(t));
    }
    if let Some(e) = &st.last_error {
        o += &format!("  last error: {e}\n");
    }
    if let Some(f) = &st.remote_summary {
        o += &format!("  remote summary: {}\n", f.message);
    }
    o
}

/// `keel update check --json`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct CheckReport {
    /// The node's identity (FleetLock `client_params.id`, the graph's `node_uuid`).
    pub node_uuid: String,
    /// The update strategy.
    pub strategy: String,
    /// The booted release, when the graph lists it.
    pub booted: Option<Release>,
    /// The release the agent would go to.
    pub target: Option<Release>,
    /// The booted release is a dead-end: why.
    pub deadend: Option<String>,
    /// Newer releases skipped because they failed to boot healthy on this node.
    pub skipped_failed: Vec<Release>,
    /// The commit staged now, if any.
    pub staged_commit: Option<String>,
    /// With a periodic strategy: whether the maintenance window is open now.
    pub window_open: Option<bool>,
    /// With a periodic strategy: UNIX time the next window opens.
    pub next_window: Option<i64>,
    /// The strategy takes a FleetLock slot before rebooting.
    pub fleet_lock: bool,
    /// How old the origin remote's summary is.
    pub remote_summary: Option<keel_proto::freshness::Freshness>,
}

/// Run `keel update`.
pub fn run_update(args: UpdateArgs) -> Result<()> {
    match args.command {
        UpdateCommand::Check { common, json } => {
            let reboot = Reboot {
                reboot_command: "true".into(),
            };
            let mut a = agent(&common, &reboot, Mode::Now)?;
            let ev = a.poll()?;
            let now = SystemClock.now();
            let s = a.strategy();
            let r = CheckReport {
                node_uuid: a.node_uuid().into(),
                strategy: s.kind.name().into(),
                booted: ev.booted.clone(),
                target: ev.target.clone(),
                deadend: ev.deadend.clone(),
                skipped_failed: ev.skipped_failed.clone(),
                staged_commit: a.staged_commit()?,
                window_open: s.schedule.as_ref().map(|w| w.contains(now)),
                next_window: s.schedule.as_ref().and_then(|w| w.next_start(now)),
                fleet_lock: s.lock.is_some(),
                remote_summary: a.state.remote_summary.clone(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&Versioned::new(&r))?);
            } else {
                print_check(&r);
            }
            Ok(())
        }
        UpdateCommand::Now { common, reboot } => {
            let mut a = agent(&common, &reboot, Mode::Now)?;
            a.run_until(|a, step| {
                let st = &a.state;
                match st.phase {
                    Phase::Finalized => true,
                    Phase::Polling if step.idle => {
                        println!("No update available: {}", st.summary);
                        true
                    }
                    _ => {
                        if !step.delay.is_zero() {
                            let err = st.last_error.as_deref().unwrap_or("");
                            println!(
                                "{} {err} (retrying in {} s)",
                                st.summary,
                                step.delay.as_secs()
                            );
                        }
                        false
                    }
                }
            });
            if a.state.phase == Phase::Finalized {
                println!("{}", a.state.summary);
            }
            Ok(())
        }
    }
}

fn print_check(r: &CheckReport) {
    match &r.booted {
        Some(b) => println!("Booted: {} ({})", b.version, b.commit),
        None => println!("Booted release is not in the update graph: nothing to do."),
    }
    if let Some(d) = &r.deadend {
        println!("Dead-end: {d}");
    }
    if let Some(f) = r.remote_summary.as_ref().filter(|f| f.is_problem()) {
        println!("Warning: {}", f.message);
    }
    for f in &r.skipped_failed {
        println!(
            "Skipped (failed to boot before): {} ({})",
            f.version, f.commit
        );
    }
    let Some(t) = &r.target else {
        println!("No update available.");
        return;
    };
    println!("Update available: {} ({})", t.version, t.commit);
    if r.staged_commit.as_deref() == Some(t.commit.as_str()) {
        println!("Already staged.");
    } else {
        println!("Would stage it with finalization locked.");
    }
    let window = match (r.window_open, r.next_window) {
        (None, _) => "no maintenance window".to_string(),
        (Some(true), _) => "the maintenance window is open now".to_string(),
        (Some(false), Some(n)) => format!("waits for the window opening {}", when(n)),
        (Some(false), None) => "no window ever opens".to_string(),
    };
    let lock = if r.fleet_lock {
        "then takes a FleetLock slot"
    } else {
        "no FleetLock"
    };
    println!("Strategy {}: {window}; {lock}; then reboots.", r.strategy);
}
