//! The one reader of partition tables: `sfdisk --json` (util-linux's `fdisk` package) run through
//! [`crate::cmd`], parsed with serde. Used by provisioning (Ignition's `storage.disks`) and by
//! first-boot growfs.

use crate::cmd::{self, CmdError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sector size when `sfdisk` does not report one.
const DEFAULT_SECTOR_SIZE: u64 = 512;

/// Failure to read a partition table.
#[derive(Debug, thiserror::Error)]
pub enum PartitionTableError {
    /// `sfdisk` could not run or failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// `sfdisk --json` printed something that is not its JSON.
    #[error("parsing `sfdisk --json {}`: {source}", dev.display())]
    Parse {
        dev: PathBuf,
        source: serde_json::Error,
    },
}

/// A partition table as `sfdisk --json` reports it (sectors throughout).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Table {
    /// Bytes per sector (512 when not reported).
    #[serde(default)]
    pub sectorsize: Option<u64>,
    /// The last usable sector.
    #[serde(default)]
    pub lastlba: Option<u64>,
    /// The partitions, in table order.
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Partition {
    /// The device node (`/dev/vda2`, or `disk.img2` for an image file).
    pub node: String,
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
    /// Type GUID.
    #[serde(rename = "type", default)]
    pub type_guid: String,
    /// Unique GUID.
    #[serde(default)]
    pub uuid: String,
    /// Partition name (GPT label).
    #[serde(default)]
    pub name: String,
}

#[derive(Deserialize)]
struct SfdiskJson {
    partitiontable: Table,
}

impl Table {
    /// Bytes per sector.
    pub fn sector_size(&self) -> u64 {
        self.sectorsize.unwrap_or(DEFAULT_SECTOR_SIZE)
    }

    /// The partition with number `n`.
    pub fn partition(&self, n: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number() == n)
    }
}

impl Partition {
    /// The partition number, from the node name's trailing digits (0 when there are none).
    pub fn number(&self) -> u32 {
        let digits = self
            .node
            .bytes()
            .rev()
            .take_while(u8::is_ascii_digit)
            .count();
        self.node[self.node.len() - digits..].parse().unwrap_or(0)
    }

    /// The last sector.
    pub fn last(&self) -> u64 {
        (self.start + self.size).saturating_sub(1)
    }
}

/// Parses the output of `sfdisk --json` for `dev`.
pub fn parse(dev: &Path, json: &[u8]) -> Result<Table, PartitionTableError> {
    serde_json::from_slice::<SfdiskJson>(json)
        .map(|j| j.partitiontable)
        .map_err(|source| PartitionTableError::Parse {
            dev: dev.to_path_buf(),
            source,
        })
}

/// Reads the partition table of `dev` (a block device or an image file); a disk without one
/// reads as an empty table.
pub fn read(dev: &Path) -> Result<Table, PartitionTableError> {
    match cmd::run(Command::new("sfdisk").arg("--json").arg(dev)) {
        Ok(out) => parse(dev, &out.stdout),
        Err(CmdError::Failed { stderr, .. })
            if stderr.contains("does not contain a recognized partition table") =>
        {
            Ok(Table::default())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{
   "partitiontable": {
      "label": "gpt",
      "id": "0E2A4E1C-7D48-4B5B-8B2B-5B3B0C7C1E11",
      "device": "/tmp/disk.img",
      "unit": "sectors",
      "firstlba": 2048,
      "lastlba": 6291422,
      "sectorsize": 4096,
      "partitions": [
         {"node": "/tmp/disk.img1", "start": 2048, "size": 1048576, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "uuid": "1D1E0B0C-6D0F-4C4E-9C55-0B8F4A1D7E11", "name": "EFI-SYSTEM"},
         {"node": "/tmp/disk.img12", "start": 1050624, "size": 5238784, "type": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "uuid": "2B6E0B0C-6D0F-4C4E-9C55-0B8F4A1D7E11", "name": "it's root"}
      ]
   }
}"#;

    #[test]
    fn parses_sfdisk_json() {
        let t = parse(Path::new("/tmp/disk.img"), JSON.as_bytes()).unwrap();
        assert_eq!(t.sector_size(), 4096);
        assert_eq!(t.lastlba, Some(6291422));
        let root = t.partition(12).unwrap();
        assert_eq!(root.name, "it's root");
        assert_eq!((root.start, root.last()), (1050624, 6289407));
        assert_eq!(root.type_guid, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
        assert_eq!(t.partitions[0].number(), 1);
        assert!(t.partition(2).is_none());
        assert_eq!(Table::default().sector_size(), 512);
        let e = parse(Path::new("/dev/x"), b"Disk /dev/x: 3 GiB")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("parsing `sfdisk --json /dev/x`"), "{e}");
    }

    #[test]
    fn reads_a_real_table_and_an_empty_disk() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        assert_eq!(read(&img).unwrap(), Table::default());
        cmd::run(
            Command::new("sgdisk")
                .args(["-n", "1:2048:+2M", "-c", "1:a \"b\"", "-t", "1:8300"])
                .arg(&img),
        )
        .unwrap();
        let t = read(&img).unwrap();
        let p = t.partition(1).unwrap();
        assert_eq!((p.start, p.size, p.name.as_str()), (2048, 4096, "a \"b\""));
        assert_eq!(p.type_guid, "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    }
}
