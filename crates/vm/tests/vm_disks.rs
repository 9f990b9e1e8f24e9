//! Software RAID and LUKS2 from an Ignition config, in a VM (this build machine's kernel has
//! neither md nor device-mapper; the guest's Debian kernel has both). The image named by
//! `KEEL_VMTEST_IMAGE` boots with three blank virtio disks and a config that partitions them by
//! label, builds a RAID1 over two, a LUKS2 volume with a key file on the third, ext4 and xfs on
//! them with files written by the config, and systemd mount units. Checked over SSH after the
//! first boot and again after a reboot (array assembled, volume unlocked from /etc/crypttab,
//! mounts back, nothing provisioned again). With `KEEL_VMTEST_PROVISION_DISKS` naming the
//! built test binary of `crates/provision/tests/disks.rs`, its loop-device tests also run in the
//! guest, where they do not skip. Report: stderr and `KEEL_VMTEST_REPORT` (JSON).

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use anyhow::{ensure, Context, Result};
use keel_vm::harness::{Config, Harness, Report, TestRun, VmOptions};
use keel_vm::machine::Machine;
use keel_vm::node::{sh, wait_settled};
use keel_vm::qemu::extra_disk_by_id;
use keel_vm::testmain::{ReportPath, Test};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// Each blank disk; xfs needs 300 MiB and LUKS2 takes 16 MiB of header.
const DISK_BYTES: u64 = 512 << 20;
const RAID_MOUNT: &str = "/var/lib/raid";
const SECRET_MOUNT: &str = "/var/lib/secret";
const RAID_TEXT: &str = "mirrored by ignition";
const SECRET_TEXT: &str = "sealed by ignition";

fn mount_unit(what: &str, where_: &str, fs: &str) -> String {
    format!(
        "[Unit]\nDescription=Keel test mount {where_}\n[Mount]\nWhat={what}\nWhere={where_}\nType={fs}\n\
         [Install]\nWantedBy=local-fs.target\n"
    )
}

fn data_url(text: &str) -> String {
    format!("data:,{}%0A", text.replace(' ', "%20"))
}

/// Partitions by label on disks 1-3, RAID1 `data` over the first two, LUKS2 `secret` on the
/// third, ext4 and xfs with a file each, and mount units for both.
fn disks_config(pubkey: &str) -> serde_json::Value {
    let disk = |n: usize, label: &str| {
        json!({"device": extra_disk_by_id(n), "wipeTable": true,
               "partitions": [{"number": 1, "label": label}]})
    };
    json!({
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [pubkey]}]},
        "storage": {
            "disks": [disk(1, "raid.1.1"), disk(2, "raid.1.2"), disk(3, "luks.secret")],
            "raid": [{"name": "data", "level": "raid1",
                      "devices": ["/dev/disk/by-partlabel/raid.1.1", "/dev/disk/by-partlabel/raid.1.2"]}],
            "luks": [{"name": "secret", "device": "/dev/disk/by-partlabel/luks.secret",
                      "label": "secret", "wipeVolume": true,
                      "keyFile": {"source": "data:,keel-vmtest-luks-key"}}],
            "filesystems": [
                {"device": "/dev/md/data", "format": "ext4", "label": "raid",
                 "wipeFilesystem": true, "path": RAID_MOUNT},
                {"device": "/dev/mapper/secret", "format": "xfs", "label": "secret",
                 "wipeFilesystem": true, "path": SECRET_MOUNT}
            ],
            "files": [
                {"path": format!("{RAID_MOUNT}/hello.txt"), "mode": 420,
                 "contents": {"source": data_url(RAID_TEXT)}},
                {"path": format!("{SECRET_MOUNT}/hello.txt"), "mode": 420,
                 "contents": {"source": data_url(SECRET_TEXT)}}
            ]
        },
        "systemd": {"units": [
            {"name": "var-lib-raid.mount", "enabled": true,
             "contents": mount_unit("/dev/md/data", RAID_MOUNT, "ext4")},
            {"name": "var-lib-secret.mount", "enabled": true,
             "contents": mount_unit("/dev/mapper/secret", SECRET_MOUNT, "xfs")}
        ]}
    })
}

/// What the first boot made, to compare after the reboot (a second provisioning would have
/// made new ones).
#[derive(Default)]
struct Ids {
    array_uuid: String,
    luks_uuid: String,
}

/// Remembers `uuid` of `what` on the first call; later it must be the same.
fn same_as_first(first: &mut String, uuid: String, what: &str) -> Result<()> {
    ensure!(!uuid.is_empty(), "no {what} UUID");
    if first.is_empty() {
        *first = uuid;
        return Ok(());
    }
    ensure!(
        *first == uuid,
        "{what} UUID changed from {first} to {uuid}: made again by a second provisioning"
    );
    Ok(())
}

