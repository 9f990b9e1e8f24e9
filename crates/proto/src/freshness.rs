//! How fresh a remote's summary was when a pull or check read it: recorded by the node
//! (`ostree/deploy/<stateroot>/keel-remote-summaries.json`), published by the agent and shown by
//! `keel status`. The verdict is computed by `keel_remote::freshness::assess`.

use serde::{Deserialize, Serialize};

/// What was seen of a remote's summary, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarySeen {
    /// The remote's name.
    pub remote: String,
    /// Its URL.
    pub url: String,
    /// The server offered a summary.
    pub present: bool,
    /// Its signature was checked (`sign-verify-summary`); otherwise its dates prove nothing.
    pub verified: bool,
    /// `ostree.summary.last-modified`, seconds since the epoch.
    pub last_modified: Option<u64>,
    /// `ostree.summary.expires`, seconds since the epoch.
    pub expires: Option<u64>,
    /// The limit in force (`summary-max-age-secs`; 0: no limit).
    pub max_age_secs: u64,
    /// When it was read, seconds since the epoch.
    pub checked_at: u64,
}

/// The verdict on a summary's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Younger than the limit, not expired.
    Fresh,
    /// Older than the limit: the mirror may be frozen.
    Stale,
    /// Past `ostree.summary.expires`.
    Expired,
    /// No summary, or no `ostree.summary.last-modified` in it.
    UnknownAge,
}

/// A [`SummarySeen`] judged at some time: what `upgrade --check`, the agent and `keel status`
/// report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// What was seen.
    #[serde(flatten)]
    pub seen: SummarySeen,
    /// The verdict.
    pub state: State,
    /// Seconds since `last_modified`, when known.
    pub age_secs: Option<u64>,
    /// One sentence for humans, naming the remote and what to do.
    pub message: String,
}

impl Freshness {
    /// Worth a warning (anything but fresh).
    pub fn is_problem(&self) -> bool {
        self.state != State::Fresh
    }
}
