//! Errors of remote operations. Each names the object, URL or file at fault.

use crate::config::ConfigError;
use crate::fetch::FetchError;
use crate::sign::VerifyError;
use keel_store::StoreError;

/// A failed pull.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// A transfer failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The local repository failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The remote definition is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Received data is not what was asked for.
    #[error("{what} from {location} is corrupt: {reason}")]
    Corrupt {
        /// What was received.
        what: String,
        /// URL or path it came from.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A signature check failed.
    #[error("refusing {what} from {location}: {source}")]
    Signature {
        /// What was checked.
        what: String,
        /// URL or path it came from.
        location: String,
        /// Why it was refused.
        source: VerifyError,
    },
    /// The remote does not have the ref.
    #[error("ref `{name}` not found at {location}")]
    RefNotFound {
        /// The ref.
        name: String,
        /// Where it was looked up.
        location: String,
    },
    /// The commit is not meant for the ref it was fetched under.
    #[error("commit {commit} is bound to refs {bindings:?}, not to `{name}` (ostree.ref-binding); the server may be redirecting refs")]
    RefBinding {
        /// The commit.
        commit: keel_store::Checksum,
        /// The ref pulled.
        name: String,
        /// Refs the commit allows.
        bindings: Vec<String>,
    },
    /// The ref would move backwards (an older or unrelated commit), and that was not asked for.
    #[error("refusing to move {name} from {current} to {candidate}: {why}; a mirror or a man-in-the-middle may be replaying an old (validly signed) summary; --allow-downgrade accepts it")]
    Downgrade {
        /// The ref (or what the commit would replace).
        name: String,
        /// The current commit, described.
        current: String,
        /// The offered commit, described.
        candidate: String,
        /// Why it is not newer.
        why: crate::downgrade::Backwards,
    },
    /// Something else about the remote is unusable.
    #[error("{0}")]
    Remote(String),
}

impl PullError {
    /// Whether trying the same transfer again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PullError::Fetch(e) if e.is_retryable())
    }
}
