//! Automatic rollback and power cuts, shown in VMs (issue 8, items 3 and 4). Boots the image
//! named by `KEEL_VMTEST_IMAGE` (see `scripts/vmtest.sh`); the bad and good updates are built
//! inside the guest from the booted commit (`keel repo checkout`, change, `keel repo commit`),
//! so no host server is needed.
//!
//! - `rollback-health`, `rollback-panic`, `rollback-initrd` (one VM, in turn): v1 booted, a bad
//!   v2 deployed (failing health check script / garbage initramfs so the kernel panics / an
//!   initramfs whose prepare-root fails), reboot once; the node must come back on v1 by itself
//!   after three tries, with `keel status` saying why and the commit recorded as failed.
//! - `power-cuts` (another VM): QEMU is SIGKILLed at seeded random moments while `keel deploy`
//!   stages and while `keel finalize` runs at shutdown (`KEEL_VMTEST_CUTS`, default 6, half of
//!   each kind; `KEEL_VMTEST_SEED` to replay), stratified so that the cuts of a kind cover its
//!   whole window from start to end; every next boot is checked (complete deployment booted,
//!   synced `/var` data intact, `keel status` consistent, `keel cleanup` and repo fsck pass)
//!   and then used for the next cut. The hundreds of cuts are `vm_powercut.rs`'s soak.

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use keel_testsupport::rng::{seed_from_env, Rng};
use keel_vm::cpio::{newc, Member};
use keel_vm::harness::{Config, Harness, Report, TestRun, Vm, VmOptions};
use keel_vm::machine::Machine;
use keel_vm::node::{reboot, wait_rebooted, wait_settled, BOOT_BANNER};
use keel_vm::testmain::{ReportPath, Test};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(900);
/// A whole rollback case (three failed tries and the fallback boot) under TCG: a health-check
/// try took 2 min on an idle host, 6 min on a loaded one.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(3600);
const REPO: &str = "/sysroot/ostree/repo";
const DEPLOY_DIR: &str = "/sysroot/ostree/deploy/keel/deploy";
/// Console lines of systemd stopping the finalize unit at shutdown (matched on the text
/// without colors; systemd cuts the middle out of long "name - description" lines).
const FINALIZE_STARTS: &[&str] = &["Stopping", "keel-finalize-sta"];
const FINALIZE_DONE: &[&str] = &["Stopped", "keel-finalize-sta"];

fn config(pubkey: &str) -> Config {
    Config::Ignition(json!({
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [pubkey]}]}
    }))
}

fn sh(m: &Machine, cmd: &str) -> Result<String> {
    m.ssh()?.run(cmd)
}

/// Run a shell script as root in the guest (sent base64-encoded, so no quoting issues).
fn root_script(m: &Machine, script: &str) -> Result<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(script);
    sh(m, &format!("echo {b64} | base64 -d | sudo sh -s"))
}

fn status(m: &Machine) -> Result<Value> {
    let out = sh(m, "sudo keel status --json")?;
    serde_json::from_str(&out).with_context(|| format!("keel status --json printed {out}"))
}

/// The booted deployment (`<commit>.<serial>`) and its commit.
fn booted(st: &Value) -> Result<(String, String)> {
    let name = st["booted"]
        .as_str()
        .with_context(|| format!("no booted deployment in {st}"))?
        .to_string();
    let commit = name.split('.').next().unwrap_or_default().to_string();
    Ok((name, commit))
}

/// Build a variant of `base` in the guest: check it out, run `change` in the checkout (as
/// root, cwd = checkout; never edit checked-out files in place, they are the repo's objects),
/// commit it with version `version`. Returns the commit checksum.
fn build_variant(m: &Machine, base: &str, version: &str, change: &str) -> Result<String> {
    let dir = format!("/var/tmp/keel-variant-{version}");
    let script = format!(
        "set -e\nrm -rf {dir}\nkeel repo --repo {REPO} checkout {base} {dir}\ncd {dir}\n{change}\n\
         cd /\nkeel repo --repo {REPO} commit -b keel-test/{version} -s {version} \
         --add-metadata-string version={version} {dir}\nrm -rf {dir}\n"
    );
    let out = root_script(m, &script)?;
    let commit = out.lines().last().unwrap_or_default().trim().to_string();
    ensure!(
        commit.len() == 64 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "keel repo commit printed {out:?}"
    );
    Ok(commit)
}

/// Does a console line since `mark` (colors removed) contain all of `parts`?
fn console_has(m: &Machine, mark: u64, parts: &[&str]) -> bool {
    m.console
        .since(mark)
        .lines()
        .map(keel_vm::console::strip_control)
        .any(|l| parts.iter().all(|p| l.contains(p)))
}

