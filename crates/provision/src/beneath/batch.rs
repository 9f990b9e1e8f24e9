//! [`Batch`]: many files made durable and renamed into place at once, beneath the root.

use super::{Dir, Root};
use anyhow::{Context, Result};
use std::fs::File;
use std::sync::Mutex;

/// Files written to temp siblings and all renamed into place at once on [`Batch::commit`]:
/// two `syncfs` calls instead of an fsync per file; a reader (or a reboot) sees each target
/// either old or complete. May be filled from several threads. Temp files of a batch dropped
/// without commit are removed.
pub struct Batch<'r> {
    root: &'r Root,
    /// (parent directory in the root, temp name, target name)
    staged: Mutex<Vec<(String, String, String)>>,
}

impl<'r> Batch<'r> {
    pub fn new(root: &'r Root) -> Batch<'r> {
        Batch {
            root,
            staged: Mutex::new(Vec::new()),
        }
    }

    /// Writes what `fill` produces to a temp file next to `path` (parents created), with
    /// permission bits `mode` set after `fill` ran.
    pub fn stage(
        &self,
        path: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
        let (dir, name) = self.root.parent(path)?;
        self.stage_in(&dir, name, mode, fill)
    }

    /// [`Batch::stage`] in a directory already open.
    pub fn stage_in(
        &self,
        dir: &Dir,
        name: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
        let (tmp, _file) = dir.fill_temp(name, mode, fill)?;
        self.adopt(dir, tmp, name);
        Ok(())
    }

    /// Takes a temp file made by [`Dir::fill_temp`] into the batch, to be renamed to `name`.
    pub fn adopt(&self, dir: &Dir, tmp: String, name: &str) {
        self.lock().push((dir.path.clone(), tmp, name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, String, String)>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of staged files.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the staged data durable, renames every temp file over its target, and makes the
    /// renames durable.
    pub fn commit(self) -> Result<()> {
        let staged = std::mem::take(&mut *self.lock());
        if staged.is_empty() {
            return Ok(());
        }
        let result = (|| -> Result<()> {
            self.root.sync()?;
            for (i, (parent, tmp, name)) in staged.iter().enumerate() {
                let renamed = self
                    .root
                    .find_dir(parent)
                    .and_then(|d| d.with_context(|| format!("{parent:?} disappeared")))
                    .and_then(|d| d.rename(tmp, name));
                if let Err(e) = renamed {
                    remove_temps(self.root, &staged[i..]);
                    return Err(e);
                }
            }
            self.root.sync()
        })();
        result
    }
}

fn remove_temps(root: &Root, staged: &[(String, String, String)]) {
    for (parent, tmp, _) in staged {
        if let Ok(Some(d)) = root.find_dir(parent) {
            let _ = d.remove_file(tmp);
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let staged = std::mem::take(&mut *self.lock());
        remove_temps(self.root, &staged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_renames_on_commit_and_cleans_up_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        let b = Batch::new(&root);
        b.stage("/a/b", 0o600, |f| {
            std::io::Write::write_all(f, b"x").map_err(Into::into)
        })
        .unwrap();
        assert!(!d.path().join("a/b").exists());
        b.commit().unwrap();
        assert_eq!(std::fs::read(d.path().join("a/b")).unwrap(), b"x");
        let b = Batch::new(&root);
        b.stage("/a/c", 0o600, |_| Ok(())).unwrap();
        drop(b);
        assert_eq!(std::fs::read_dir(d.path().join("a")).unwrap().count(), 1);
    }
}
