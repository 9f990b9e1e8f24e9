//! GPT partitions with Ignition's matching rules. For each configured partition the existing
//! one is found by `number` (or by `label` when the number is 0) and then:
//!
//! | exists | shouldExist | wipePartitionEntry | matches | action |
//! |---|---|---|---|---|
//! | no  | false | any   | -     | nothing |
//! | no  | true  | any   | -     | create |
//! | yes | false | false | any   | fail |
//! | yes | false | true  | any   | delete |
//! | yes | true  | any   | yes   | keep (or grow/shrink when `resize`) |
//! | yes | true  | false | no    | fail |
//! | yes | true  | true  | no    | delete and create |
//!
//! Unset fields match anything; `sizeMiB: 0` matches a partition that fills its free space.
//! The table is read with `keel_utils::partitions` (`sfdisk --json`) and changed with one
//! `sgdisk` call.

use crate::error::{AtPath, OpError};
use anyhow::Result;
use keel_ignition_config::types::{Disk, Partition};
use keel_utils::cmd;
use keel_utils::partitions::{self, Partition as TablePartition, Table};
use std::path::Path;
use std::process::Command;

/// Reads the partition table of `dev` (an empty table when the disk has none).
pub fn read_table(dev: &str) -> Result<Table> {
    Ok(partitions::read(Path::new(dev))?)
}

fn guid_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether the existing partition `e` satisfies the configured `p` (unset fields match).
fn matches(p: &Partition, e: &TablePartition, table: &Table, mib: u64) -> bool {
    let start_ok = match p.start_mib {
        None | Some(0) => true,
        Some(s) => e.start == s as u64 * mib,
    };
    let size_ok = match p.size_mib {
        None => true,
        Some(0) => free_after(e, table) < mib,
        Some(s) => e.size == s as u64 * mib,
    };
    start_ok
        && size_ok
        && p.label.as_ref().is_none_or(|l| *l == e.name)
        && p.type_guid
            .as_ref()
            .is_none_or(|t| guid_eq(t, &e.type_guid))
        && p.guid.as_ref().is_none_or(|g| guid_eq(g, &e.uuid))
}

/// Free sectors between the end of `e` and the next partition (or the end of the disk).
fn free_after(e: &TablePartition, table: &Table) -> u64 {
    let end = e.start + e.size;
    let next = table
        .partitions
        .iter()
        .filter(|o| o.start >= end)
        .map(|o| o.start)
        .min()
        .or(table.lastlba.map(|l| l + 1))
        .unwrap_or(end);
    next.saturating_sub(end)
}

/// Options of one `--new` for sgdisk.
fn create_args(num: u32, p: &Partition, keep: Option<&TablePartition>, mib: u64) -> Vec<String> {
    let start = match (p.start_mib, keep) {
        (Some(s), _) if s > 0 => (s as u64 * mib).to_string(),
        (_, Some(k)) => k.start.to_string(),
        _ => "0".into(),
    };
    let end = match p.size_mib {
        Some(s) if s > 0 => format!("+{}", s as u64 * mib),
        _ => "0".into(),
    };
    let mut a = vec![format!("--new={num}:{start}:{end}")];
    let label = p
        .label
        .clone()
        .or_else(|| keep.map(|k| k.name.clone()).filter(|n| !n.is_empty()));
    if let Some(l) = label {
        a.push(format!("--change-name={num}:{l}"));
    }
    if let Some(t) = p
        .type_guid
        .clone()
        .or_else(|| keep.map(|k| k.type_guid.clone()))
    {
        a.push(format!("--typecode={num}:{t}"));
    }
    if let Some(g) = p.guid.clone().or_else(|| keep.map(|k| k.uuid.clone())) {
        a.push(format!("--partition-guid={num}:{g}"));
    }
    a
}

