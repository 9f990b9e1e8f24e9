//! The agent's cycle, one step per [`Agent::tick`] (Zincati's state machine, simplified):
//!
//! - `starting`: report steady state (FleetLock: release the slot taken before the reboot);
//!   retried until it succeeds. The unit runs after `boot-complete.target`, so a node whose
//!   health checks fail never gets here and keeps its slot, halting the rollout.
//! - `polling`: fetch the graph, choose the target, update the dead-end message; with a target,
//!   pull it and stage it with finalization locked, then `staged`.
//! - `staged`: ask the strategy; then, unless `keel update now`, postpone for interactive
//!   sessions up to `max_postpone_secs`; then unlock finalization and run the reboot command.
//! - `finalized`: wait for the reboot.
//!
//! Errors never end the cycle: they are recorded in the state and retried after
//! `retry_interval_secs`.

use crate::config::{self, Loaded};
use crate::fleetlock::FleetLockClient;
use crate::graph::{self, Evaluation, Query, Release};
use crate::identity;
use crate::metrics::Metrics;
use crate::motd;
use crate::sessions;
use crate::state::{AgentState, Phase};
use crate::strategy::{Decision, Lock, Strategy};
use anyhow::{anyhow, bail, Context, Result};
use keel_deploy::{DeployOptions, Deployment, Sysroot};
use keel_http::{Client, HttpOptions};
use keel_store::Checksum;
use keel_utils::progress::{Mode as ProgressMode, Progress};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds since the epoch; injectable so tests control time.
pub trait Clock: Send {
    /// Now.
    fn now(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// Brings a release's commit into the sysroot repository.
pub trait Pull: Send {
    /// Make `commit` (hex) available in the sysroot repository.
    fn pull(&self, sysroot: &Sysroot, commit: &str) -> Result<Checksum>;
}

/// Pulls from the remote of the booted deployment's origin (`keel_update::fetch`); a commit
/// already in the repository, or an origin without a remote, needs no network. A commit older
/// than (or unrelated to) the booted one is refused before its content is fetched: the graph
/// is not signed, so it must not be able to take the node back to an old signed release.
pub struct OriginPull;

impl Pull for OriginPull {
    fn pull(&self, sysroot: &Sysroot, commit: &str) -> Result<Checksum> {
        let progress = Progress::new(ProgressMode::Lines, &format!("pull {commit}"), None);
        let baseline = sysroot.booted_name().and_then(|name| {
            Deployment::parse_name(&name).map(|(c, _)| (format!("booted deployment {name}"), c))
        });
        let policy = keel_update::fetch::Policy {
            allow_downgrade: false,
            baseline,
        };
        let f = keel_update::fetch::pull_origin(sysroot, commit, &policy, &progress)
            .with_context(|| format!("pulling commit {commit}"))?;
        tracing::info!(
            "pulled {commit} from {}: {} objects, {} bytes in {:?}",
            f.remote.as_deref().unwrap_or("the local repository"),
            f.objects,
            f.bytes,
            f.elapsed
        );
        Ok(f.commit)
    }
}

/// How the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The service: windows, lock and sessions all apply; state and metrics are published.
    Service,
    /// `keel update now`: no window wait and no session check, but the lock is still taken.
    Now,
}

/// Where the agent works.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The root for configuration, machine id, `/run` files.
    pub root: PathBuf,
    /// The sysroot (`/` on a node).
    pub sysroot: PathBuf,
    /// The stateroot.
    pub stateroot: String,
    /// The booted deployment, for directory sysroots.
    pub booted: Option<String>,
    /// Run through `sh -c` to reboot.
    pub reboot_command: String,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Wait this long before the next step.
    pub delay: Duration,
    /// A poll found nothing to do.
    pub idle: bool,
}

/// The booted release as the sysroot knows it.
#[derive(Debug, Clone)]
struct Booted {
    commit: String,
    version: Option<String>,
    stream: Option<String>,
}

/// The update agent.
pub struct Agent {
    paths: Paths,
    sysroot: Sysroot,
    loaded: Loaded,
    strategy: Strategy,
    node_uuid: String,
    http: Client,
    puller: Box<dyn Pull>,
    clock: Box<dyn Clock>,
    mode: Mode,
    /// Metrics (shared with the socket server).
    pub metrics: Arc<Mutex<Metrics>>,
    /// The published state.
    pub state: AgentState,
    postponed_since: Option<i64>,
}

