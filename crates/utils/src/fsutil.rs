//! Crash-safe writes: write to a temp file in the same directory, fsync it, rename it over the
//! target, fsync the directory. A reader sees the old content or the new, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name for a temp file next to `target`, unique within this process and across processes.
pub fn temp_sibling(target: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let short: String = name.chars().take(64).collect();
    target.with_file_name(format!(".{short}.tmp-{}-{n}", std::process::id()))
}

/// Fsync a directory so that renames inside it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Atomically replace `target` with `data`, with permission bits `mode`.
pub fn write_atomic(target: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(target, mode, |f| f.write_all(data))
}

/// Writes a command's output file (`-o PATH`): crash-safely like [`write_atomic`] when `target`
/// is, or will be, a regular file; in place when it is a device, FIFO or socket (`-o /dev/null`,
/// `-o /dev/stdout`), which a rename would replace with a regular file.
pub fn write_output(target: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    match fs::metadata(target) {
        Ok(m) if !m.file_type().is_file() && !m.is_dir() => {
            OpenOptions::new().write(true).open(target)?.write_all(data)
        }
        _ => write_atomic(target, data, mode),
    }
}

/// Creates a fresh temp sibling of `target`, lets `fill` write it, then sets permission bits
/// `mode` (after `fill`, so `fill` may change the owner first: chown clears set-id bits).
/// Returns the temp path and the open file; on failure the temp file is removed.
pub fn fill_temp_sibling(
    target: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<(PathBuf, File)> {
    let tmp = temp_sibling(target);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .open(&tmp)?;
        fill(&mut f)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(f)
    })();
    match result {
        Ok(f) => Ok((tmp, f)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Atomically replace `target` with what `fill` writes, with permission bits `mode`.
pub fn write_atomic_with(
    target: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let (tmp, f) = fill_temp_sibling(target, mode, fill)?;
    rename_into_place(&tmp, f, target, false)
}

/// The end of a crash-safe write: fsync the filled temp file `tmp`, rename it over `target`,
/// fsync the directory; `sync_renamed` also fsyncs the file under its new name (vfat needs it).
/// The temp file is removed when anything fails.
pub(crate) fn rename_into_place(
    tmp: &Path,
    f: File,
    target: &Path,
    sync_renamed: bool,
) -> io::Result<()> {
    let result = (|| {
        f.sync_all()?;
        drop(f);
        fs::rename(tmp, target)?;
        if sync_renamed {
            File::open(target)?.sync_all()?;
        }
        sync_dir(
            target
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let leftovers: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn failed_fill_leaves_old_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"old", 0o644).unwrap();
        let err = write_atomic_with(&p, 0o644, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