/// The sgdisk arguments that bring `table` to what `disk` asks for.
fn plan(disk: &Disk, table: &Table, at: &str) -> Result<Vec<String>, OpError> {
    let mib = 1024 * 1024 / table.sector_size();
    let mut deletes = Vec::new();
    let mut creates = Vec::new();
    let mut used: Vec<u32> = table
        .partitions
        .iter()
        .map(TablePartition::number)
        .collect();
    for (i, p) in disk.partitions.iter().enumerate() {
        let at = format!("{at}.partitions.{i}");
        let num = p.number.unwrap_or(0) as u32;
        let existing = table.partitions.iter().find(|e| {
            if num != 0 {
                e.number() == num
            } else {
                p.label.as_ref().is_some_and(|l| *l == e.name)
            }
        });
        let wipe = p.wipe_partition_entry == Some(true);
        let what = format!(
            "partition {}",
            p.label
                .as_deref()
                .map_or(num.to_string(), |l| format!("{l:?}"))
        );
        match (existing, p.should_exist != Some(false)) {
            (None, false) => {}
            (None, true) => {
                let n = if num != 0 { num } else { next_free(&used) };
                used.push(n);
                creates.extend(create_args(n, p, None, mib));
            }
            (Some(e), false) if wipe => {
                deletes.push(format!("--delete={}", e.number()));
                used.retain(|n| *n != e.number());
            }
            (Some(_), false) => return Err(anyhow::anyhow!("it exists, shouldExist is false and wipePartitionEntry is false")).at(at, format!("deleting {what}")),
            (Some(e), true) if matches(p, e, table, mib) => {}
            (Some(e), true) if p.resize == Some(true) && resize_only(p, e, table, mib) => {
                deletes.push(format!("--delete={}", e.number()));
                creates.extend(create_args(e.number(), p, Some(e), mib));
            }
            (Some(e), true) if wipe => {
                deletes.push(format!("--delete={}", e.number()));
                creates.extend(create_args(e.number(), p, None, mib));
            }
            (Some(e), true) => {
                return Err(anyhow::anyhow!(
                    "the existing partition {} (start {} size {} sectors, label {:?}, type {}, guid {}) does not match and wipePartitionEntry is false",
                    e.node, e.start, e.size, e.name, e.type_guid, e.uuid
                ))
                .at(at, format!("matching {what}"))
            }
        }
    }
    Ok(deletes.into_iter().chain(creates).collect())
}

/// Whether only the size differs (so a resize keeps the data).
fn resize_only(p: &Partition, e: &TablePartition, table: &Table, mib: u64) -> bool {
    let same_but_size = Partition {
        size_mib: None,
        ..p.clone()
    };
    matches(&same_but_size, e, table, mib)
}

fn next_free(used: &[u32]) -> u32 {
    (1..).find(|n| !used.contains(n)).unwrap_or(1)
}

