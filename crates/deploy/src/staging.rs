//! The staged-deployment record (`<run>/staged-deployment`, JSON) and the finalization lock
//! (`<run>/staged-deployment-locked`). The run directory is a tmpfs on a booted system, so a
//! staged deployment that is never finalized is forgotten at the next boot and its directory is
//! removed by the next cleanup, as with ostree.

use crate::error::{DeployError, IoPath};
use crate::sysroot::Sysroot;
use keel_utils::fsutil::write_atomic;
use std::fs;
use std::io;
use std::path::PathBuf;

pub use keel_proto::staged::StagedRecord;

impl Sysroot {
    fn staged_path(&self) -> PathBuf {
        self.run_dir().join("staged-deployment")
    }

    fn staged_lock_path(&self) -> PathBuf {
        self.run_dir().join("staged-deployment-locked")
    }

    /// The staged deployment, if any.
    pub fn staged(&self) -> Result<Option<StagedRecord>, DeployError> {
        let p = self.staged_path();
        match fs::read(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&p),
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| DeployError::Layout {
                    path: p.clone(),
                    reason: format!(
                        "unreadable staged-deployment record ({e}); remove it and stage again"
                    ),
                }),
        }
    }

    pub(crate) fn write_staged(&self, rec: &StagedRecord, lock: bool) -> Result<(), DeployError> {
        fs::create_dir_all(self.run_dir()).at(self.run_dir())?;
        let lp = self.staged_lock_path();
        if lock {
            write_atomic(&lp, b"", 0o644).at(&lp)?;
        } else if lp.exists() {
            fs::remove_file(&lp).at(&lp)?;
        }
        let p = self.staged_path();
        let json = serde_json::to_vec_pretty(rec).expect("a staged record serializes");
        write_atomic(&p, &json, 0o644).at(&p)
    }

    pub(crate) fn clear_staged(&self) -> Result<(), DeployError> {
        for p in [self.staged_path(), self.staged_lock_path()] {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).at(&p),
                _ => {}
            }
        }
        Ok(())
    }

    /// Is finalization of the staged deployment blocked (`staged-deployment-locked` exists)?
    pub fn finalization_locked(&self) -> bool {
        self.staged_lock_path().exists()
    }

    /// Block or allow finalization of the staged deployment (the update agent's decision).
    pub fn set_finalization_locked(&self, locked: bool) -> Result<(), DeployError> {
        let rec = self.staged()?.ok_or_else(|| {
            DeployError::State("nothing is staged; `keel upgrade` stages a deployment".into())
        })?;
        self.write_staged(&rec, locked)
    }
}
