//! How fresh a remote's summary was when a pull or check read it: recorded by the node
//! (`ostree/deploy/<stateroot>/keel-remote-summaries.json`), published by the agent and shown by
//! `keel status`. [`SummarySeen::assess`] gives the verdict at a given time.

use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// What was seen of a remote's summary, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

impl SummarySeen {
    /// Judge it at `now` (seconds since the epoch).
    pub fn assess(&self, now: u64) -> Freshness {
        let who = format!("the summary of remote `{}` ({})", self.remote, self.url);
        let age = self.last_modified.map(|t| now.saturating_sub(t));
        let (state, mut message) = match (self.present, self.last_modified, age) {
            (false, _, _) => (
                State::UnknownAge,
                format!(
                    "remote `{}` ({}) offers no summary, so its age is unknown and a frozen \
                     mirror cannot be detected; publish one with `keel repo summary --update \
                     --sign-key KEYFILE`",
                    self.remote, self.url
                ),
            ),
            _ if self.expires.is_some_and(|e| e <= now) => (
                State::Expired,
                format!(
                    "{who} expired at {} (ostree.summary.expires): the mirror may be frozen or \
                     replaying an old summary; updates published since are not seen",
                    format_time(self.expires.unwrap_or(0))
                ),
            ),
            (true, Some(t), Some(a)) if self.max_age_secs > 0 && a > self.max_age_secs => (
                State::Stale,
                format!(
                    "{who} was last modified {} ({} ago), more than the {} limit \
                     (summary-max-age-secs): the mirror may be frozen or replaying an old \
                     summary; updates published since are not seen",
                    format_time(t),
                    format_duration(a),
                    format_duration(self.max_age_secs)
                ),
            ),
            (true, Some(t), Some(a)) => (
                State::Fresh,
                format!(
                    "{who} was last modified {} ({} ago)",
                    format_time(t),
                    format_duration(a)
                ),
            ),
            (true, _, _) => (
                State::UnknownAge,
                format!(
                    "{who} has no ostree.summary.last-modified, so its age is unknown and a \
                     frozen mirror cannot be detected; the publisher should regenerate it with \
                     `keel repo summary --update`"
                ),
            ),
        };
        if self.present && !self.verified {
            message.push_str(
                " (its signature is not checked: sign-verify-summary is off, so these dates \
                 prove nothing)",
            );
        }
        Freshness {
            seen: self.clone(),
            state,
            age_secs: age,
            message,
        }
    }
}

/// Now, in seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch as RFC 3339 (UTC); the bare number when out of range.
pub fn format_time(secs: u64) -> String {
    // humantime formats years up to 9999.
    const MAX: u64 = 253_402_300_799;
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(t) if secs <= MAX => humantime::format_rfc3339_seconds(t).to_string(),
        _ => format!("{secs} s after the epoch"),
    }
}

/// A duration in the largest whole unit: `9 days`, `5 h`, `3 min`, `12 s`.
pub fn format_duration(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 3600 => format!("{} h", s / 3600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_out_of_range_do_not_panic() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert!(format_time(u64::MAX).contains("after the epoch"));
    }
}
