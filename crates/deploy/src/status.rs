//! What `keel status` reports: deployments with their role, version, origin and boot counting;
//! the staged deployment; and whether boot counting rolled the node back. A commit that
//! exhausted its boot tries is recorded in `ostree/deploy/<stateroot>/keel-failed.json` so that
//! upgrades never pick it again on their own.
//! Also the node's `/etc` changes (`keel config-diff`).

use crate::bootconfig::{self, BootState};
use crate::error::{DeployError, IoPath};
use crate::sysroot::{Deployment, Sysroot};
use keel_utils::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

/// The part a deployment plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Written, becomes the default at shutdown.
    Staged,
    /// Running now.
    Booted,
    /// The default boot entry (no booted deployment known).
    Default,
    /// The default boot entry, newer than the booted one, not booted yet.
    Pending,
    /// The default boot entry, but its boot tries are used up: it failed to boot healthy.
    Failed,
    /// What `keel rollback` (or a failed boot) goes back to.
    Rollback,
    /// Kept for another reason (pinned).
    Other,
}

/// Boot counting state of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BootCounting {
    /// Tries left.
    pub tries_left: u32,
    /// Tries used.
    pub tries_done: u32,
}

/// One deployment in the status.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DeploymentStatus {
    /// Position in the boot entry list (0 = default); `None` when staged.
    pub index: Option<usize>,
    /// Role.
    pub role: Role,
    /// `<commit>.<serial>`.
    pub deployment: String,
    /// Commit checksum.
    pub commit: String,
    /// Commit `version` metadata.
    pub version: Option<String>,
    /// Commit time (RFC 3339, UTC).
    pub timestamp: Option<String>,
    /// Origin refspec.
    pub origin: Option<String>,
    /// Pinned.
    pub pinned: bool,
    /// Boot counting in progress (`None` once blessed).
    pub boot_counting: Option<BootCounting>,
    /// Kernel arguments.
    pub kargs: Vec<String>,
}

/// Boot counting made the node boot an older deployment than the default entry.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RollbackNotice {
    /// The deployment that failed.
    pub from_deployment: String,
    /// Its version.
    pub from_version: Option<String>,
    /// Why.
    pub reason: String,
}

/// A commit that failed to boot healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailedCommit {
    /// Commit checksum.
    pub commit: String,
    /// Its version.
    pub version: Option<String>,
    /// Why it is recorded.
    pub reason: String,
    /// When it was recorded, seconds since the epoch.
    pub recorded_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FailedFile {
    failed: Vec<FailedCommit>,
}

/// The whole status.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// The stateroot.
    pub stateroot: String,
    /// Booted deployment name, if known.
    pub booted: Option<String>,
    /// The staged deployment.
    pub staged: Option<DeploymentStatus>,
    /// Finalization of the staged deployment is blocked.
    pub finalization_locked: bool,
    /// Deployments in entry order (default first).
    pub deployments: Vec<DeploymentStatus>,
    /// The deployment systemd-boot will boot next (bad entries sorted last).
    pub next_boot: Option<String>,
    /// Set when boot counting rolled the node back.
    pub rolled_back: Option<RollbackNotice>,
    /// Commits that failed to boot healthy; upgrades skip them.
    pub failed: Vec<FailedCommit>,
    /// The last summary read from each remote (a pull or check of the origin), judged now:
    /// a stale or expired one means the mirror may be frozen.
    pub remote_summaries: Vec<keel_proto::freshness::Freshness>,
    /// What the update agent (`keel agent`) last published, when it ran since boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<keel_proto::agent::AgentState>,
}

/// The update agent's state file, relative to the root; `keel agent` writes it, `keel status`
/// shows it.
pub const AGENT_STATE_FILE: &str = keel_proto::node::AGENT_STATE_FILE;

impl Sysroot {
    fn failed_path(&self) -> PathBuf {
        self.stateroot_dir().join("keel-failed.json")
    }

