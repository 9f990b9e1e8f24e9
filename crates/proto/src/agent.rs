//! The update agent's published state (`/run/keel/agent/state.json`, see
//! [`crate::node::AGENT_STATE_FILE`]): the agent writes it, `keel agent status` and
//! `keel status` read it.

use crate::freshness::Freshness;
use serde::{Deserialize, Serialize};

/// A release of the update graph, as the agent names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Release {
    /// Version.
    pub version: String,
    /// OSTree commit.
    pub commit: String,
    /// Position in the release index.
    pub age_index: u64,
}

/// Where the agent is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    pub remote_summary: Option<Freshness>,
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
}
