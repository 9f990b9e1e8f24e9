//! The disks, mount and umount stages on real loop devices (privileged; skips visibly when not
//! root or without loop devices): GPT partitions created, matched, reused, deleted and resized;
//! filesystems created, reused and wiped; mounts under the root; RAID and LUKS when the kernel
//! has md and device-mapper.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

mod common;

use common::stage_env;
use keel_provision::disks::read_table;
use keel_provision::stages::{self, Stage, StageEnv};
use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A sparse image attached as a loop device with partition scanning; detached on drop.
struct Loop {
    dev: String,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(size_mib: u64) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(size_mib << 20)
            .unwrap();
        let dev = cmd::run_stdout(
            Command::new("losetup")
                .args(["--find", "--show", "--partscan"])
                .arg(&img),
        )
        .unwrap()
        .trim()
        .to_string();
        Loop { dev, _dir: dir }
    }

    fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Unmounts everything below a root on drop, so a failing test leaves no mounts behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for dir in [self.0.join("var"), self.0.clone()] {
            if keel_provision::mount::is_mounted(&dir).unwrap_or(false) {
                let _ = Command::new("umount").arg(&dir).status();
            }
        }
    }
}

fn skip(test: &str, tools: &[&str]) -> bool {
    let reason = if !rustix::process::geteuid().is_root() {
        Some("needs root for loop devices".to_string())
    } else if !Path::new("/dev/loop-control").exists() {
        Some("no /dev/loop-control".to_string())
    } else {
        tools
            .iter()
            .find(|t| !cmd::have(t))
            .map(|t| format!("{t} is not installed (see scripts/debian-packages.txt)"))
    };
    match reason {
        Some(r) => {
            keel_testsupport::skip(&format!("{test}: {r}"));
            true
        }
        None => false,
    }
}

const TOOLS: &[&str] = &[
    "losetup",
    "sgdisk",
    "sfdisk",
    "partx",
    "blkid",
    "wipefs",
    "mkfs.ext4",
    "mkfs.xfs",
    "mkfs.vfat",
    "mkswap",
    "mount",
    "umount",
];

