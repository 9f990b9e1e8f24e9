//! The store's error type. Every variant names the path, object or rev at fault.

use crate::checksum::Checksum;
use crate::gvariant::GvError;
use crate::objects::ObjectType;
use std::path::{Path, PathBuf};

/// Errors from repository operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory is not a usable repository.
    #[error("{}: not an OSTree repository ({reason}); create one with `keel repo --repo {} init --mode archive`", path.display(), path.display())]
    NotARepo {
        /// The repository path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An object that should exist does not.
    #[error("{kind} object {checksum} is missing from the repository")]
    MissingObject {
        /// Object type.
        kind: ObjectType,
        /// Object checksum.
        checksum: Checksum,
    },
    /// An object's bytes do not match its name or do not parse.
    #[error("{kind} object {checksum} is corrupt: {reason}")]
    Corrupt {
        /// Object type.
        kind: ObjectType,
        /// Object checksum.
        checksum: Checksum,
        /// What is wrong.
        reason: String,
    },
    /// A rev names no ref and no commit.
    #[error(
        "rev `{0}` not found: no ref and no commit of that name (list refs with `keel repo refs`)"
    )]
    RevNotFound(String),
    /// A checksum prefix matches more than one commit.
    #[error("rev `{0}` is ambiguous: more than one commit starts with it; give more characters")]
    AmbiguousRev(String),
    /// An invalid ref name.
    #[error(
        "`{0}` is not a valid ref name (components of letters, digits, `-._`, separated by `/`)"
    )]
    InvalidRef(String),
    /// The tree holds something OSTree cannot represent.
    #[error("{}: {what} cannot be stored in an OSTree repository (only regular files, symlinks and directories); remove it or exclude it from the tree", path.display())]
    Unsupported {
        /// The offending path.
        path: PathBuf,
        /// What it is.
        what: String,
    },
    /// A path does not exist inside a commit.
    #[error("no `{path}` in commit {commit}")]
    PathNotFound {
        /// The path inside the tree.
        path: String,
        /// The commit.
        commit: Checksum,
    },
    /// Bad input from the caller.
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Wrap a GVariant parse failure of an object.
    pub fn corrupt(kind: ObjectType, checksum: Checksum, e: GvError) -> StoreError {
        StoreError::Corrupt {
            kind,
            checksum,
            reason: e.0,
        }
    }
}

/// Attach a path to I/O errors.
pub trait IoPath<T> {
    /// Turn an `io::Error` into [`StoreError::Io`] naming `path`.
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoPath<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl<T> IoPath<T> for rustix::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })
    }
}
