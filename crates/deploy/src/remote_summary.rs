//! The last summary read from each remote, kept in
//! `ostree/deploy/<stateroot>/keel-remote-summaries.json` so that `keel status` can say, without
//! the network, whether the mirror looked frozen (see `keel_proto::freshness`). Every pull or
//! check of the origin's remote (`keel upgrade [--check]`, `keel deploy`, the agent) records
//! what it read; writing is best effort (a read-only sysroot only loses the record).

use crate::error::{DeployError, IoPath};
use crate::sysroot::Sysroot;
use keel_proto::freshness::{Freshness, SummarySeen};
use keel_utils::fsutil::write_atomic;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The record file, in the stateroot directory.
pub const SUMMARIES_FILE: &str = "keel-remote-summaries.json";

impl Sysroot {
    fn summaries_path(&self) -> PathBuf {
        self.stateroot_dir().join(SUMMARIES_FILE)
    }

    fn load_summaries(&self) -> Result<BTreeMap<String, SummarySeen>, DeployError> {
        let p = self.summaries_path();
        match std::fs::read(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e).at(&p),
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DeployError::Layout {
                path: p,
                reason: format!("unreadable ({e}); delete it, the next upgrade check rewrites it"),
            }),
        }
    }

    /// Remember `seen` as the latest summary of its remote (best effort: a failure is logged).
    pub fn record_summary(&self, seen: &SummarySeen) {
        let write = || -> Result<(), DeployError> {
            let mut all = self.load_summaries().unwrap_or_default();
            all.insert(seen.remote.clone(), seen.clone());
            let p = self.summaries_path();
            let json = serde_json::to_vec_pretty(&all).map_err(|e| DeployError::Layout {
                path: p.clone(),
                reason: format!("cannot serialize: {e}"),
            })?;
            write_atomic(&p, &json, 0o644).at(&p)
        };
        if let Err(e) = write() {
            tracing::warn!(
                "could not record the summary of remote {}: {e}",
                seen.remote
            );
        }
    }

    /// The recorded summaries, judged at `now` (seconds since the epoch); an unreadable record
    /// is only worth a warning here.
    pub fn remote_summaries(&self, now: u64) -> Vec<Freshness> {
        match self.load_summaries() {
            Ok(all) => all.values().map(|s| s.assess(now)).collect(),
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }
}
