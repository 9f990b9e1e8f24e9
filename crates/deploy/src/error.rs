//! The error type of the deployment library: one variant per situation a caller branches on.

use keel_store::StoreError;
use keel_utils::cmd::CmdError;
use std::io;
use std::path::{Path, PathBuf};

/// Errors of [`crate::Sysroot`] operations.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A filesystem operation failed on `path`.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The repository at `/ostree/repo` failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A system tool failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// A filesystem lacks the space an operation needs; nothing was changed.
    #[error(
        "not enough free space on {filesystem} (mounted at {}) for {what}: {needed} bytes needed, \
         {available} available; free space there (e.g. `keel cleanup`) and retry",
        mount.display()
    )]
    NoSpace {
        /// Device and type of the filesystem, e.g. `/dev/vda1 (vfat)`.
        filesystem: String,
        /// Its mount point.
        mount: PathBuf,
        /// What needed the space.
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The sysroot is not laid out as expected (not initialized, foreign files, ...).
    #[error("sysroot {}: {reason}", path.display())]
    Layout {
        /// The path at fault.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A deployment index given by the user does not exist.
    #[error("no deployment with index {0}; `keel status` lists them (0 is the default)")]
    NoSuchDeployment(usize),
    /// The tree to deploy lacks something a bootable deployment needs.
    #[error("commit {commit}: {reason}")]
    BadTree {
        /// The commit.
        commit: String,
        /// What is missing.
        reason: String,
    },
    /// The three-way /etc merge met a conflict it cannot resolve.
    #[error("/etc merge: {path}: {reason}")]
    EtcMerge {
        /// Path relative to /etc.
        path: String,
        /// What conflicts and what to do.
        reason: String,
    },
    /// Nothing to do or not allowed in the current state (no staged deployment, no rollback, ...).
    #[error("{0}")]
    State(String),
}

/// Attach a path to an `io::Result`.
pub(crate) trait IoPath<T> {
    fn at(self, path: &Path) -> Result<T, DeployError>;
}

impl<T> IoPath<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, DeployError> {
        self.map_err(|error| DeployError::Io {
            path: path.to_path_buf(),
            error,
        })
    }
}

impl<T> IoPath<T> for Result<T, rustix::io::Errno> {
    fn at(self, path: &Path) -> Result<T, DeployError> {
        self.map_err(|e| DeployError::Io {
            path: path.to_path_buf(),
            error: e.into(),
        })
    }
}