/// A stage environment whose user config is `cfg`.
fn env_for(tmp: &Path, cfg: serde_json::Value) -> StageEnv {
    let path = tmp.join(format!(
        "cfg-{}.ign",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let work = tmp.join(path.file_stem().unwrap());
    let root = tmp.join("root");
    std::fs::create_dir_all(&root).unwrap();
    stage_env(&root, &work, &path)
}

fn run(env: &StageEnv, stages_: &[Stage]) -> anyhow::Result<()> {
    for s in stages_ {
        stages::run(*s, env)?;
    }
    Ok(())
}

fn blkid(dev: &str, tag: &str) -> String {
    cmd::run_stdout(Command::new("blkid").args(["-p", "-o", "value", "-s", tag, dev]))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn names(dev: &str) -> Vec<(u32, String, u64)> {
    read_table(dev)
        .unwrap()
        .partitions
        .iter()
        .map(|p| (p.number(), p.name.clone(), p.size / 2048))
        .collect()
}

#[test]
fn partitions_filesystems_and_mounts_on_a_loop_device() {
    if skip("partitions_filesystems_and_mounts_on_a_loop_device", TOOLS) {
        return;
    }
    let disk = Loop::new(400);
    let tmp = tempfile::tempdir().unwrap();
    let _unmount = Unmount(tmp.path().join("root"));
    let ext4_uuid = "5b9f0c2e-7d43-4d0a-9a51-2c1d3e4f5a6b";
    let layout = |wipe_table: bool| {
        serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "storage": {
                "disks": [{"device": disk.dev, "wipeTable": wipe_table, "partitions": [
                    {"number": 1, "label": "EFI", "sizeMiB": 32, "typeGuid": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
                    {"number": 2, "label": "swap", "sizeMiB": 16},
                    {"number": 3, "label": "root", "sizeMiB": 32, "guid": "11111111-2222-3333-4444-555555555555"},
                    {"number": 4, "label": "var", "sizeMiB": 0}
                ]}],
                "filesystems": [
                    {"device": disk.part(1), "format": "vfat", "label": "EFI"},
                    {"device": disk.part(2), "format": "swap", "label": "swap"},
                    {"device": disk.part(3), "format": "ext4", "label": "root", "uuid": ext4_uuid, "path": "/"},
                    {"device": disk.part(4), "format": "xfs", "label": "var", "path": "/var", "mountOptions": ["noatime"]}
                ],
                "files": [{"path": "/var/lib/marker", "contents": {"source": "data:,on%20xfs"}}]
            }
        })
    };
    // First boot: create everything, mount, write a file, unmount.
    let env = env_for(tmp.path(), layout(true));
    run(&env, &[Stage::FetchOffline, Stage::Disks, Stage::Mount]).unwrap();
    assert_eq!(
        names(&disk.dev),
        [
            (1, "EFI".into(), 32),
            (2, "swap".into(), 16),
            (3, "root".into(), 32),
            (4, "var".into(), 318)
        ]
    );
    for (n, fs, label) in [
        (1, "vfat", "EFI"),
        (2, "swap", "swap"),
        (3, "ext4", "root"),
        (4, "xfs", "var"),
    ] {
        assert_eq!(
            (blkid(&disk.part(n), "TYPE"), blkid(&disk.part(n), "LABEL")),
            (fs.to_string(), label.to_string()),
            "partition {n}"
        );
    }
    assert_eq!(blkid(&disk.part(3), "UUID"), ext4_uuid);
    assert!(keel_provision::mount::is_mounted(&env.root.join("var")).unwrap());
    stages::run(Stage::Files, &env).unwrap();
    stages::run(Stage::Umount, &env).unwrap();
    assert!(!keel_provision::mount::is_mounted(&env.root.join("var")).unwrap());
    assert!(!keel_provision::mount::is_mounted(&env.root).unwrap());
    let xfs_uuid = blkid(&disk.part(4), "UUID");

    // Same layout again without wipeTable: partitions match, filesystems are reused.
    let env = env_for(tmp.path(), layout(false));
    run(&env, &[Stage::FetchOffline, Stage::Disks, Stage::Mount]).unwrap();
    assert_eq!(
        blkid(&disk.part(4), "UUID"),
        xfs_uuid,
        "xfs must be reused, not recreated"
    );
    assert_eq!(
        std::fs::read_to_string(env.root.join("var/lib/marker")).unwrap(),
        "on xfs"
    );
    stages::run(Stage::Umount, &env).unwrap();

    // A partition that does not match, without wipePartitionEntry: fails, naming the entry.
    let mismatch = serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"disks": [{"device": disk.dev, "partitions": [{"number": 1, "label": "other"}]}]}});
    let env = env_for(tmp.path(), mismatch);
    let err = format!(
        "{:#}",
        run(&env, &[Stage::FetchOffline, Stage::Disks]).unwrap_err()
    );
    assert!(
        err.contains("$.storage.disks.0.partitions.0") && err.contains("does not match"),
        "{err}"
    );

    // Delete 3 and shrink 2 in place (resize keeps the start, GUID and type); then a partition
    // found by label with number 0 takes the lowest free number (3). (Ignition's validation
    // forbids number 0 in a list that deletes, so these are two configs.)
    let start2 = read_table(&disk.dev).unwrap().partitions[1].start;
    for parts in [
        serde_json::json!([{"number": 3, "shouldExist": false, "wipePartitionEntry": true}, {"number": 2, "label": "swap", "sizeMiB": 8, "resize": true}]),
        serde_json::json!([{"number": 0, "label": "extra", "startMiB": 49, "sizeMiB": 8}]),
    ] {
        let cfg = serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"disks": [{"device": disk.dev, "partitions": parts}]}});
        run(
            &env_for(tmp.path(), cfg),
            &[Stage::FetchOffline, Stage::Disks],
        )
        .unwrap();
    }
    assert_eq!(
        names(&disk.dev),
        [
            (1, "EFI".into(), 32),
            (2, "swap".into(), 8),
            (3, "extra".into(), 8),
            (4, "var".into(), 318)
        ]
    );
    assert_eq!(read_table(&disk.dev).unwrap().partitions[1].start, start2);

    // A filesystem of another type: refused without wipeFilesystem, replaced with it.
    for (wipe, ok) in [(false, false), (true, true)] {
        let cfg = serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"filesystems": [{"device": disk.part(1), "format": "ext4", "label": "newfs", "wipeFilesystem": wipe}]}});
        let env = env_for(tmp.path(), cfg);
        let r = run(&env, &[Stage::FetchOffline, Stage::Disks]);
        assert_eq!(r.is_ok(), ok, "{r:?}");
        if let Err(e) = r {
            let e = format!("{e:#}");
            assert!(
                e.contains("$.storage.filesystems.0") && e.contains("wipeFilesystem is false"),
                "{e}"
            );
        }
    }
    assert_eq!(blkid(&disk.part(1), "TYPE"), "ext4");
}

