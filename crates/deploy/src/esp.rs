//! Files on the vfat EFI system partition, written so that a power cut never leaves two
//! directory entries sharing one cluster chain.
//!
//! vfat has no atomic rename: `rename(a, b)` writes `b`'s directory slot and frees `a`'s slot in
//! two separate sector writes (the slot of `b` is completed when the file is fsynced under its
//! new name, `a`'s removal when the directory is). A power cut between them leaves **twins**:
//! `a` and `b` both present, pointing at the same clusters. Deleting either twin (or renaming
//! the other over it) frees clusters the survivor still uses, and the next file written there
//! overwrites it: a boot entry turned into garbage, or worse, a kernel or the boot loader.
//!
//! So on the ESP, Keel
//! - creates boot entries and kernels directly under their final names ([`create_synced`]:
//!   create, write, fsync the file, fsync the directory); never renamed, such a file has no twin
//!   and can be deleted safely after a crash (a cut during its creation leaves it empty, which
//!   systemd-boot skips and [`crate::bootconfig::repair`] removes);
//! - renames only for files that must keep a fixed name (`loader.conf`, the boot loader, an
//!   entry rewritten in place), and after a crash never deletes a leftover temp file whose bytes
//!   equal its target's: that is a twin, and it is **retired** (renamed to `.keel-retired-…`,
//!   which frees nothing) and never deleted ([`clean_temp_files`]);
//! - retires (never deletes) an entry file whose content is garbage: its clusters may already
//!   belong to another file.

use crate::error::{DeployError, IoPath};
use keel_utils::fsutil::sync_dir;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Prefix of retired files (twins and garbage), which nothing deletes (`fsck.fat` may); they
/// also end in [`RETIRED_SUFFIX`], so no reader of `*.conf` or `*.EFI` picks them up.
pub const RETIRED_PREFIX: &str = ".keel-retired-";
/// Suffix of retired files.
pub const RETIRED_SUFFIX: &str = ".retired";

/// Create `path` (it must not exist), write `data`, fsync the file, then its directory.
pub fn create_synced(path: &Path, data: &[u8]) -> Result<(), DeployError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)?;
    f.write_all(data).at(path)?;
    f.sync_all().at(path)?;
    drop(f);
    sync_dir(parent(path)).at(path)
}

fn parent(p: &Path) -> &Path {
    p.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Rename `path` out of the way as `.keel-retired-<name>.retired` (a rename frees no
/// clusters), fsynced.
pub fn retire(path: &Path) -> Result<(), DeployError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.trim_start_matches('.');
    let mut to = path.with_file_name(format!("{RETIRED_PREFIX}{base}{RETIRED_SUFFIX}"));
    let mut n = 1;
    while to.exists() {
        to = path.with_file_name(format!("{RETIRED_PREFIX}{base}.{n}{RETIRED_SUFFIX}"));
        n += 1;
    }
    tracing::warn!(
        "{}: kept as {} (it may share clusters with another file after a power cut; fsck.fat can reclaim it)",
        path.display(),
        to.display()
    );
    fs::rename(path, &to).at(&to)?;
    sync_dir(parent(path)).at(path)
}

/// Remove ESP directory `dir` and what it holds, except retired files (deleting one could free
/// clusters its twin freed already); the directory stays when it keeps one.
pub fn remove_dir_keeping_retired(dir: &Path) -> Result<(), DeployError> {
    let mut kept = false;
    for e in fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with(RETIRED_PREFIX) {
            kept = true;
        } else if e.file_type().at(dir)?.is_dir() {
            remove_dir_keeping_retired(&p)?;
        } else {
            fs::remove_file(&p).at(&p)?;
        }
    }
    if kept {
        return Ok(());
    }
    match fs::remove_dir(dir) {
        // A retired file further down kept its directory.
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
        r => r.at(dir),
    }
}

