//! The two Fedora CoreOS input formats: the release index (`releases.json`) and the updates
//! metadata (`updates/<stream>.json`). Only the fields the graph needs are read; unknown keys
//! (notes, OCI images, last-modified) are accepted because upstream adds fields over time.

use serde::Deserialize;

/// Release index: every release of a stream, oldest first; the position is the age index.
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseIndex {
    pub releases: Vec<Release>,
}

/// One release of the index with its per-architecture OSTree commits.
#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    pub version: String,
    #[serde(default)]
    pub commits: Vec<Commit>,
}

/// The OSTree commit of a release for one architecture.
#[derive(Debug, Clone, Deserialize)]
pub struct Commit {
    pub architecture: String,
    pub checksum: String,
}

/// Updates metadata: barriers, dead-ends and rollouts by version.
#[derive(Debug, Clone, Deserialize)]
pub struct Updates {
    #[serde(default)]
    pub releases: Vec<UpdateEntry>,
}

/// Update policy of one version.
#[derive(Debug, Clone, Deserialize)]
pub struct UpdateEntry {
    pub version: String,
    #[serde(default)]
    pub metadata: UpdateMetadata,
}

/// `barrier`, `deadend` and `rollout` of one version (each optional).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateMetadata {
    pub barrier: Option<Reason>,
    pub deadend: Option<Reason>,
    pub rollout: Option<Rollout>,
}

/// Why a release is a barrier or a dead-end (a URL in Fedora CoreOS data).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reason {
    pub reason: Option<String>,
}

/// A linear ramp: from `start_percentage` (0.0..=1.0) at `start_epoch` (UNIX seconds) to 1.0
/// after `duration_minutes`; without a duration the ramp stays at `start_percentage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Rollout {
    #[serde(default)]
    pub start_epoch: i64,
    #[serde(default)]
    pub start_percentage: f64,
    #[serde(default)]
    pub duration_minutes: u64,
}

impl Rollout {
    /// The share of the fleet (0.0..=1.0) that may take this release at `now` (UNIX seconds):
    /// 0 before the start, `start_percentage` at the start, rising linearly to 1 at the end.
    pub fn level(&self, now: i64) -> f64 {
        let start = self.start_percentage.clamp(0.0, 1.0);
        if now < self.start_epoch {
            return 0.0;
        }
        if self.duration_minutes == 0 {
            return start;
        }
        let length = self.duration_minutes as f64 * 60.0;
        let elapsed = (now - self.start_epoch) as f64;
        if elapsed >= length {
            return 1.0;
        }
        start + (1.0 - start) * elapsed / length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_level_table() {
        let ramp = |p, d| Rollout {
            start_epoch: 1000,
            start_percentage: p,
            duration_minutes: d,
        };
        for (rollout, now, want) in [
            (ramp(0.0, 100), 999, 0.0),
            (ramp(0.0, 100), 1000, 0.0),
            (ramp(0.0, 100), 1000 + 3000, 0.5),
            (ramp(0.0, 100), 1000 + 6000, 1.0),
            (ramp(0.0, 100), 1000 + 60000, 1.0),
            (ramp(0.2, 100), 1000 + 3000, 0.6),
            (ramp(0.2, 0), 1000 + 3000, 0.2),
            (ramp(0.2, 0), 500, 0.0),
            (ramp(1.0, 0), 1000, 1.0),
            (ramp(1.5, 0), 1000, 1.0),
            (ramp(-1.0, 100), 1000, 0.0),
        ] {
            let got = rollout.level(now);
            assert!(
                (got - want).abs() < 1e-9,
                "{rollout:?} at {now}: {got} != {want}"
            );
        }
    }

    #[test]
    fn parses_updates_with_defaults() {
        let u: Updates = serde_json::from_str(
            r#"{"stream":"s","releases":[{"version":"1","metadata":{"rollout":{}}},
            {"version":"2","metadata":{"deadend":{"reason":"u"},"barrier":{}}}]}"#,
        )
        .unwrap();
        assert_eq!(u.releases[0].metadata.rollout, Some(Rollout::default()));
        assert_eq!(
            u.releases[1]
                .metadata
                .deadend
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("u")
        );
        assert!(u.releases[1].metadata.barrier.is_some());
    }
}