fn array_is_clean_raid1(m: &Machine) -> Result<String> {
    // A new mirror resyncs first; wait for it (bounded) so the state is final.
    sh(
        m,
        "sudo timeout 120 mdadm --wait /dev/md/data; sudo mdadm --wait-clean /dev/md/data || true",
    )?;
    let detail = sh(m, "sudo mdadm --detail /dev/md/data")?;
    let field = |key: &str| {
        detail
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix(':'))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    ensure!(field("Raid Level") == "raid1", "not raid1:\n{detail}");
    ensure!(
        field("Raid Devices") == "2" && field("Active Devices") == "2",
        "not 2 active devices:\n{detail}"
    );
    ensure!(field("State") == "clean", "state not clean:\n{detail}");
    Ok(field("UUID"))
}

fn luks2_volume(m: &Machine) -> Result<String> {
    let dump = sh(
        m,
        "sudo cryptsetup luksDump /dev/disk/by-partlabel/luks.secret",
    )?;
    ensure!(
        dump.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Version:", "2"]),
        "luksDump does not say LUKS2:\n{dump}"
    );
    let status = sh(m, "sudo cryptsetup status secret")?;
    ensure!(
        status.contains("is active") && status.contains("type:    LUKS2"),
        "mapping secret is not an active LUKS2 volume:\n{status}"
    );
    sh(
        m,
        "sudo cryptsetup luksUUID /dev/disk/by-partlabel/luks.secret",
    )
}

fn mounted(m: &Machine, dir: &str, source: &str, fstype: &str, file: &str) -> Result<()> {
    let got = sh(m, &format!("findmnt -no SOURCE,FSTYPE {dir}"))?;
    let want_source = sh(m, &format!("realpath {source}"))?;
    let fields: Vec<&str> = got.split_whitespace().collect();
    ensure!(
        fields.len() == 2 && fields[1] == fstype,
        "{dir}: findmnt says {got:?}, want {fstype}"
    );
    let real = sh(m, &format!("realpath {}", fields[0]))?;
    ensure!(
        real == want_source,
        "{dir} is mounted from {real:?}, want {want_source:?}"
    );
    let text = sh(m, &format!("cat {dir}/hello.txt"))?;
    ensure!(text == file, "{dir}/hello.txt holds {text:?}");
    Ok(())
}

fn storage_checks(t: &mut TestRun, m: &Machine, boot: &str, ids: &mut Ids) {
    t.check(
        &format!("mdadm: clean raid1 with 2 devices ({boot})"),
        || same_as_first(&mut ids.array_uuid, array_is_clean_raid1(m)?, "array"),
    );
    t.check(&format!("cryptsetup: LUKS2 volume open ({boot})"), || {
        same_as_first(&mut ids.luks_uuid, luks2_volume(m)?, "LUKS")
    });
    t.check(
        &format!("ext4 on the array mounted with the config's file ({boot})"),
        || mounted(m, RAID_MOUNT, "/dev/md/data", "ext4", RAID_TEXT),
    );
    t.check(
        &format!("xfs on the LUKS volume mounted with the config's file ({boot})"),
        || mounted(m, SECRET_MOUNT, "/dev/mapper/secret", "xfs", SECRET_TEXT),
    );
}

fn first_boot_checks(t: &mut TestRun, m: &Machine) {
    t.check("first boot completed (karg removed, entry blessed)", || {
        wait_settled(m, Duration::from_secs(300)).context(
            "keel-firstboot-complete.service did not finish, so the next boot would provision (and wipe) again",
        )
    });
    t.check("crypttab entry and key file in /etc", || {
        let tab = sh(m, "sudo cat /etc/crypttab")?;
        ensure!(
            tab.lines().any(|l| l.starts_with("secret UUID=")
                && l.split_whitespace().nth(2) == Some("/etc/luks/secret")),
            "/etc/crypttab has no entry for secret:\n{tab}"
        );
        ensure!(
            sh(m, "sudo cat /etc/luks/secret")? == "keel-vmtest-luks-key",
            "/etc/luks/secret does not hold the config's key"
        );
        Ok(())
    });
    t.check("the mounts are writable", || {
        sh(
            m,
            &format!("sudo sh -c 'echo kept > {RAID_MOUNT}/persist && echo kept > {SECRET_MOUNT}/persist && sync'"),
        )?;
        Ok(())
    });
}

