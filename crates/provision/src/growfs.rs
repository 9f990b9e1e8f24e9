//! First boot: grow the root partition to the end of its disk and the ext4 filesystem on it
//! (`keel image growfs`, run by `keel-growfs.service` early in the real root, beside the rest of
//! startup, only with the first-boot karg).
//!
//! Steps: find the partition holding the root filesystem (by label), its disk and number
//! through sysfs; move the backup GPT header to the disk's end (`sgdisk -e`); recreate the
//! partition with the same start, type, name and unique GUID but ending at the last usable
//! sector (the table read with `keel_utils::partitions`, `sfdisk --json`, in the disk's own
//! sector size); tell the kernel the new size (`partx -u`, which resizes a partition that is in use);
//! grow the mounted filesystem online (`resize2fs`). A partition that already fills the disk is
//! left alone, so running it twice is harmless.

use anyhow::{Context, Result};
use keel_utils::{cmd, partitions};
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

/// Extend partition `n` of `disk` (a device or an image file) to the end of the disk.
/// Returns the partition's new size in bytes, or `None` when it already reaches the end.
pub fn grow_table(disk: &Path, n: u32) -> Result<Option<u64>> {
    cmd::run(Command::new("sgdisk").arg("-e").arg(disk)).with_context(|| {
        format!(
            "moving the backup GPT header to the end of {}",
            disk.display()
        )
    })?;
    let table = partitions::read(disk)?;
    let info = table.partition(n).with_context(|| {
        format!(
            "{} has no partition {n}; `sfdisk --json {}` lists the partitions",
            disk.display(),
            disk.display()
        )
    })?;
    let end = table.lastlba.with_context(|| {
        format!(
            "`sfdisk --json {}` reported no last usable sector",
            disk.display()
        )
    })?;
    // Keep the end aligned to 1 MiB like the image builder does.
    let per_mib = (1 << 20) / table.sector_size();
    let new_last = (end + 1) / per_mib * per_mib - 1;
    if new_last <= info.last() {
        return Ok(None);
    }
    cmd::run(
        Command::new("sgdisk")
            .arg(format!("--delete={n}"))
            .arg(format!("--new={n}:{}:{new_last}", info.start))
            .arg(format!("--typecode={n}:{}", info.type_guid))
            .arg(format!("--partition-guid={n}:{}", info.uuid))
            .arg(format!("--change-name={n}:{}", info.name))
            .arg(disk),
    )
    .with_context(|| format!("growing partition {n} of {}", disk.display()))?;
    Ok(Some((new_last - info.start + 1) * table.sector_size()))
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
                .args(keel_proto::disk::sgdisk_args(1 << 30))
                .arg(&disk),
        )
        .unwrap();
        let part = |disk: &Path| {
            partitions::read(disk)
                .unwrap()
                .partition(2)
                .unwrap()
                .clone()
        };
        let before = part(&disk);
        assert_eq!(grow_table(&disk, 2).unwrap(), None, "nothing to grow yet");
        f.set_len(3 << 30).unwrap();
        let bytes = grow_table(&disk, 2).unwrap().unwrap();
        let after = part(&disk);
        assert_eq!(
            (after.start, after.uuid.as_str(), after.name.as_str()),
            (before.start, before.uuid.as_str(), "root")
        );
        assert_eq!(after.type_guid, before.type_guid);
        assert_eq!(bytes, (3 << 30) - keel_proto::disk::ROOT_OFFSET - (1 << 20));
        assert_eq!(
            grow_table(&disk, 2).unwrap(),
            None,
            "second run changes nothing"
        );
    }

    /// The scraped `sgdisk -i` output lost a name's quotes at its ends (`'root''` became
    /// `root`); the JSON reader keeps the name exactly.
    #[test]
    fn a_grown_partition_keeps_its_exact_name() {
        let t = tempfile::tempdir().unwrap();
        let disk = t.path().join("disk.raw");
        let f = std::fs::File::create(&disk).unwrap();
        f.set_len(64 << 20).unwrap();
        cmd::run(
            Command::new("sgdisk")
                .args(["-n", "1:2048:+16M", "-c", "1:'root' x'", "-t", "1:8300"])
                .arg(&disk),
        )
        .unwrap();
        f.set_len(128 << 20).unwrap();
        assert!(grow_table(&disk, 1).unwrap().is_some());
        let p = partitions::read(&disk)
            .unwrap()
            .partition(1)
            .unwrap()
            .clone();
        assert_eq!(p.name, "'root' x'");
        assert_eq!(p.last(), (128 << 20) / 512 - 2048 - 1);
    }
}