#[test]
fn raid1_on_two_loop_devices() {
    if skip(
        "raid1_on_two_loop_devices",
        &["losetup", "mdadm", "mkfs.ext4", "blkid"],
    ) {
        return;
    }
    if !Path::new("/proc/mdstat").exists() {
        keel_testsupport::skip("raid1_on_two_loop_devices: this kernel has no md (software RAID) driver (/proc/mdstat missing)");
        return;
    }
    let (a, b) = (Loop::new(64), Loop::new(64));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {
        "raid": [{"name": "keeltest", "level": "raid1", "devices": [a.dev, b.dev]}],
        "filesystems": [{"device": "/dev/md/keeltest", "format": "ext4", "label": "mirrored"}]}});
    let env = env_for(tmp.path(), cfg);
    let result = run(&env, &[Stage::FetchOffline, Stage::Disks]);
    let _ = Command::new("mdadm")
        .args(["--stop", "/dev/md/keeltest"])
        .status();
    result.unwrap();
}

#[test]
fn luks2_volume_with_key_file() {
    if skip(
        "luks2_volume_with_key_file",
        &["losetup", "cryptsetup", "mkfs.ext4", "blkid"],
    ) {
        return;
    }
    if !Path::new("/dev/mapper/control").exists() {
        keel_testsupport::skip("luks2_volume_with_key_file: this kernel has no device-mapper (/dev/mapper/control missing)");
        return;
    }
    let disk = Loop::new(64);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {
        "luks": [{"name": "keeltest", "device": disk.dev, "label": "sealed", "keyFile": {"source": "data:,secret-key"}, "options": ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]}],
        "filesystems": [{"device": "/dev/mapper/keeltest", "format": "ext4", "label": "inside"}]}});
    let env = env_for(tmp.path(), cfg);
    let result = run(&env, &[Stage::FetchOffline, Stage::Disks, Stage::Files]);
    let _ = Command::new("cryptsetup")
        .args(["close", "keeltest"])
        .status();
    result.unwrap();
    assert_eq!(blkid(&disk.dev, "TYPE"), "crypto_LUKS");
    let crypttab = std::fs::read_to_string(env.root.join("etc/crypttab")).unwrap();
    assert_eq!(
        crypttab,
        format!(
            "keeltest UUID={} /etc/luks/keeltest luks\n",
            blkid(&disk.dev, "UUID")
        )
    );
    assert_eq!(
        std::fs::read(env.root.join("etc/luks/keeltest")).unwrap(),
        b"secret-key"
    );
    assert_eq!(
        std::fs::read(PathBuf::from(&env.luks_key_dir).join("keeltest")).unwrap(),
        b"secret-key"
    );
}