/// Wait until [`console_has`] holds; the time waited.
fn wait_console(m: &mut Machine, mark: u64, parts: &[&str], timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    while !console_has(m, mark, parts) {
        ensure!(m.alive(), "QEMU exited before the console showed {parts:?}");
        ensure!(
            start.elapsed() < timeout,
            "the console did not show {parts:?} within {} s: {}",
            timeout.as_secs(),
            m.console.path().display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(start.elapsed())
}

/// How many boots the console shows since `mark`.
fn boots_since(m: &Machine, mark: u64) -> usize {
    m.console.since(mark).matches(BOOT_BANNER).count()
}

struct Case {
    name: &'static str,
    /// Run in the checkout of v1 to make the bad v2.
    change: String,
    /// A console line during the failed tries has all of these.
    console_shows: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let dropin = "[Service]\nExecStart=\nExecStart=/bin/sh -c 'echo keel-test: prepare-root made to fail >&2; exit 1'\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(newc(&[Member::File {
        path: "etc/systemd/system/keel-prepare-root.service.d/99-keel-test-fail.conf",
        mode: 0o644,
        data: dropin.as_bytes(),
    }]));
    vec![
        Case {
            name: "rollback-health",
            change: "mkdir -p usr/lib/keel/health.d\n\
                     printf '#!/bin/sh\\necho v2 is broken on purpose >&2\\nexit 1\\n' > usr/lib/keel/health.d/50-keel-test-fails\n\
                     chmod 755 usr/lib/keel/health.d/50-keel-test-fails"
                .into(),
            console_shows: &["keel: boot failed", "rebooting"],
        },
        Case {
            name: "rollback-panic",
            change: "f=$(ls usr/lib/modules/*/initramfs.img)\nrm -f $f\n\
                     head -c 4194304 /dev/urandom > $f"
                .into(),
            console_shows: &["Kernel panic"],
        },
        Case {
            name: "rollback-initrd",
            // The real initramfs plus an appended archive (at a 4-byte boundary, which the
            // kernel requires) with a drop-in that makes prepare-root fail.
            change: format!(
                "f=$(ls usr/lib/modules/*/initramfs.img)\ncp $f /var/tmp/initrd.orig\nrm -f $f\n\
                 size=$(stat -c %s /var/tmp/initrd.orig)\n\
                 {{ cat /var/tmp/initrd.orig; head -c $(( (4 - size % 4) % 4 )) /dev/zero; echo {b64} | base64 -d; }} > $f\n\
                 rm -f /var/tmp/initrd.orig"
            ),
            console_shows: &["Failed to start", "keel-prepa"],
        },
    ]
}

fn rollback_case(t: &mut TestRun, m: &mut Machine, case: &Case) -> Result<()> {
    let st = status(m)?;
    let (v1, v1_commit) = booted(&st)?;
    let start = Instant::now();
    let bad = build_variant(m, &v1_commit, case.name, &case.change)?;
    t.timing("build the bad v2 in the guest", start.elapsed());
    sh(m, &format!("sudo keel deploy {bad}"))?;
    let mark = m.console.mark();
    let start = Instant::now();
    reboot(m)?;
    let mut back = false;
    t.check("the node comes back on v1 by itself", || {
        while start.elapsed() < ROLLBACK_TIMEOUT {
            std::thread::sleep(Duration::from_secs(10));
            ensure!(m.alive(), "QEMU exited");
            if boots_since(m, mark) < 2 {
                continue;
            }
            let Ok(st) = status(m) else { continue };
            if st["booted"].as_str() == Some(v1.as_str()) {
                back = true;
                return Ok(());
            }
        }
        bail!(
            "not back on {v1} after {} s ({} boots); console: {}",
            start.elapsed().as_secs(),
            boots_since(m, mark),
            m.console.path().display()
        )
    });
    if !back {
        return Ok(());
    }
    let _ = sh(m, "systemctl is-system-running --wait");
    t.timing("three failed tries and the fallback boot", start.elapsed());
    let boots = boots_since(m, mark);
    eprintln!(
        "{}: back on v1 after {:.0} s and {boots} boots",
        case.name,
        start.elapsed().as_secs_f64()
    );
    t.check("v2 was tried three times, then v1 booted", || {
        ensure!(
            boots == 4,
            "{boots} boots since the reboot (want 3 tries + 1)"
        );
        Ok(())
    });
    t.check("the console shows the failure", || {
        ensure!(
            console_has(m, mark, case.console_shows),
            "{:?} not in the console log {}",
            case.console_shows,
            m.console.path().display()
        );
        Ok(())
    });
    t.check(
        "keel status --json: rolled back from v2, why, failed commit recorded",
        || {
            let st = status(m)?;
            let rb = &st["rolled_back"];
            ensure!(rb["from_version"] == case.name, "rolled_back is {rb}");
            let reason = rb["reason"].as_str().unwrap_or_default();
            ensure!(
                reason.contains("boot counting exhausted"),
                "reason {reason:?}"
            );
            if case.name == "rollback-health" {
                ensure!(
                    reason.contains("50-keel-test-fails") && reason.contains("broken on purpose"),
                    "the reason does not name the failed check: {reason:?}"
                );
            }
            let failed = st["failed"].as_array().cloned().unwrap_or_default();
            ensure!(
                failed.iter().any(|f| f["commit"] == bad.as_str()),
                "{bad} not in failed: {failed:?}"
            );
            Ok(())
        },
    );
    t.check("keel status says what happened", || {
        let text = sh(m, "sudo keel status")?;
        ensure!(
            text.contains("Rolled back") && text.contains(case.name),
            "keel status:\n{text}"
        );
        Ok(())
    });
    Ok(())
}

