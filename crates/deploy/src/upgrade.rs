//! What the merge deployment follows ([`Sysroot::origin_refspec`], its `/etc`) and whether the
//! commit an origin points to is an upgrade of it ([`Sysroot::classify_upgrade`]); the update
//! crate (`keel_update::fetch::pull_origin`) brings the commit into `/ostree/repo` first.

use crate::bootconfig;
use crate::error::DeployError;
use crate::sysroot::Sysroot;
use keel_store::Checksum;
use std::path::PathBuf;

/// The result of [`Sysroot::classify_upgrade`].
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
    /// The refspec the merge deployment (booted, else default) follows.
    pub fn origin_refspec(&self) -> Result<String, DeployError> {
        let name = self.merge_name()?;
        self.origin(&name)?
            .refspec()
            .map(str::to_string)
            .ok_or_else(|| {
                DeployError::State(format!(
                    "deployment {name} follows no refspec (its .origin has none); use `keel deploy COMMIT`"
                ))
            })
    }

    /// The `/etc` of the merge deployment (on a booted node, the running `/etc`).
    pub fn merge_etc(&self) -> Result<PathBuf, DeployError> {
        Ok(self.deploy_path(&self.merge_name()?).join("etc"))
    }

    /// The merge deployment: booted, else the default.
    pub fn merge_name(&self) -> Result<String, DeployError> {
        let state = bootconfig::load(self)?;
        self.merge_deployment(&state)
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
