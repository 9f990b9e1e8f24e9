//! The error type of fetches and update flows: a pull failure (with what to do about it), a
//! remote that is not defined or not usable, or the deployment engine's own error.

use keel_deploy::DeployError;
use std::io;
use std::path::PathBuf;

/// Errors of [`crate::fetch`].
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The deployment engine failed (or the sysroot is not in a state to update).
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The repository at `/ostree/repo` failed.
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
    /// A file (a remote definition) could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// A pull from a remote failed; no ref was moved and nothing was deployed.
    #[error(transparent)]
    Pull(Box<PullFailure>),
    /// A remote is not defined or not usable, or there is nothing to fetch; the message says
    /// what to do.
    #[error("{0}")]
    Remote(String),
}

impl UpdateError {
    /// A [`UpdateError::Remote`] with `message`.
    pub(crate) fn state(message: String) -> UpdateError {
        UpdateError::Remote(message)
    }
}

/// What [`UpdateError::Pull`] carries.
#[derive(Debug, thiserror::Error)]
#[error(
    "pulling {what} from remote `{remote}` ({url}) into {} failed: {error}; {hint}",
    repo.display()
)]
pub struct PullFailure {
    /// The ref or commit pulled.
    pub what: String,
    /// The remote's name.
    pub remote: String,
    /// Its URL.
    pub url: String,
    /// The sysroot repository.
    pub repo: PathBuf,
    /// What to do about it.
    pub hint: String,
    /// The pull's error.
    pub error: keel_remote::PullError,
}
