//! The agent's state as other programs see it: `/run/keel/agent/state.json`, rewritten
//! atomically on every change and shown by `keel agent status` and `keel status`.

use crate::graph::Release;
use keel_utils::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

/// The state file, relative to the root.
pub const STATE_FILE: &str = keel_deploy::AGENT_STATE_FILE;

/// Where the agent is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reporting steady state (releasing a FleetLock slot held from before the reboot).
    Starting,
    /// Updates are disabled in the configuration.
    Disabled,
    /// Polling the graph; nothing to do.
    Polling,
    /// A release is staged (finalization locked) and waits for the strategy.
    Staged,
    /// Finalization is unlocked and the reboot was started.
    Finalized,
}

impl Phase {
    /// Every phase (metrics list them all).
    pub const ALL: [Phase; 5] = [
        Phase::Starting,
        Phase::Disabled,
        Phase::Polling,
        Phase::Staged,
        Phase::Finalized,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Disabled => "disabled",
            Phase::Polling => "polling",
            Phase::Staged => "staged",
            Phase::Finalized => "finalized",
        }
    }
}

/// The agent's published state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The phase.
    pub phase: Phase,
    /// One line for humans (what the agent does or waits for).
    pub summary: String,
    /// The strategy name.
    pub strategy: String,
    /// The booted release's version, when the graph lists it.
    pub booted_version: Option<String>,
    /// The booted commit.
    pub booted_commit: Option<String>,
    /// The release being applied.
    pub target: Option<Release>,
    /// The booted release is a dead-end: why.
    pub deadend: Option<String>,
    /// UNIX time of the last successful poll.
    pub last_poll: Option<i64>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// With a periodic strategy: UNIX time the next window opens.
    pub next_window: Option<i64>,
    /// How old the origin remote's summary was at the last poll (stale or expired: the
    /// mirror may be frozen).
    #[serde(default)]
    pub remote_summary: Option<keel_deploy::Freshness>,
    /// UNIX time of this record.
    pub updated_at: i64,
}

impl AgentState {
    /// The first record.
    pub fn new(strategy: &str, now: i64) -> AgentState {
        AgentState {
            phase: Phase::Starting,
            summary: "starting".into(),
            strategy: strategy.into(),
            booted_version: None,
            booted_commit: None,
            target: None,
            deadend: None,
            last_poll: None,
            last_error: None,
            next_window: None,
            remote_summary: None,
            updated_at: now,
        }
    }

    /// Write it under `root`.
    pub fn save(&self, root: &Path) -> io::Result<()> {
        let p = root.join(STATE_FILE);
        std::fs::create_dir_all(p.parent().expect("has a parent"))?;
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        write_atomic(&p, &json, 0o644)
    }

    /// Read it from under `root`; `None` when the agent has not run since boot.
    pub fn load(root: &Path) -> io::Result<Option<AgentState>> {
        match std::fs::read(root.join(STATE_FILE)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(AgentState::load(t.path()).unwrap(), None);
        let mut s = AgentState::new("periodic", 10);
        s.phase = Phase::Staged;
        s.target = Some(Release {
            version: "2".into(),
            commit: "c2".into(),
            age_index: 1,
        });
        s.save(t.path()).unwrap();
        assert_eq!(AgentState::load(t.path()).unwrap(), Some(s));
        let text = std::fs::read_to_string(t.path().join(STATE_FILE)).unwrap();
        assert!(text.contains("\"phase\": \"staged\""), "{text}");
    }
}