fn rollback_test(h: &Harness, report: &mut Report, names: &[&str]) -> Result<()> {
    let vm = h.vm("rollback", &config(&h.key.public), &VmOptions::default())?;
    let mut m = vm.boot()?;
    let mut t = TestRun::new("rollback-boot");
    let mut first = None;
    let ready = t.check("v1 boots (first boot)", || {
        first = Some(m.wait_ready(READY_TIMEOUT)?.0);
        Ok(())
    });
    if let Some(d) = first {
        t.timing("first boot ready", d);
        // First boot completes (the flag is dropped) and the entry is blessed.
        t.check("first boot completes and v1 is blessed", || {
            wait_settled(&m, Duration::from_secs(300))?;
            Ok(())
        });
    }
    report.tests.push(t);
    if !ready {
        return Ok(());
    }
    for case in cases().iter().filter(|c| names.contains(&c.name)) {
        let mut t = TestRun::new(case.name);
        if let Err(e) = rollback_case(&mut t, &mut m, case) {
            t.check("setup", || Err(e));
        }
        report.tests.push(t);
    }
    Ok(())
}

/// The checks after every cut, on the freshly booted node.
fn check_after_cut(m: &Machine, commits: &[String], var_data: &[(String, String)]) -> Result<()> {
    let st = status(m)?;
    let (name, commit) = booted(&st)?;
    ensure!(
        commits.contains(&commit),
        "booted {name}, not one of the deployed commits"
    );
    ensure!(
        st["staged"].is_null(),
        "a staged deployment after boot: {st}"
    );
    for d in st["deployments"].as_array().cloned().unwrap_or_default() {
        let n = d["deployment"].as_str().unwrap_or_default();
        root_script(
            m,
            &format!(
                "set -e\ntest -f {DEPLOY_DIR}/{n}.origin\ntest -d {DEPLOY_DIR}/{n}/usr/lib/systemd\n\
                 test -f {DEPLOY_DIR}/{n}/etc/os-release || test -L {DEPLOY_DIR}/{n}/etc/os-release\n"
            ),
        )
        .with_context(|| format!("listed deployment {n} is incomplete"))?;
    }
    let bad_entries = root_script(
        m,
        "for f in /boot/loader/entries/*.conf; do p=$(sed -n 's/.*ostree=\\([^ ]*\\).*/\\1/p' \"$f\"); \
         test -d \"/sysroot$p/usr/lib\" || echo \"$f -> $p\"; done",
    )?;
    ensure!(
        bad_entries.trim().is_empty(),
        "entries pointing nowhere: {bad_entries}"
    );
    for (path, want) in var_data {
        let got = sh(m, &format!("cat {path}"))?;
        ensure!(got.trim() == want, "{path}: {got:?}, want {want:?}");
    }
    sh(m, "sudo keel cleanup")?;
    sh(m, &format!("sudo keel repo --repo {REPO} fsck"))?;
    Ok(())
}

