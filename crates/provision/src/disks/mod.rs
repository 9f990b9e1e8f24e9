//! The `disks` stage, in Ignition's order: partition tables, RAID arrays, LUKS volumes, then
//! filesystems. Every change goes through the system tools (sgdisk, mdadm, cryptsetup,
//! wipefs, mkfs.*), run through `keel_utils::cmd`.

mod filesystems;
mod luks;
mod partitions;
mod raid;

pub use partitions::read_table;

use crate::error::{AtPath, OpError};
use crate::resource::Fetcher;
use anyhow::{Context, Result};
use keel_ignition_config::types::Storage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait for a device node to appear (udev may still be creating it).
const DEVICE_WAIT: Duration = Duration::from_secs(30);

/// Applies disks, RAID, LUKS and filesystems of `storage`.
pub fn apply(storage: &Storage, fetcher: &Fetcher, luks_key_dir: &Path) -> Result<(), OpError> {
    for (i, d) in storage.disks.iter().enumerate() {
        let dev = d.device.as_deref().unwrap_or_default();
        let at = format!("$.storage.disks.{i}");
        wait_for(dev).at(&at, format!("waiting for disk {dev}"))?;
        partitions::apply(d, &at)?;
    }
    for (i, r) in storage.raid.iter().enumerate() {
        raid::apply(r).at(
            format!("$.storage.raid.{i}"),
            format!(
                "creating RAID array {:?}",
                r.name.as_deref().unwrap_or_default()
            ),
        )?;
    }
    for (i, l) in storage.luks.iter().enumerate() {
        luks::apply(l, fetcher, luks_key_dir).at(
            format!("$.storage.luks.{i}"),
            format!(
                "setting up LUKS volume {:?}",
                l.name.as_deref().unwrap_or_default()
            ),
        )?;
    }
    for (i, f) in storage.filesystems.iter().enumerate() {
        let dev = f.device.as_deref().unwrap_or_default();
        let at = format!("$.storage.filesystems.{i}");
        wait_for(dev).at(&at, format!("waiting for device {dev}"))?;
        filesystems::apply(f).at(&at, format!("creating filesystem on {dev}"))?;
    }
    Ok(())
}

/// Waits until `dev` exists (device nodes and udev symlinks appear asynchronously).
pub fn wait_for(dev: &str) -> Result<PathBuf> {
    let start = Instant::now();
    loop {
        if let Ok(p) = std::fs::canonicalize(dev) {
            return Ok(p);
        }
        if start.elapsed() > DEVICE_WAIT {
            anyhow::bail!("device {dev} did not appear within {DEVICE_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `blkid` says is on a device: `TYPE`, `LABEL`, `UUID` (empty when nothing is found).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Probe {
    pub fs_type: String,
    pub label: String,
    pub uuid: String,
}

/// Probes a device for a filesystem or container signature (low-level, no cache).
pub fn probe(dev: &Path) -> Result<Probe> {
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(dev)
        .output()
        .with_context(|| format!("running blkid on {} (install util-linux)", dev.display()))?;
    // Exit status 2: nothing found.
    if out.status.code() == Some(2) {
        return Ok(Probe::default());
    }
    if !out.status.success() {
        anyhow::bail!(
            "blkid -p {} failed: {}",
            dev.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_probe(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_probe(text: &str) -> Probe {
    let mut p = Probe::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("TYPE", v)) => p.fs_type = v.to_string(),
            Some(("LABEL", v)) => p.label = v.to_string(),
            Some(("UUID", v)) => p.uuid = v.to_string(),
            _ => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_table() {
        let cases = [
            (
                "DEVNAME=/dev/loop0p1\nUUID=1234-abcd\nLABEL=data\nTYPE=ext4\nUSAGE=filesystem\n",
                Probe {
                    fs_type: "ext4".into(),
                    label: "data".into(),
                    uuid: "1234-abcd".into(),
                },
            ),
            ("DEVNAME=/dev/x\nPTTYPE=gpt\n", Probe::default()),
            ("", Probe::default()),
        ];
        for (text, want) in cases {
            assert_eq!(parse_probe(text), want, "{text}");
        }
    }
}