/// The file a temp file of `keel_utils::fsutil::temp_sibling` was meant to replace:
/// `.<name>.tmp-<pid>-<n>` → `<name>`.
pub fn temp_target(file_name: &str) -> Option<&str> {
    if file_name.starts_with(RETIRED_PREFIX) {
        return None;
    }
    let (name, rest) = file_name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let (pid, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(n) && !name.is_empty()).then_some(name)
}

/// Deal with the temp files interrupted atomic writes left in ESP directory `dir`: a temp file
/// with the same bytes as its target is a twin of it (the rename reached the disk only half)
/// and is retired; any other is deleted (it was never renamed, so it shares nothing).
/// Returns how many files it handled.
pub fn clean_temp_files(dir: &Path) -> Result<usize, DeployError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut handled = 0;
    for e in rd {
        let e = e.at(dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(target) = temp_target(&name) else {
            continue;
        };
        if !e.file_type().at(dir)?.is_file() {
            continue;
        }
        let path = e.path();
        let twin = fs::read(dir.join(target))
            .ok()
            .is_some_and(|t| fs::read(&path).is_ok_and(|d| d == t));
        if twin {
            retire(&path)?;
        } else {
            fs::remove_file(&path).at(&path)?;
        }
        handled += 1;
    }
    Ok(handled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_targets() {
        let table = [
            (".loader.conf.tmp-12-0", Some("loader.conf")),
            (".BOOTX64.EFI.tmp-7-31", Some("BOOTX64.EFI")),
            (".ostree-3-keel.conf.tmp-1-2", Some("ostree-3-keel.conf")),
            ("loader.conf", None),
            (".loader.conf.tmp-x-0", None),
            (".loader.conf.tmp-12", None),
            (".keel-retired-loader.conf.tmp-12-0.retired", None),
            (".tmp-1-2", None),
        ];
        for (name, want) in table {
            assert_eq!(temp_target(name), want, "{name}");
        }
    }

    #[test]
    fn twins_are_retired_and_other_temp_files_deleted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::write(p.join("loader.conf"), "timeout 0\n").unwrap();
        // A twin: the rename of the new content reached the disk, the temp's removal did not.
        fs::write(p.join(".loader.conf.tmp-9-0"), "timeout 0\n").unwrap();
        // Never renamed: its bytes differ from the target's.
        fs::write(p.join(".BOOTX64.EFI.tmp-9-1"), "new loader").unwrap();
        fs::write(p.join("BOOTX64.EFI"), "old loader").unwrap();
        // A temp file whose target is gone.
        fs::write(p.join(".entry.conf.tmp-9-2"), "x").unwrap();
        assert_eq!(clean_temp_files(p).unwrap(), 3);
        let mut names: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".keel-retired-loader.conf.tmp-9-0.retired",
                "BOOTX64.EFI",
                "loader.conf"
            ]
        );
        // Retired files stay whatever happens next.
        assert_eq!(clean_temp_files(p).unwrap(), 0);
    }

    #[test]
    fn directories_go_but_retired_files_stay() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("keel-aaa");
        fs::create_dir_all(gone.join("sub")).unwrap();
        fs::write(gone.join("vmlinuz"), "k").unwrap();
        fs::write(gone.join("sub/x"), "x").unwrap();
        remove_dir_keeping_retired(&gone).unwrap();
        assert!(!gone.exists());
        let kept = d.path().join("keel-bbb");
        fs::create_dir(&kept).unwrap();
        fs::write(kept.join("vmlinuz"), "k").unwrap();
        let twin = kept.join(".keel-retired-vmlinuz.tmp-1-0.retired");
        fs::write(&twin, "k").unwrap();
        remove_dir_keeping_retired(&kept).unwrap();
        assert!(twin.exists() && !kept.join("vmlinuz").exists());
    }

    #[test]
    fn create_synced_refuses_an_existing_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ostree-1-keel.conf");
        create_synced(&f, b"title one\n").unwrap();
        assert!(create_synced(&f, b"title two\n").is_err());
        assert_eq!(fs::read(&f).unwrap(), b"title one\n");
    }
}
