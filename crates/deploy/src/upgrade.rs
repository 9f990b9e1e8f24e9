//! Finding the commit an upgrade goes to. The origin refspec of the merge deployment names
//! what to follow; a [`Fetcher`] turns it into a commit in the sysroot repository. Today
//! [`LocalRef`] resolves it in `/ostree/repo`, where
//! [`crate::fetch::pull_origin`] has pulled it from the origin's remote.

use crate::bootconfig;
use crate::error::DeployError;
use crate::sysroot::Sysroot;
use keel_store::{Checksum, Repo};

/// Brings the commit a refspec names into the repository and returns it.
pub trait Fetcher {
    /// Fetch `refspec` (`remote:ref` or `ref`) into `repo`.
    fn fetch(&self, repo: &Repo, refspec: &str) -> Result<Checksum, DeployError>;
}

/// Resolves the refspec in the local repository, fetching nothing.
pub struct LocalRef;

impl Fetcher for LocalRef {
    fn fetch(&self, repo: &Repo, refspec: &str) -> Result<Checksum, DeployError> {
        Ok(repo.resolve_rev(refspec)?)
    }
}

/// The result of [`Sysroot::check_upgrade`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeCheck {
    /// The default (or staged) deployment already has this commit.
    UpToDate(Checksum),
    /// A new commit is available.
    Available {
        /// Its checksum.
        commit: Checksum,
        /// Its version.
        version: Option<String>,
    },
    /// The newest commit failed to boot healthy before; it is not deployed automatically.
    PreviouslyFailed {
        /// Its checksum.
        commit: Checksum,
        /// Its version.
        version: Option<String>,
    },
}

impl Sysroot {
    /// Where the origin of the merge deployment (booted, else default) points now.
    ///
    /// A commit whose boot tries ran out is recorded first (as `status` does), so it is never
    /// offered again.
    pub fn check_upgrade(&self, fetcher: &dyn Fetcher) -> Result<UpgradeCheck, DeployError> {
        let refspec = self.origin_refspec()?;
        let repo = self.repo()?;
        let commit = fetcher.fetch(&repo, &refspec)?;
        let version = repo.read_commit(&commit)?.version().map(str::to_string);
        self.classify_upgrade(commit, version)
    }

    /// The merge deployment: booted, else the default.
    pub(crate) fn merge_name(&self) -> Result<String, DeployError> {
        let state = bootconfig::load(self)?;
        let booted = self.booted_name();
        state
            .deployments
            .iter()
            .find(|d| Some(d.name()) == booted)
            .or(state.deployments.first())
            .map(|d| d.name())
            .ok_or_else(|| DeployError::State("no deployment yet; nothing to upgrade".into()))
    }

    /// Whether `commit` (the origin's newest, with its `version`) is an upgrade: already
    /// deployed or staged, failed before, or available.
    pub fn classify_upgrade(
        &self,
        commit: Checksum,
        version: Option<String>,
    ) -> Result<UpgradeCheck, DeployError> {
        self.status()?;
        let state = bootconfig::load(self)?;
        let staged = self.staged()?.map(|r| r.deployment);
        let current = state.deployments.first().map(|d| d.commit);
        let staged_commit = staged
            .as_deref()
            .and_then(crate::sysroot::Deployment::parse_name)
            .map(|(c, _)| c);
        if self
            .failed_commits()?
            .iter()
            .any(|f| f.commit == commit.to_hex())
        {
            return Ok(UpgradeCheck::PreviouslyFailed { commit, version });
        }
        if Some(commit) == current || Some(commit) == staged_commit {
            return Ok(UpgradeCheck::UpToDate(commit));
        }
        Ok(UpgradeCheck::Available { commit, version })
    }
}
