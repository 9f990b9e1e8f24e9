//! Crash-safe writes for filesystems without Unix permissions (the vfat EFI system partition):
//! temp file, fsync, rename, fsync the directory, like `fsutil::write_atomic_with`, but without
//! the `chmod` that vfat refuses with EPERM when the mode differs from its mount mask.

use crate::fsutil::{rename_into_place, temp_sibling};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Atomically replace `target` with what `fill` writes; the file mode is the filesystem's default.
pub fn write_atomic_nomode(
    target: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_sibling(target);
    let file = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        fill(&mut f)?;
        Ok(f)
    })();
    match file {
        // vfat writes a renamed file's new directory entry with size 0 and no first cluster and
        // fills them in only when the file's inode is written back: fsync the file under its
        // new name too, or a power cut leaves an empty file.
        Ok(f) => rename_into_place(&tmp, f, target, true),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("entry.conf");
        for content in ["first", "second"] {
            write_atomic_nomode(&p, |f| f.write_all(content.as_bytes())).unwrap();
            assert_eq!(fs::read_to_string(&p).unwrap(), content);
        }
        let err = write_atomic_nomode(&p, |_| Err(io::Error::other("fill failed")));
        assert!(err.is_err());
        assert_eq!(fs::read_to_string(&p).unwrap(), "second");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