const IDLE: Duration = Duration::from_secs(3 * 3600);

impl Agent {
    /// Load the configuration and identity and open the sysroot.
    pub fn new(
        paths: Paths,
        mode: Mode,
        puller: Box<dyn Pull>,
        clock: Box<dyn Clock>,
    ) -> Result<Agent> {
        let loaded = config::load(&paths.root)?;
        let (schedule, lock_url) = loaded.strategy_parts()?;
        let id = &loaded.config.identity;
        let node_uuid =
            identity::node_uuid(&paths.root, id.node_uuid.as_deref()).map_err(|e| anyhow!(e))?;
        let lock = match lock_url {
            Some(url) => Some(Box::new(
                FleetLockClient::new(&url, &node_uuid, &id.group)
                    .with_context(|| format!("FleetLock client for {url}"))?,
            ) as Box<dyn Lock>),
            None => None,
        };
        let kind = loaded.config.updates.strategy;
        let sysroot =
            Sysroot::open(&paths.sysroot, &paths.stateroot)?.with_booted(paths.booted.clone());
        let http = Client::new(&HttpOptions {
            response_header_timeout: Some(Duration::from_secs(60)),
            request_timeout: Some(Duration::from_secs(300)),
            user_agent: Some(concat!("keel-agent/", env!("CARGO_PKG_VERSION")).into()),
            ..Default::default()
        })?;
        let now = clock.now();
        let metrics = Metrics {
            updates_enabled: loaded.config.updates.enabled,
            strategy: kind.name().into(),
            phase: Some(Phase::Starting),
            last_state_change_timestamp: now,
            ..Default::default()
        };
        let mut state = AgentState::new(kind.name(), now);
        if mode == Mode::Now {
            state.phase = Phase::Polling;
        }
        Ok(Agent {
            paths,
            sysroot,
            loaded,
            strategy: Strategy {
                kind,
                schedule,
                lock,
            },
            node_uuid,
            http,
            puller,
            clock,
            mode,
            metrics: Arc::new(Mutex::new(metrics)),
            state,
            postponed_since: None,
        })
    }

    /// The configuration files in effect.
    pub fn config_files(&self) -> &[PathBuf] {
        &self.loaded.files
    }

    /// The node id sent to the graph and FleetLock servers.
    pub fn node_uuid(&self) -> &str {
        &self.node_uuid
    }