fn second_boot_checks(t: &mut TestRun, m: &Machine) {
    t.check("provisioning did not run again", || {
        let cmdline = sh(m, "cat /proc/cmdline")?;
        ensure!(
            !cmdline
                .split_whitespace()
                .any(|a| a == "ignition.firstboot"),
            "first-boot karg still set: {cmdline}"
        );
        Ok(())
    });
    t.check("files written after the first boot survived", || {
        for dir in [RAID_MOUNT, SECRET_MOUNT] {
            let text = sh(m, &format!("cat {dir}/persist"))?;
            ensure!(text == "kept", "{dir}/persist holds {text:?}");
        }
        Ok(())
    });
    t.check(
        "unlocked at boot by systemd-cryptsetup from /etc/crypttab",
        || {
            sh(m, "systemctl is-active systemd-cryptsetup@secret.service")?;
            Ok(())
        },
    );
}

/// Runs the loop-device tests of `crates/provision/tests/disks.rs` (the binary `bin`) as root in
/// the guest; they must pass and none may skip.
fn provision_loop_tests(m: &Machine, bin: &Path) -> Result<()> {
    let data = std::fs::File::open(bin).with_context(|| format!("opening {}", bin.display()))?;
    let mut copy = m.ssh()?.command(
        "cat > /tmp/keel-provision-disks && chmod +x /tmp/keel-provision-disks",
        false,
    );
    let out = copy
        .stdin(Stdio::from(data))
        .output()
        .context("copying the test binary over SSH")?;
    ensure!(
        out.status.success(),
        "copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = m.ssh()?.output(
        "cd /tmp && sudo timeout 300 ./keel-provision-disks --test-threads=1 --nocapture 2>&1",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the tests failed in the guest:\n{text}"
    );
    ensure!(
        !text.contains("SKIP"),
        "a test skipped in the guest:\n{text}"
    );
    eprintln!("{text}");
    Ok(())
}

/// Boots once and waits until it is up; records the time to ready as `<label> ready`.
fn boot_ready(t: &mut TestRun, vm: &keel_vm::harness::Vm, label: &str) -> Result<Option<Machine>> {
    let mut m = vm.boot()?;
    let mut up = None;
    t.check(&format!("{label} reaches multi-user over SSH"), || {
        up = Some(m.wait_ready(READY_TIMEOUT)?);
        Ok(())
    });
    let Some((d, state)) = up else {
        return Ok(None);
    };
    t.timing(&format!("{label} ready"), d);
    t.check(&format!("no failed units ({label})"), || {
        if state == "running" {
            return Ok(());
        }
        let failed = sh(&m, "systemctl --failed --no-legend --plain").unwrap_or_default();
        anyhow::bail!("system state is {state:?}; failed units:\n{failed}")
    });
    Ok(Some(m))
}

fn raid_luks(h: &Harness, report: &mut Report) -> Result<()> {
    let mut t = TestRun::new("raid-luks");
    let vm = h.vm(
        "raid-luks",
        &Config::Ignition(disks_config(&h.key.public)),
        &VmOptions {
            extra_disks: vec![DISK_BYTES; 3],
            ..VmOptions::default()
        },
    )?;
    let mut ids = Ids::default();
    // A first boot that never came up leaves nothing to reboot into.
    if let Some(mut m) = boot_ready(&mut t, &vm, "first boot")? {
        storage_checks(&mut t, &m, "first boot", &mut ids);
        first_boot_checks(&mut t, &m);
        match std::env::var_os("KEEL_VMTEST_PROVISION_DISKS") {
            Some(bin) => {
                t.check("provision loop-device tests pass in the guest", || {
                    provision_loop_tests(&m, Path::new(&bin))
                });
            }
            None => eprintln!(
                "    note  KEEL_VMTEST_PROVISION_DISKS is not set: the provision loop-device tests do not run in the guest"
            ),
        }
        t.check("clean poweroff", || m.shutdown(Duration::from_secs(120)));
        drop(m);
        if let Some(mut m) = boot_ready(&mut t, &vm, "second boot")? {
            storage_checks(&mut t, &m, "second boot", &mut ids);
            second_boot_checks(&mut t, &m);
            let _ = m.shutdown(Duration::from_secs(60));
        }
    }
    report.tests.push(t);
    Ok(())
}

#[test]
fn vm_disks() {
    keel_vm::testmain::run_many(
        "disks",
        ReportPath::BesideSuite,
        &[Test {
            name: "raid-luks",
            covers: &["raid-luks"],
            run: |h, report, _| raid_luks(h, report),
        }],
    );
}
