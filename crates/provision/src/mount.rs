//! The `mount` and `umount` stages: every filesystem with a `path` is mounted under the root
//! (shallowest first, with its `mountOptions`) and unmounted again in reverse order.

use crate::beneath::Root;
use crate::error::{AtPath, OpError};
use anyhow::{Context, Result};
use keel_ignition_config::types::{Filesystem, Storage};
use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Filesystems to mount with their index in the config, shallowest path first.
fn mountable(storage: &Storage) -> Vec<(usize, &Filesystem)> {
    let mut v: Vec<(usize, &Filesystem)> = storage
        .filesystems
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.path.is_some() && !matches!(f.format.as_deref(), None | Some("swap") | Some("none"))
        })
        .collect();
    v.sort_by_key(|(_, f)| f.path.as_deref().unwrap_or_default().matches('/').count());
    v
}

/// The mount point of `fs`, created beneath the root ([`crate::beneath`]) and returned as
/// its host path without links (a link there leads inside the root, never outside).
fn target(root: &Root, fs: &Filesystem) -> Result<PathBuf> {
    let dir = root.dir(fs.path.as_deref().unwrap_or_default())?;
    root.host_path(&dir)
}

/// The mount point of `fs` if it exists (for unmounting).
fn existing_target(root: &Root, fs: &Filesystem) -> Result<Option<PathBuf>> {
    match root.find_dir(fs.path.as_deref().unwrap_or_default())? {
        Some(dir) => root.host_path(&dir).map(Some),
        None => Ok(None),
    }
}

/// Whether something is mounted exactly at `dir` (per `/proc/self/mountinfo`).
pub fn is_mounted(dir: &Path) -> Result<bool> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let want = dir.to_string_lossy().replace(' ', "\\040");
    Ok(info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str())))
}

/// Mounts every filesystem that has a `path` under `root`; already-mounted ones are kept.
pub fn mount(root: &Path, storage: &Storage) -> Result<(), OpError> {
    for (i, fs) in mountable(storage) {
        let at = format!("$.storage.filesystems.{i}");
        // Opened again for every mount: a filesystem mounted on the root itself must be seen.
        let root = Root::open(root).at(&at, "opening the target root")?;
        let device = fs.device.as_deref().unwrap_or_default();
        let path = fs.path.as_deref().unwrap_or_default();
        let dir = target(&root, fs)
            .with_context(|| format!("creating mount point {}", root.show(path)))
            .at(&at, format!("mounting {device} at {path}"))?;
        let op = format!("mounting {device} at {}", dir.display());
        if is_mounted(&dir).at(&at, &op)? {
            tracing::info!("{} is already mounted", dir.display());
            continue;
        }
        let mut c = Command::new("mount");
        c.args(["-t", fs.format.as_deref().unwrap_or_default()]);
        if !fs.mount_options.is_empty() {
            c.args(["-o", &fs.mount_options.join(",")]);
        }
        cmd::run(c.arg(device).arg(&dir)).at(&at, &op)?;
    }
    Ok(())
}

/// Unmounts, deepest first, what [`mount`] mounted; paths not mounted are skipped.
pub fn umount(root: &Path, storage: &Storage) -> Result<()> {
    for (i, fs) in mountable(storage).into_iter().rev() {
        // Nothing of the root may stay open while it is unmounted.
        let Some(dir) = existing_target(&Root::open(root)?, fs)? else {
            continue;
        };
        if is_mounted(&dir)? {
            cmd::run(Command::new("umount").arg(&dir)).at(
                format!("$.storage.filesystems.{i}"),
                format!("unmounting {}", dir.display()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_order_and_filter() {
        let f = |dev: &str, format: Option<&str>, path: Option<&str>| Filesystem {
            device: Some(dev.into()),
            format: format.map(Into::into),
            path: path.map(Into::into),
            ..Default::default()
        };
        let storage = Storage {
            filesystems: vec![
                f("a", Some("ext4"), Some("/var/lib/x")),
                f("b", Some("xfs"), Some("/var")),
                f("c", Some("swap"), Some("/s")),
                f("d", Some("ext4"), None),
                f("e", None, Some("/e")),
            ],
            ..Default::default()
        };
        let order: Vec<usize> = mountable(&storage).into_iter().map(|(i, _)| i).collect();
        assert_eq!(order, [1, 0]);
        assert!(is_mounted(Path::new("/proc")).unwrap());
        assert!(!is_mounted(tempfile::tempdir().unwrap().path()).unwrap());
    }
}
