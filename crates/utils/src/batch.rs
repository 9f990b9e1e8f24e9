//! Crash-safe writes of many files at once, with two `syncfs` calls instead of an fsync per file:
//! every file is first written to a temp sibling; [`Batch::commit`] makes all of them durable
//! (`syncfs`), renames them over their targets, and makes the renames durable (`syncfs` again).
//! A reader (or a reboot) sees each target either old or complete, never partly written.
//! Temp files of a batch that is dropped without commit are removed.

use crate::fsutil::fill_temp_sibling;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files staged for an all-at-once durable replacement. `stage` may be called from several
/// threads.
#[derive(Default)]
pub struct Batch {
    staged: Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Writes what `fill` produces to a temp file next to `target`, with permission bits `mode`
    /// set after `fill` ran (so `fill` may change the owner first: chown clears set-id bits).
    pub fn stage(
        &self,
        target: &Path,
        mode: u32,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        let (tmp, _file) = fill_temp_sibling(target, mode, fill)?;
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((tmp, target.to_path_buf()));
        Ok(())
    }

    /// Number of staged files.
    pub fn len(&self) -> usize {
        self.staged.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the staged data durable, renames every temp file over its target, and makes the
    /// renames durable. `sync_root` is any path on the filesystem holding the targets.
    pub fn commit(self, sync_root: &Path) -> io::Result<()> {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        if staged.is_empty() {
            return Ok(());
        }
        let sync = || -> io::Result<()> {
            let f = File::open(sync_root)?;
            rustix::fs::syncfs(&f).map_err(io::Error::from)
        };
        let result = (|| {
            sync()?;
            for (i, (tmp, target)) in staged.iter().enumerate() {
                if let Err(e) = fs::rename(tmp, target) {
                    for (t, _) in &staged[i..] {
                        let _ = fs::remove_file(t);
                    }
                    return Err(io::Error::new(
                        e.kind(),
                        format!("renaming {} to {}: {e}", tmp.display(), target.display()),
                    ));
                }
            }
            sync()
        })();
        result
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for (tmp, _) in self
            .staged
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_visible_until_commit() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "old").unwrap();
        let batch = Batch::new();
        batch
            .stage(&d.path().join("a"), 0o600, |f| f.write_all(b"new"))
            .unwrap();
        batch
            .stage(&d.path().join("b"), 0o4755, |f| f.write_all(b"bee"))
            .unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(fs::read(d.path().join("a")).unwrap(), b"old");
        assert!(!d.path().join("b").exists());
        batch.commit(d.path()).unwrap();
        assert_eq!(fs::read(d.path().join("a")).unwrap(), b"new");
        assert_eq!(
            fs::metadata(d.path().join("a"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o600
        );
        assert_eq!(
            fs::metadata(d.path().join("b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o4755
        );
        assert_eq!(names(d.path()), ["a", "b"]);
    }

    #[test]
    fn dropped_or_failed_batches_leave_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let batch = Batch::new();
        batch
            .stage(&d.path().join("x"), 0o644, |f| f.write_all(b"x"))
            .unwrap();
        let err = batch.stage(&d.path().join("y"), 0o644, |_| {
            Err(io::Error::other("fetch failed"))
        });
        assert!(err.is_err());
        drop(batch);
        assert_eq!(names(d.path()), Vec::<String>::new());
    }
}
