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
use anyhow::Result;
use keel_ignition_config::types::Storage;
use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::Command;
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
    let out = cmd::run_accepting(
        Command::new("blkid").args(["-p", "-o", "export"]).arg(dev),
        &[2],
    )?;
    // Exit status 2: nothing found.
    if out.status.code() == Some(2) {
        return Ok(Probe::default());
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

    /// `blkid -p` through the command helper on real image files: exit status 2 (nothing
    /// found) is an empty probe, a filesystem is named.
    #[test]
    fn probe_image_files() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        assert_eq!(probe(&img).unwrap(), Probe::default());
        cmd::run(
            Command::new("mkfs.ext4")
                .args(["-q", "-L", "data"])
                .arg(&img),
        )
        .unwrap();
        let p = probe(&img).unwrap();
        assert_eq!((p.fs_type.as_str(), p.label.as_str()), ("ext4", "data"));
        assert!(!p.uuid.is_empty(), "{p:?}");
    }

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