    /// Commits recorded as having failed to boot healthy.
    pub fn failed_commits(&self) -> Result<Vec<FailedCommit>, DeployError> {
        let p = self.failed_path();
        match fs::read(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).at(&p),
            Ok(b) => serde_json::from_slice::<FailedFile>(&b)
                .map(|f| f.failed)
                .map_err(|e| DeployError::Layout {
                    path: p.clone(),
                    reason: format!("unreadable ({e}); fix or delete it"),
                }),
        }
    }

    fn record_failed(&self, f: FailedCommit) -> Result<(), DeployError> {
        let mut all = self.failed_commits()?;
        if all.iter().any(|x| x.commit == f.commit) {
            return Ok(());
        }
        all.push(f);
        let p = self.failed_path();
        let json = serde_json::to_vec_pretty(&FailedFile { failed: all }).expect("serializes");
        write_atomic(&p, &json, 0o644).at(&p)
    }

    fn describe(
        &self,
        d: &Deployment,
        index: Option<usize>,
        role: Role,
    ) -> Result<DeploymentStatus, DeployError> {
        let repo = self.repo()?;
        let commit = repo.read_commit(&d.commit).ok();
        let origin = self.origin(&d.name())?;
        Ok(DeploymentStatus {
            index,
            role,
            deployment: d.name(),
            commit: d.commit.to_hex(),
            version: commit
                .as_ref()
                .and_then(|c| c.version().map(str::to_string)),
            timestamp: commit.as_ref().map(|c| {
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(c.timestamp))
                    .to_string()
            }),
            origin: origin.refspec().map(str::to_string),
            pinned: origin.pinned(),
            boot_counting: d
                .entry
                .as_ref()
                .and_then(|e| e.counter)
                .map(|c| BootCounting {
                    tries_left: c.left,
                    tries_done: c.done.unwrap_or(0),
                }),
            kargs: d.kargs.clone(),
        })
    }

    /// The status. Like every command it first finishes a boot-entry swap a crash interrupted,
    /// and it records a commit whose boot tries ran out (both best effort on a read-only root).
    pub fn status(&self) -> Result<Status, DeployError> {
        if let Err(e) = self.repair() {
            tracing::warn!("could not finish an interrupted boot-entry swap: {e}");
        }
        let state = bootconfig::load(self)?;
        let booted = self.booted_name();
        let booted_idx = state
            .deployments
            .iter()
            .position(|d| Some(d.name()) == booted);
        let mut deployments = Vec::new();
        let mut rollback_given = false;
        for (i, d) in state.deployments.iter().enumerate() {
            let bad = d
                .entry
                .as_ref()
                .and_then(|e| e.counter)
                .is_some_and(|c| c.is_bad());
            let role = match (i, booted_idx) {
                (_, Some(b)) if b == i => Role::Booted,
                (0, _) if bad => Role::Failed,
                (0, Some(_)) => Role::Pending,
                (0, None) => Role::Default,
                _ if !rollback_given => {
                    rollback_given = true;
                    Role::Rollback
                }
                _ => Role::Other,
            };
            deployments.push(self.describe(d, Some(i), role)?);
        }
        let staged = match self.staged()? {
            Some(rec) => match Deployment::parse_name(&rec.deployment) {
                Some((commit, serial)) if !state.contains(&rec.deployment) => {
                    let d = Deployment::staged(&rec, commit, serial);
                    Some(self.describe(&d, None, Role::Staged)?)
                }
                _ => None,
            },
            None => None,
        };
        let rolled_back = self.rollback_notice(&state, booted_idx, &deployments);
        if let (Some(n), Some(first)) = (&rolled_back, deployments.first()) {
            if first.role == Role::Failed {
                let f = FailedCommit {
                    commit: first.commit.clone(),
                    version: first.version.clone(),
                    reason: n.reason.clone(),
                    recorded_at: std::time::SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                };
                if let Err(e) = self.record_failed(f) {
                    tracing::warn!("could not record the failed commit: {e}");
                }
            }
        }
        Ok(Status {
            stateroot: self.stateroot().to_string(),
            booted,
            staged,
            finalization_locked: self.finalization_locked(),
            next_boot: bootconfig::boot_menu(&state).first().map(|d| d.name()),
            deployments,
            rolled_back,
            failed: self.failed_commits()?,
            remote_summaries: self.remote_summaries(keel_proto::freshness::now()),
            agent: self.agent_state(),
        })
    }

    /// The agent's published state; a missing file means the agent has not run since boot, and
    /// an unreadable one is only worth a warning here.
    fn agent_state(&self) -> Option<keel_proto::agent::AgentState> {
        let path = self.root().join(AGENT_STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("reading the update agent's state {}: {e}", path.display());
                return None;
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| {
                tracing::warn!(
                    "the update agent's state {} is not an agent state record: {e}",
                    path.display()
                )
            })
            .ok()
    }

    fn rollback_notice(
        &self,
        state: &BootState,
        booted_idx: Option<usize>,
        ds: &[DeploymentStatus],
    ) -> Option<RollbackNotice> {
        let b = booted_idx.filter(|b| *b > 0)?;
        let first = ds.first()?;
        let reason = match first.boot_counting {
            Some(c) if c.tries_left == 0 => format!(
                "boot counting exhausted: it never reached boot-complete.target in {} tries",
                c.tries_done
            ),
            Some(c) if c.tries_done > 0 => format!(
                "it was tried {} time(s) without reaching boot-complete.target; {} was booted instead",
                c.tries_done,
                state.deployments[b].name()
            ),
            _ => return None,
        };
        // The record is written at `/var/lib/keel/...` of the failing boot; that `/var` is the
        // stateroot's `var` directory, so the stateroot directory stands for the root here.
        let reason = match crate::health::recorded_failure(&self.stateroot_dir())
            .filter(|f| f.deployment.as_deref() == Some(first.deployment.as_str()))
        {
            Some(f) => format!("{reason}; its health checks failed: {}", f.summary()),
            None => reason,
        };
        Some(RollbackNotice {
            from_deployment: first.deployment.clone(),
            from_version: first.version.clone(),
            reason,
        })
    }
}

impl Sysroot {
    /// The `/etc` changes of deployment `index` (0 = default) against its defaults, like
    /// `ostree admin config-diff`.
    pub fn etc_diff(&self, index: usize) -> Result<Vec<crate::etcmerge::EtcChange>, DeployError> {
        let state = bootconfig::load(self)?;
        let d = state
            .deployments
            .get(index)
            .ok_or(DeployError::NoSuchDeployment(index))?;
        let dir = self.deploy_path(&d.name());
        crate::etcmerge::diff(&dir.join("usr/etc"), &dir.join("etc"))
    }
}
