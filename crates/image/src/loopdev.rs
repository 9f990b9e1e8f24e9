//! Loop devices and mounts held by guards that undo themselves on drop, so a failed build never
//! leaves a loop device attached or a filesystem mounted.
//!
//! Each partition gets its own loop device (`losetup --offset --sizelimit`) rather than one
//! device with `--partscan`: partition nodes (`/dev/loopNpM`) need udev, which containers and
//! CI runners often lack.

use anyhow::{Context, Result};
use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device over a byte range of a file; detached on drop.
#[derive(Debug)]
pub struct LoopDevice {
    dev: PathBuf,
}

impl LoopDevice {
    /// Attach `file[offset .. offset+size]`.
    pub fn attach(file: &Path, offset: u64, size: u64) -> Result<LoopDevice> {
        let out = cmd::run_stdout(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(format!("--offset={offset}"))
                .arg(format!("--sizelimit={size}"))
                .arg(file),
        )
        .with_context(|| {
            format!(
                "attaching a loop device to {} (needs root and a free /dev/loop*)",
                file.display()
            )
        })?;
        let dev = PathBuf::from(out.trim());
        tracing::debug!("attached {} to {}", dev.display(), file.display());
        Ok(LoopDevice { dev })
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.dev
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = cmd::run(Command::new("losetup").arg("-d").arg(&self.dev)) {
            tracing::warn!("detaching {}: {e}", self.dev.display());
        }
    }
}

/// A mounted filesystem; unmounted on drop.
#[derive(Debug)]
pub struct Mount {
    target: PathBuf,
    mounted: bool,
}

impl Mount {
    /// Mount `source` on `target`.
    pub fn new(source: &Path, target: &Path) -> Result<Mount> {
        cmd::run(Command::new("mount").arg(source).arg(target))
            .with_context(|| format!("mounting {} on {}", source.display(), target.display()))?;
        Ok(Mount {
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    /// Bind-mount `source` on `target`.
    pub fn bind(source: &Path, target: &Path) -> Result<Mount> {
        cmd::run(Command::new("mount").arg("--bind").arg(source).arg(target)).with_context(
            || format!("bind-mounting {} on {}", source.display(), target.display()),
        )?;
        Ok(Mount {
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    /// Unmount now, reporting failure (drop only logs it).
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        cmd::run(Command::new("umount").arg(&self.target))
            .with_context(|| format!("unmounting {}", self.target.display()))?;
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = cmd::run(Command::new("umount").arg(&self.target)) {
                tracing::warn!("unmounting {}: {e}", self.target.display());
            }
        }
    }
}
