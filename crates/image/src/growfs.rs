//! First boot: grow the root partition to the end of its disk and the ext4 filesystem on it
//! (`keel image growfs`, run by `keel-growfs.service` early in the real root, beside the rest of
//! startup, only with the first-boot karg).
//!
//! Steps: find the partition holding the root filesystem (by label), its disk and number
//! through sysfs; move the backup GPT header to the disk's end (`sgdisk -e`); recreate the
//! partition with the same start, type, name and unique GUID but ending at the last usable
//! sector; tell the kernel the new size (`partx -u`, which resizes a partition that is in use);
//! grow the mounted filesystem online (`resize2fs`). A partition that already fills the disk is
//! left alone, so running it twice is harmless.

use anyhow::{Context, Result};
use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The partition behind a block device node, as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRef {
    /// Partition node (`/dev/vda2`).
    pub part: PathBuf,
    /// Whole-disk node (`/dev/vda`).
    pub disk: PathBuf,
    /// Partition number.
    pub number: u32,
}

/// Resolve `dev` (a symlink such as `/dev/disk/by-label/root` or a node) under `sys`.
pub fn partition_of(dev: &Path, sys: &Path) -> Result<PartitionRef> {
    let node =
        std::fs::canonicalize(dev).with_context(|| format!("resolving {}", dev.display()))?;
    let name = node
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no device name", node.display()))?;
    let class = sys.join("class/block").join(name);
    let number: u32 = std::fs::read_to_string(class.join("partition"))
        .with_context(|| {
            format!(
                "{} is not a partition ({} missing)",
                node.display(),
                class.join("partition").display()
            )
        })?
        .trim()
        .parse()
        .with_context(|| format!("parsing {}", class.join("partition").display()))?;
    let real =
        std::fs::canonicalize(&class).with_context(|| format!("resolving {}", class.display()))?;
    let disk = real
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .with_context(|| format!("no parent disk for {}", real.display()))?;
    Ok(PartitionRef {
        part: node.clone(),
        disk: node.with_file_name(disk),
        number,
    })
}

/// What `sgdisk -i N` says about a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Type GUID.
    pub type_guid: String,
    /// Unique GUID.
    pub unique_guid: String,
    /// First sector.
    pub first: u64,
    /// Last sector.
    pub last: u64,
    /// Partition name.
    pub name: String,
}

/// Parse `sgdisk -i N` output.
pub fn parse_info(text: &str) -> Result<PartitionInfo> {
    let field = |key: &str| -> Result<&str> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .with_context(|| format!("`{key}` missing from sgdisk output:\n{text}"))
    };
    let sector = |key: &str| -> Result<u64> {
        let v = field(key)?;
        v.split_whitespace()
            .next()
            .unwrap_or("")
            .parse()
            .with_context(|| format!("parsing {key} {v}"))
    };
    Ok(PartitionInfo {
        type_guid: field("Partition GUID code:")?
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string(),
        unique_guid: field("Partition unique GUID:")?.to_string(),
        first: sector("First sector:")?,
        last: sector("Last sector:")?,
        name: field("Partition name:")?.trim_matches('\'').to_string(),
    })
}

/// The last usable sector of the disk once its backup header is at the end (`sgdisk -E`).
fn last_usable(disk: &Path) -> Result<u64> {
    let out = cmd::run_stdout(Command::new("sgdisk").arg("-E").arg(disk))?;
    out.lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .with_context(|| format!("sgdisk -E {} printed no sector: {out}", disk.display()))
}

/// Extend partition `n` of `disk` (a device or an image file) to the end of the disk.
/// Returns the partition's new size in bytes, or `None` when it already reaches the end.
pub fn grow_table(disk: &Path, n: u32) -> Result<Option<u64>> {
    cmd::run(Command::new("sgdisk").arg("-e").arg(disk)).with_context(|| {
        format!(
            "moving the backup GPT header to the end of {}",
            disk.display()
        )
    })?;
    let info = parse_info(&cmd::run_stdout(
        Command::new("sgdisk").arg(format!("-i={n}")).arg(disk),
    )?)?;
    let end = last_usable(disk)?;
    // Keep the end aligned to 1 MiB (2048 sectors) like the image builder does.
    let new_last = (end + 1) / 2048 * 2048 - 1;
    if new_last <= info.last {
        return Ok(None);
    }
    cmd::run(
        Command::new("sgdisk")
            .arg(format!("--delete={n}"))
            .arg(format!("--new={n}:{}:{new_last}", info.first))
            .arg(format!("--typecode={n}:{}", info.type_guid))
            .arg(format!("--partition-guid={n}:{}", info.unique_guid))
            .arg(format!("--change-name={n}:{}", info.name))
            .arg(disk),
    )
    .with_context(|| format!("growing partition {n} of {}", disk.display()))?;
    Ok(Some((new_last - info.first + 1) * 512))
}

