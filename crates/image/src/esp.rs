//! The EFI system partition: a FAT32 filesystem written straight into the disk file at the
//! partition's offset with `mkfs.vfat --offset` and filled with `mcopy` (mtools). No vfat mount
//! is needed, so this works where the kernel has no vfat driver.

use crate::layout::{ESP_LABEL, ESP_SIZE};
use anyhow::{Context, Result};
use keel_utils::cmd;
use std::path::Path;
use std::process::Command;

/// The mtools image spec for a filesystem at `offset` bytes into `disk`.
fn mtools_image(disk: &Path, offset: u64) -> String {
    format!("{}@@{offset}", disk.display())
}

/// Create the ESP filesystem at `offset` in `disk` and copy the contents of `src` into it.
pub fn write(disk: &Path, offset: u64, src: &Path) -> Result<()> {
    cmd::run(
        Command::new("mkfs.vfat")
            .args(["-F", "32", "-n", ESP_LABEL])
            .arg(format!("--offset={}", offset / 512))
            .arg(disk)
            .arg((ESP_SIZE / 1024).to_string()),
    )
    .context("creating the EFI system partition's FAT filesystem")?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("listing {}", src.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    if entries.is_empty() {
        return Ok(());
    }
    entries.sort();
    cmd::run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-Q", "-m", "-i"])
            .arg(mtools_image(disk, offset))
            .args(&entries)
            .arg("::/"),
    )
    .with_context(|| format!("copying {} into the EFI system partition", src.display()))?;
    Ok(())
}

/// Read a file from the ESP in `disk` at `offset` (for tests and checks).
pub fn read_file(disk: &Path, offset: u64, path: &str) -> Result<Vec<u8>> {
    let out = cmd::run(
        Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i"])
            .arg(mtools_image(disk, offset))
            .arg(format!("::{path}")),
    )
    .with_context(|| format!("reading {path} from the EFI system partition"))?;
    Ok(out.stdout)
}

/// List files (recursively) on the ESP.
pub fn list(disk: &Path, offset: u64) -> Result<Vec<String>> {
    let out = cmd::run_stdout(
        Command::new("mdir")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-/", "-b", "-i"])
            .arg(mtools_image(disk, offset))
            .arg("::/"),
    )
    .context("listing the EFI system partition")?;
    Ok(out
        .lines()
        .map(|l| l.trim_start_matches("::").to_string())
        .collect())
}