fn power_cuts(h: &Harness, report: &mut Report) -> Result<()> {
    let mut t = TestRun::new("power-cuts");
    let cuts: usize = std::env::var("KEEL_VMTEST_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut rng = Rng::new(seed_from_env("KEEL_VMTEST_SEED", "power-cuts"));
    eprintln!("power-cuts: {cuts} cuts");
    let vm: Vm = h.vm("power-cuts", &config(&h.key.public), &VmOptions::default())?;
    let mut m = vm.boot()?;
    m.wait_ready(READY_TIMEOUT)?;
    wait_settled(&m, Duration::from_secs(300))?;
    let (_, v1) = booted(&status(&m)?)?;
    let v2 = build_variant(
        &m,
        &v1,
        "cut-v2",
        "mkdir -p usr/share/keel-test\necho v2 > usr/share/keel-test/version",
    )?;
    let commits = [v1.clone(), v2.clone()];
    // Calibration, uncut: how long staging and finalization take.
    let start = Instant::now();
    sh(&m, &format!("sudo keel deploy {v2}"))?;
    let stage_time = start.elapsed();
    let mark = m.console.mark();
    reboot(&mut m)?;
    wait_console(&mut m, mark, FINALIZE_STARTS, READY_TIMEOUT)?;
    let finalize_time = wait_console(&mut m, mark, FINALIZE_DONE, READY_TIMEOUT)?;
    wait_rebooted(&mut m, mark, READY_TIMEOUT)?;
    // Cuts land anywhere from the unit's stop until a little after it finished.
    let finalize_window = finalize_time.mul_f64(1.3) + Duration::from_secs(1);
    eprintln!(
        "power-cuts: staging takes {:.1} s, finalization {:.1} s",
        stage_time.as_secs_f64(),
        finalize_time.as_secs_f64()
    );
    t.timing("staging (keel deploy), uncut", stage_time);
    t.timing("finalization at shutdown, uncut", finalize_time);
    t.check("calibration boot is on v2 and consistent", || {
        let (_, c) = booted(&status(&m)?)?;
        ensure!(c == v2, "booted {c}, want {v2}");
        check_after_cut(&m, &commits, &[])
    });
    sh(&m, "sudo mkdir -p /var/lib/keel-cut")?;
    let mut var_data: Vec<(String, String)> = Vec::new();
    let mut boot_times = Vec::new();
    for i in 0..cuts {
        let (_, cur) = booted(&status(&m)?)?;
        let target = if cur == v1 { &v2 } else { &v1 };
        let path = format!("/var/lib/keel-cut/{i}");
        let value = format!("cut-{i}-{:016x}", rng.next_u64());
        sh(
            &m,
            &format!("echo {value} | sudo tee {path} >/dev/null && sudo sync {path} && sync"),
        )?;
        var_data.push((path, value));
        let staging = i % 2 == 0;
        let (k, n) = (i / 2, cuts.div_ceil(2));
        let (what, at) = if staging {
            let delay = rng.in_slice(stage_time.mul_f64(1.2), k, n);
            sh(
                &m,
                &format!(
                    "sudo systemd-run --unit keel-cut-deploy-{i} /usr/bin/keel deploy {target}"
                ),
            )?;
            std::thread::sleep(delay);
            ("staging", delay)
        } else {
            sh(&m, &format!("sudo keel deploy {target}"))?;
            let mark = m.console.mark();
            reboot(&mut m)?;
            let seen = wait_console(&mut m, mark, FINALIZE_STARTS, Duration::from_secs(180));
            let delay = rng.in_slice(finalize_window, k, n);
            std::thread::sleep(delay);
            let done = console_has(&m, mark, FINALIZE_DONE);
            eprintln!(
                "cut {i}: finalize start seen: {}, finished before the cut: {done}",
                seen.is_ok()
            );
            ("finalization", delay)
        };
        m.kill();
        eprintln!(
            "cut {i}: {what}, SIGKILL {} ms after start (target {})",
            at.as_millis(),
            &target[..12]
        );
        m = vm.boot()?;
        let booted_ok = t.check(
            &format!("cut {i} ({what} +{} ms): boots again", at.as_millis()),
            || {
                let (d, _) = m.wait_ready(READY_TIMEOUT)?;
                boot_times.push(d);
                Ok(())
            },
        );
        if !booted_ok {
            break;
        }
        t.check(
            &format!(
                "cut {i} ({what} +{} ms): consistent after the cut",
                at.as_millis()
            ),
            || check_after_cut(&m, &commits, &var_data),
        );
    }
    if !boot_times.is_empty() {
        let avg = boot_times.iter().sum::<Duration>() / boot_times.len() as u32;
        t.timing("boot after a cut (average)", avg);
    }
    report.tests.push(t);
    Ok(())
}

#[test]
fn vm_rollback() {
    // The two VMs run at the same time (one virtual CPU each).
    keel_vm::testmain::run_concurrently(
        "rollback",
        ReportPath::Own,
        &[
            Test {
                name: "rollback",
                covers: &["rollback-health", "rollback-panic", "rollback-initrd"],
                run: rollback_test,
            },
            Test {
                name: "power-cuts",
                covers: &["power-cuts"],
                run: |h, report, _| power_cuts(h, report),
            },
        ],
    );
}