/// Grow the partition behind `dev` and its mounted ext4 filesystem. Returns the new size of
/// the partition in bytes, or `None` when there was nothing to grow.
pub fn grow(dev: &Path) -> Result<Option<u64>> {
    let p = partition_of(dev, Path::new("/sys"))?;
    let n = p.number;
    let Some(bytes) = grow_table(&p.disk, n)? else {
        tracing::info!("{} already fills {}", p.part.display(), p.disk.display());
        return Ok(None);
    };
    cmd::run(
        Command::new("partx")
            .args(["-u", "--nr", &n.to_string()])
            .arg(&p.disk),
    )
    .with_context(|| {
        format!(
            "telling the kernel about the new size of {}",
            p.part.display()
        )
    })?;
    cmd::run(Command::new("resize2fs").arg(&p.part))
        .with_context(|| format!("growing the filesystem on {}", p.part.display()))?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str =
        "Partition GUID code: 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 (Linux x86-64 root (/))
Partition unique GUID: 2B6E0B0C-6D0F-4C4E-9C55-0B8F4A1D7E11
First sector: 1050624 (at 513.0 MiB)
Last sector: 6289407 (at 3.0 GiB)
Partition size: 5238784 sectors (2.5 GiB)
Attribute flags: 0000000000000000
Partition name: 'root'
";

    #[test]
    fn parses_sgdisk_info() {
        let i = parse_info(INFO).unwrap();
        assert_eq!(
            i,
            PartitionInfo {
                type_guid: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709".into(),
                unique_guid: "2B6E0B0C-6D0F-4C4E-9C55-0B8F4A1D7E11".into(),
                first: 1050624,
                last: 6289407,
                name: "root".into(),
            }
        );
        let err = parse_info("First sector: 1\n").unwrap_err().to_string();
        assert!(err.contains("Partition GUID code"), "{err}");
    }

    #[test]
    fn finds_disk_and_number_through_sysfs() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let dev = t.path().join("dev");
        let devices = sys.join("devices/pci0000:00/virtio1/block/vda");
        std::fs::create_dir_all(devices.join("vda2")).unwrap();
        std::fs::write(devices.join("vda2/partition"), "2\n").unwrap();
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        std::os::unix::fs::symlink(devices.join("vda2"), sys.join("class/block/vda2")).unwrap();
        std::fs::create_dir_all(dev.join("disk/by-label")).unwrap();
        std::fs::write(dev.join("vda2"), "").unwrap();
        std::os::unix::fs::symlink("../../vda2", dev.join("disk/by-label/root")).unwrap();
        let p = partition_of(&dev.join("disk/by-label/root"), &sys).unwrap();
        assert_eq!(p.number, 2);
        assert_eq!(p.disk, std::fs::canonicalize(&dev).unwrap().join("vda"));
        assert!(partition_of(&dev.join("vda2"), &t.path().join("nosys")).is_err());
    }

    #[test]
    fn grows_the_table_of_an_enlarged_disk_file() {
        if !cmd::have("sgdisk") {
            keel_testsupport::skip(
                "grows_the_table_of_an_enlarged_disk_file: sgdisk missing (apt-get install gdisk)",
            );
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let disk = t.path().join("disk.raw");
        let f = std::fs::File::create(&disk).unwrap();
        f.set_len(1 << 30).unwrap();
        cmd::run(
            Command::new("sgdisk")
                .args(crate::layout::sgdisk_args(1 << 30))
                .arg(&disk),
        )
        .unwrap();
        let before =
            parse_info(&cmd::run_stdout(Command::new("sgdisk").arg("-i=2").arg(&disk)).unwrap())
                .unwrap();
        assert_eq!(grow_table(&disk, 2).unwrap(), None, "nothing to grow yet");
        f.set_len(3 << 30).unwrap();
        let bytes = grow_table(&disk, 2).unwrap().unwrap();
        let after =
            parse_info(&cmd::run_stdout(Command::new("sgdisk").arg("-i=2").arg(&disk)).unwrap())
                .unwrap();
        assert_eq!(
            (after.first, after.unique_guid.as_str(), after.name.as_str()),
            (before.first, before.unique_guid.as_str(), "root")
        );
        assert_eq!(after.type_guid, before.type_guid);
        assert_eq!(bytes, (3 << 30) - crate::layout::ROOT_OFFSET - (1 << 20));
        assert_eq!(
            grow_table(&disk, 2).unwrap(),
            None,
            "second run changes nothing"
        );
    }
}
