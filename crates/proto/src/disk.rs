//! The disk layout every Keel image has: GPT, partition 1 the EFI system partition (vfat,
//! label `EFI-SYSTEM`, mounted at /boot on the node), partition 2 the root filesystem (ext4,
//! filesystem label and partition name `root`) taking the rest of the disk.

/// One MiB.
pub const MIB: u64 = 1 << 20;
/// One GiB.
pub const GIB: u64 = 1 << 30;
/// Size of the EFI system partition.
pub const ESP_SIZE: u64 = 512 * MIB;
/// Filesystem label of the ESP.
pub const ESP_LABEL: &str = "EFI-SYSTEM";
/// Filesystem label (and GPT partition name) of the root filesystem.
pub const ROOT_LABEL: &str = "root";
/// GPT type GUID of an EFI system partition.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type GUID for a Linux x86-64 root partition (Discoverable Partitions Specification).
pub const ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
/// Partitions start 1 MiB into the disk; the backup GPT needs the last 33 sectors.
const ALIGN: u64 = MIB;

/// Byte offset of the ESP.
pub const ESP_OFFSET: u64 = ALIGN;
/// Byte offset of the root partition.
pub const ROOT_OFFSET: u64 = ALIGN + ESP_SIZE;

/// Size of the root partition on a disk of `disk_bytes` (the last MiB stays free for the
/// backup GPT).
pub fn root_size(disk_bytes: u64) -> u64 {
    disk_bytes.saturating_sub(ROOT_OFFSET + ALIGN)
}

/// `sgdisk` arguments writing the table on a disk of `disk_bytes` (sectors of 512 bytes).
pub fn sgdisk_args(disk_bytes: u64) -> Vec<String> {
    let esp_start = ESP_OFFSET / 512;
    let root_start = ROOT_OFFSET / 512;
    vec![
        "--clear".into(),
        format!("--new=1:{esp_start}:{}", esp_start + ESP_SIZE / 512 - 1),
        format!("--typecode=1:{ESP_TYPE}"),
        format!("--change-name=1:{ESP_LABEL}"),
        format!(
            "--new=2:{root_start}:{}",
            root_start + root_size(disk_bytes) / 512 - 1
        ),
        format!("--typecode=2:{ROOT_TYPE}"),
        format!("--change-name=2:{ROOT_LABEL}"),
    ]
}

/// The smallest disk that holds the ESP and a root filesystem of `root_bytes`, rounded up
/// to whole MiB, with room for both GPT copies.
pub fn disk_size_for(root_bytes: u64) -> u64 {
    let raw = ALIGN + ESP_SIZE + root_bytes + ALIGN;
    raw.div_ceil(MIB) * MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let a = sgdisk_args(2 << 30).join(" ");
        for want in [
            "--clear --new=1:2048:1050623 --typecode=1:C12A7328",
            "--change-name=1:EFI-SYSTEM",
            "--new=2:1050624:4192255 --typecode=2:4F68BCE3",
            "--change-name=2:root",
        ] {
            assert!(a.contains(want), "{want} not in {a}");
        }
    }

    #[test]
    fn sizes() {
        for (root, want) in [
            (0, 514 * MIB),
            (1, 515 * MIB),
            (MIB, 515 * MIB),
            (3 << 30, 514 * MIB + (3 << 30)),
        ] {
            assert_eq!(disk_size_for(root), want, "{root}");
        }
    }
}