/// Applies `disk`: optional table wipe, then all deletes and creates in one sgdisk call, then
/// tells the kernel and checks the result.
pub fn apply(disk: &Disk, at: &str) -> Result<(), OpError> {
    let dev = disk.device.as_deref().unwrap_or_default();
    if disk.wipe_table == Some(true) {
        cmd::run(Command::new("sgdisk").args(["--zap-all", dev]))
            .at(at, format!("wiping the partition table of {dev}"))?;
    }
    let table = read_table(dev).at(at, format!("reading the partition table of {dev}"))?;
    let ops = plan(disk, &table, at)?;
    if ops.is_empty() {
        tracing::info!("{dev}: partitions already as configured");
        return Ok(());
    }
    let op = format!("partitioning {dev}");
    cmd::run(Command::new("sgdisk").args(&ops).arg(dev)).at(at, &op)?;
    cmd::run(Command::new("partx").args(["--update", dev])).at(at, &op)?;
    let after = read_table(dev).at(at, &op)?;
    for p in disk
        .partitions
        .iter()
        .filter(|p| p.should_exist != Some(false))
    {
        let found = after.partitions.iter().find(|e| match p.number {
            Some(n) if n != 0 => e.number() == n as u32,
            _ => p.label.as_ref().is_some_and(|l| *l == e.name),
        });
        match found {
            Some(e) => {
                super::wait_for(&e.node).at(at, &op)?;
            }
            None => {
                return Err(anyhow::anyhow!(
                    "partition {:?} missing after sgdisk",
                    p.label.as_deref().unwrap_or_default()
                ))
                .at(at, &op)
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, start: u64, size: u64, name: &str) -> TablePartition {
        TablePartition {
            node: format!("/dev/loop9p{n}"),
            start,
            size,
            type_guid: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".into(),
            uuid: format!("00000000-0000-0000-0000-00000000000{n}"),
            name: name.into(),
        }
    }

    /// `sfdisk --json` through the command helper on real image files: no table is an empty
    /// table (sfdisk's refusal is an answer), a GPT is read, a missing file names sfdisk.
    #[test]
    fn read_table_of_image_files() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let path = img.to_str().unwrap();
        assert!(read_table(path).unwrap().partitions.is_empty());
        cmd::run(Command::new("sgdisk").args(["-n", "1:2048:+1M", "-c", "1:data", path])).unwrap();
        let table = read_table(path).unwrap();
        assert_eq!(table.partitions.len(), 1, "{table:?}");
        assert_eq!(
            (table.partitions[0].start, table.partitions[0].name.as_str()),
            (2048, "data")
        );
        let gone = dir.path().join("gone.img");
        let err = read_table(gone.to_str().unwrap()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("sfdisk --json") && msg.contains("gone.img"),
            "{msg}"
        );
    }

    #[test]
    fn plan_table() {
        let table = Table {
            sectorsize: Some(512),
            lastlba: Some(131038),
            partitions: vec![part(1, 2048, 20480, "boot"), part(2, 22528, 108511, "root")],
        };
        let p = |num: i64, label: Option<&str>, size: Option<i64>| Partition {
            number: Some(num),
            label: label.map(Into::into),
            size_mib: size,
            ..Default::default()
        };
        type Case = (Vec<Partition>, Result<Vec<&'static str>, &'static str>);
        let cases: Vec<Case> = vec![
            (vec![p(1, Some("boot"), Some(10))], Ok(vec![])),
            (vec![p(2, Some("root"), Some(0))], Ok(vec![])),
            (
                vec![p(3, Some("var"), Some(5))],
                Ok(vec!["--new=3:0:+10240", "--change-name=3:var"]),
            ),
            (
                vec![p(0, Some("new"), None), p(0, Some("new2"), None)],
                Ok(vec![
                    "--new=3:0:0",
                    "--change-name=3:new",
                    "--new=4:0:0",
                    "--change-name=4:new2",
                ]),
            ),
            (vec![p(1, Some("other"), None)], Err("does not match")),
            (
                vec![Partition {
                    wipe_partition_entry: Some(true),
                    ..p(1, Some("other"), None)
                }],
                Ok(vec!["--delete=1", "--new=1:0:0", "--change-name=1:other"]),
            ),
            (
                vec![Partition {
                    should_exist: Some(false),
                    ..p(2, None, None)
                }],
                Err("shouldExist is false"),
            ),
            (
                vec![Partition {
                    should_exist: Some(false),
                    wipe_partition_entry: Some(true),
                    ..p(2, None, None)
                }],
                Ok(vec!["--delete=2"]),
            ),
            (
                vec![Partition {
                    should_exist: Some(false),
                    ..p(5, None, None)
                }],
                Ok(vec![]),
            ),
            (
                vec![
                    Partition {
                        should_exist: Some(false),
                        wipe_partition_entry: Some(true),
                        ..p(2, None, None)
                    },
                    p(0, Some("new"), Some(1)),
                ],
                Ok(vec!["--delete=2", "--new=2:0:+2048", "--change-name=2:new"]),
            ),
            (
                vec![Partition {
                    resize: Some(true),
                    ..p(1, Some("boot"), Some(5))
                }],
                Ok(vec![
                    "--delete=1",
                    "--new=1:2048:+10240",
                    "--change-name=1:boot",
                    "--typecode=1:0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                    "--partition-guid=1:00000000-0000-0000-0000-000000000001",
                ]),
            ),
            (
                vec![Partition {
                    number: Some(0),
                    label: Some("root".into()),
                    type_guid: Some("0fc63daf-8483-4772-8e79-3d69d8477de4".into()),
                    ..Default::default()
                }],
                Ok(vec![]),
            ),
        ];
        for (parts, want) in cases {
            let disk = Disk {
                device: Some("/dev/loop9".into()),
                partitions: parts.clone(),
                ..Default::default()
            };
            match (plan(&disk, &table, "$.storage.disks.0"), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{parts:?}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{parts:?}: {e}"),
                (got, w) => panic!("{parts:?}: got {got:?}, want {w:?}"),
            }
        }
    }
}
