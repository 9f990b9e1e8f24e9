//! The staged-deployment record (`/run/keel/staged-deployment`, JSON): `keel upgrade` and the
//! agent write it when they stage, `keel finalize` at shutdown and `keel status` read it.

use serde::{Deserialize, Serialize};

/// What `keel finalize` needs to finish a staged deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRecord {
    /// The stateroot.
    pub stateroot: String,
    /// The deployment directory name `<commit>.<serial>`.
    pub deployment: String,
    /// sha256 of kernel ‖ initramfs, hex.
    pub bootcsum: String,
    /// Kernel arguments (without `ostree=`).
    pub kargs: Vec<String>,
    /// The deployment whose `/etc` changes are merged at finalization (the booted one).
    pub merge_deployment: Option<String>,
    /// When it was staged, seconds since the epoch.
    pub staged_at: u64,
}