    /// The strategy.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    fn root(&self) -> &Path {
        &self.paths.root
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&mut self, phase: Phase, summary: String) {
        let now = self.clock.now();
        if phase != self.state.phase {
            tracing::info!(
                "agent: {} -> {}: {summary}",
                self.state.phase.name(),
                phase.name()
            );
            let mut m = self.metrics();
            m.phase = Some(phase);
            m.last_state_change_timestamp = now;
        } else if summary != self.state.summary {
            tracing::info!("agent: {summary}");
        }
        self.state.phase = phase;
        self.state.summary = summary;
        self.state.updated_at = now;
        self.publish();
    }

    fn publish(&self) {
        if self.mode == Mode::Service {
            if let Err(e) = crate::state::save(&self.state, self.root()) {
                tracing::warn!("could not write the agent state file: {e}");
            }
        }
    }

    fn retry(&self) -> Duration {
        Duration::from_secs(self.loaded.config.agent.retry_interval_secs.max(1))
    }

    fn poll_delay(&self) -> Duration {
        let p = self.loaded.config.agent.poll_interval_secs.max(1);
        Duration::from_secs(p + fastrand::u64(0..=p / 10))
    }

    fn fail(&mut self, what: &str, e: anyhow::Error) -> Step {
        let text = format!("{what}: {e:#}");
        tracing::warn!("{text}");
        self.state.last_error = Some(text);
        self.state.updated_at = self.clock.now();
        self.publish();
        Step {
            delay: self.retry(),
            idle: false,
        }
    }

    /// One step of the cycle.
    pub fn tick(&mut self) -> Step {
        let now_step = Step {
            delay: Duration::ZERO,
            idle: false,
        };
        match self.state.phase {
            Phase::Starting => {
                let off = if !self.loaded.config.updates.enabled {
                    Some("automatic updates are disabled (updates.enabled = false)")
                } else if self.loaded.config.cincinnati.base_url.is_none() {
                    Some("no update server configured (cincinnati.base_url); automatic updates are off")
                } else {
                    None
                };
                if let Some(why) = off {
                    self.set(Phase::Disabled, why.into());
                    return Step {
                        delay: IDLE,
                        idle: true,
                    };
                }
                let r = {
                    let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
                    self.strategy.report_steady(&mut m)
                };
                match r {
                    Ok(()) => {
                        self.state.last_error = None;
                        self.set(
                            Phase::Polling,
                            "steady state reported; polling for updates".into(),
                        );
                        now_step
                    }
                    Err(e) => self.fail("reporting steady state to FleetLock", e.into()),
                }
            }
            Phase::Disabled | Phase::Finalized => Step {
                delay: IDLE,
                idle: true,
            },
            Phase::Polling => match self.poll() {
                Err(e) => self.fail("update check", e),
                Ok(ev) => match ev.target {
                    None => Step {
                        delay: self.poll_delay(),
                        idle: true,
                    },
                    Some(r) => match self.stage(&r) {
                        Ok(()) => {
                            self.set(
                                Phase::Staged,
                                format!("update {} staged; finalization locked until the strategy allows", r.version),
                            );
                            now_step
                        }
                        Err(e) => {
                            self.metrics().deploy_failures_total += 1;
                            self.fail(&format!("staging {}", r.version), e)
                        }
                    },
                },
            },
            Phase::Staged => match self.try_finalize() {
                Ok(step) => step,
                Err(e) => self.fail("finalizing", e),
            },
        }
    }

    /// Run steps until `stop` says so, sleeping in between.
    pub fn run_until(&mut self, stop: impl Fn(&Agent, Step) -> bool) {
        loop {
            let step = self.tick();
            if stop(self, step) {
                return;
            }
            std::thread::sleep(step.delay);
        }
    }

    fn booted(&self) -> Result<Booted> {
        let name = self.sysroot.booted_name().ok_or_else(|| {
            anyhow!(
                "no booted deployment found in {}; on a directory sysroot pass --assume-booted DEPLOYMENT",
                self.paths.sysroot.display()
            )
        })?;
        let (commit, _) = Deployment::parse_name(&name)
            .ok_or_else(|| anyhow!("booted deployment name `{name}` is not <commit>.<serial>"))?;
        let c = self.sysroot.repo()?.read_commit(&commit)?;
        Ok(Booted {
            commit: commit.to_hex(),
            version: c.version().map(str::to_string),
            stream: c
                .meta("keel.stream")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        })
    }

    fn query(&self, b: &Booted) -> Result<Query> {
        let u = &self.loaded.config.updates;
        let stream = u.stream.clone().or_else(|| b.stream.clone()).ok_or_else(|| {
            anyhow!(
                "no stream: the booted commit has no keel.stream metadata and updates.stream is not set ({})",
                crate::config::DIRS.join(", ")
            )
        })?;
        let platform = std::fs::read_to_string(self.root().join("proc/cmdline"))
            .ok()
            .and_then(|c| {
                keel_utils::cmdline::last_value(&c, keel_proto::node::KARG_PLATFORM_ID)
                    .map(str::to_string)
            });
        Ok(Query {
            basearch: std::env::consts::ARCH.into(),
            stream,
            node_uuid: self.node_uuid.clone(),
            rollout_wariness: self.loaded.config.identity.rollout_wariness,
            group: self.loaded.config.identity.group.clone(),
            os_version: b.version.clone(),
            os_checksum: b.commit.clone(),
            platform,
        })
    }

    /// Read the origin remote's summary and judge its age into the state (a failure is only
    /// logged: the graph poll decides about updates).
    pub fn check_remote_summary(&mut self) {
        match keel_update::fetch::origin_summary(&self.sysroot) {
            Ok(seen) => {
                let now = u64::try_from(self.clock.now()).unwrap_or(0);
                self.state.remote_summary = seen.map(|s| s.assess(now));
                if let Some(f) = self
                    .state
                    .remote_summary
                    .as_ref()
                    .filter(|f| f.is_problem())
                {
                    tracing::warn!("{}", f.message);
                }
            }
            Err(e) => tracing::warn!("checking the age of the origin remote's summary: {e}"),
        }
    }

    /// Poll the graph once and update state, metrics and the dead-end message.
    pub fn poll(&mut self) -> Result<Evaluation> {
        self.check_remote_summary();
        let b = self.booted()?;
        self.state.booted_commit = Some(b.commit.clone());
        let q = self.query(&b)?;
        self.metrics().update_checks_total += 1;
        let url = self.loaded.graph_url()?;
        let g = match graph::fetch(&self.http, &url, &q) {
            Ok(g) => g,
            Err(e) => {
                *self
                    .metrics()
                    .update_check_errors_total
                    .entry(e.kind())
                    .or_default() += 1;
                return Err(e.into());
            }
        };
        let failed: HashSet<String> = self
            .sysroot
            .failed_commits()?
            .into_iter()
            .map(|f| f.commit)
            .collect();
        let ev = graph::evaluate(&g, &b.commit, &failed)?;
        let now = self.clock.now();
        if self.mode == Mode::Service {
            if let Err(e) = motd::set(self.root(), ev.deadend.as_deref()) {
                tracing::warn!("could not update {}: {e}", motd::MOTD);
            }
        }
        {
            let mut m = self.metrics();
            m.last_poll_timestamp = now;
            m.update_available = ev.target.is_some();
            m.booted_release_is_deadend = ev.deadend.is_some();
            m.ignored_failed_targets = ev.skipped_failed.len() as u64;
        }
        for r in &ev.skipped_failed {
            tracing::warn!(
                "release {} ({}) is reachable but failed to boot healthy before; not applying it",
                r.version,
                r.commit
            );
        }
        self.state.last_poll = Some(now);
        self.state.last_error = None;
        self.state.booted_version = ev.booted.as_ref().map(|r| r.version.clone()).or(b.version);
        self.state.deadend = ev.deadend.clone();
        self.state.target = ev.target.clone();
        let summary = match (&ev.booted, &ev.target, &ev.deadend) {
            (None, _, _) => format!(
                "booted commit {} is not in the update graph of stream {}; nothing to do",
                b.commit, q.stream
            ),
            (_, _, Some(reason)) => format!("booted release is a dead-end: {reason}"),
            (_, Some(t), _) => format!("update available: {}", t.version),
            (Some(r), None, _) => format!("up to date ({}); last checked {now}", r.version),
        };
        let summary = match self
            .state
            .remote_summary
            .as_ref()
            .filter(|f| f.is_problem())
        {
            Some(f) => format!("{summary}; WARNING: {}", f.message),
            None => summary,
        };
        let phase = self.state.phase;
        self.set(phase, summary);
        Ok(ev)
    }

    /// The staged deployment's commit (hex).
    pub fn staged_commit(&self) -> Result<Option<String>> {
        Ok(self
            .sysroot
            .staged()?
            .and_then(|r| Deployment::parse_name(&r.deployment))
            .map(|(c, _)| c.to_hex()))
    }

    fn stage(&mut self, r: &Release) -> Result<()> {
        if self.staged_commit()?.as_deref() == Some(r.commit.as_str()) {
            // Staged before (an earlier run, `keel upgrade --stage-only`): keep it, locked.
            self.sysroot.set_finalization_locked(true)?;
            return Ok(());
        }
        self.metrics().deploy_attempts_total += 1;
        let commit = self.puller.pull(&self.sysroot, &r.commit)?;
        let version = self
            .sysroot
            .repo()?
            .read_commit(&commit)?
            .version()
            .map(str::to_string);
        if version.as_deref() != Some(r.version.as_str()) {
            bail!(
                "commit {commit} has version {version:?}, but the graph says {}; not staging it",
                r.version
            );
        }
        let d = self.sysroot.deploy(
            &commit,
            &DeployOptions {
                stage: true,
                lock_finalization: true,
                ..Default::default()
            },
        )?;
        tracing::info!(
            "staged {} ({}) with finalization locked",
            r.version,
            d.name()
        );
        Ok(())
    }

    fn try_finalize(&mut self) -> Result<Step> {
        let target = self
            .state
            .target
            .clone()
            .ok_or_else(|| anyhow!("staged without a target"))?;
        if self.staged_commit()?.as_deref() != Some(target.commit.as_str()) {
            self.set(
                Phase::Polling,
                format!(
                    "the staged deployment of {} is gone; polling again",
                    target.version
                ),
            );
            return Ok(Step {
                delay: Duration::ZERO,
                idle: false,
            });
        }
        let now = self.clock.now();
        let decision = {
            let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
            self.strategy
                .can_finalize(now, self.mode == Mode::Now, &mut m)
        };
        let wait = Step {
            delay: self.retry(),
            idle: false,
        };
        match decision {
            Decision::OutsideWindow { next } => {
                self.state.next_window = next;
                let tz = self
                    .strategy
                    .schedule
                    .as_ref()
                    .map_or("UTC", |s| s.time_zone());
                let when = next.map_or("never".to_string(), |n| {
                    jiff::Timestamp::from_second(n).map_or(n.to_string(), |t| t.to_string())
                });
                self.set(
                    Phase::Staged,
                    format!("update {} staged; reboot waits for the maintenance window (next opens {when}, windows in {tz})", target.version),
                );
                return Ok(wait);
            }
            Decision::LockRefused { kind, message } => {
                self.state.last_error = Some(message.clone());
                self.set(
                    Phase::Staged,
                    format!(
                        "update {} staged; waiting for a FleetLock slot ({kind})",
                        target.version
                    ),
                );
                return Ok(wait);
            }
            Decision::Allow => {}
        }
        if self.mode == Mode::Service {
            let users = sessions::interactive_sessions(self.root());
            if !users.is_empty() {
                let since = *self.postponed_since.get_or_insert(now);
                let max = self.loaded.config.agent.max_postpone_secs as i64;
                if now - since < max {
                    let left = max - (now - since);
                    sessions::broadcast(
                        self.root(),
                        &users,
                        &format!(
                            "Keel update {} is staged; the node reboots in {} minute(s) at most.",
                            target.version,
                            (left + 59) / 60
                        ),
                    );
                    self.metrics().postponed_finalizations_total += 1;
                    let names: Vec<String> = users
                        .iter()
                        .map(|s| format!("{}@{}", s.user, s.tty))
                        .collect();
                    self.set(
                        Phase::Staged,
                        format!("update {} staged; reboot postponed for interactive session(s) {} (at most {left} s more)", target.version, names.join(", ")),
                    );
                    return Ok(Step {
                        delay: self.retry().min(Duration::from_secs(left as u64)),
                        idle: false,
                    });
                }
                tracing::warn!("interactive sessions still open after {max} s; rebooting anyway");
            }
        }
        self.finalize(&target)?;
        Ok(Step {
            delay: IDLE,
            idle: false,
        })
    }

    fn finalize(&mut self, target: &Release) -> Result<()> {
        // The ESP is an automount that expires after 2 idle minutes; if it is not mounted when
        // shutdown finalizes, mounting it then waits on the stopping automount until the stop
        // job times out and the update is lost. Reading it now mounts it for the reboot.
        let boot = self.sysroot.boot();
        std::fs::read_dir(boot)
            .with_context(|| format!("reading the ESP at {}", boot.display()))?;
        self.sysroot.set_finalization_locked(false)?;
        self.metrics().finalizations_total += 1;
        self.set(
            Phase::Finalized,
            format!("update {} finalized; rebooting", target.version),
        );
        let r = keel_utils::cmd::run(Command::new("sh").arg("-c").arg(&self.paths.reboot_command));
        if let Err(e) = r {
            self.sysroot.set_finalization_locked(true)?;
            self.set(
                Phase::Staged,
                format!(
                    "update {} staged; the reboot command failed",
                    target.version
                ),
            );
            return Err(
                anyhow!(e).context(format!("reboot command `{}`", self.paths.reboot_command))
            );
        }
        Ok(())
    }
}
