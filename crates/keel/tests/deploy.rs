//! `keel` node commands on directory sysroots (nothing is booted; `--assume-booted` names the
//! deployment a node would run): upgrades keep /etc and /var, staging and finalization,
//! retention, rollback by command and by boot counting, SIGKILL at many points, a full ESP.
//! `ostree admin status` and `ostree admin config-diff` (ostree 2022.7) are the oracles.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/dir_sysroot.rs"]
mod dir_sysroot;
use dir_sysroot::{ok, run, DirSysroot as Fixture, KEEL};

impl Fixture {
    /// Commit and deploy 1, then upgrade to 2: (deployment 2, deployment 1, commit 2).
    fn two_deployments(&self) -> (String, String, String) {
        self.commit("1", |_| {});
        ok(&mut self.keel(&["deploy", "keel/test"]));
        let c2 = self.commit("2", |_| {});
        ok(&mut self.keel(&["upgrade"]));
        let names = self.names();
        (names[0].clone(), names[1].clone(), c2)
    }

    fn deploy_dir(&self, name: &str) -> PathBuf {
        self.sysroot.join("ostree/deploy/keel/deploy").join(name)
    }

    fn deploy_dirs(&self) -> usize {
        fs::read_dir(self.sysroot.join("ostree/deploy/keel/deploy"))
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".origin")
            })
            .count()
    }

    fn entries(&self) -> Vec<(String, String)> {
        let dir = self.sysroot.join("boot/loader/entries");
        let mut v: Vec<(String, String)> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// ostree 2022.7 needs `boot/loader` to be a `loader.N` symlink (or absent): a vfat ESP
    /// cannot hold one, so the oracle reads through a view with `boot/loader -> loader.0 ->`
    /// our real `loader` directory and `ostree -> ` our `ostree`.
    fn ostree_view(&self) -> PathBuf {
        let v = self.base.join("ostree-view");
        if !v.exists() {
            fs::create_dir_all(v.join("boot")).unwrap();
            symlink(self.sysroot.join("ostree"), v.join("ostree")).unwrap();
            symlink("loader.0", v.join("boot/loader")).unwrap();
            symlink(self.sysroot.join("boot/loader"), v.join("boot/loader.0")).unwrap();
        }
        v
    }

    /// Deployment names in the order `ostree admin status` lists them.
    fn ostree_status(&self) -> Vec<String> {
        let out = ok(Command::new("ostree")
            .args(["admin", "status"])
            .arg(format!("--sysroot={}", self.ostree_view().display())));
        out.lines()
            .filter_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("keel "))
            .map(|s| s.trim().to_string())
            .collect()
    }

    /// Entry titles in the order systemd's own `bootctl list` (systemd 252, the same sort as
    /// systemd-boot) puts them; empty after a SKIP when bootctl is missing. bootctl wants the ESP
    /// to be a mount point, so it runs in a private mount namespace with a bind mount.
    fn bootctl_menu(&self) -> Vec<String> {
        if !keel_testsupport::require("bootctl oracle", &["bootctl", "unshare"]) {
            return Vec::new();
        }
        let esp = self.sysroot.join("boot");
        let script = r#"mount --bind "$ESP" "$ESP" && bootctl --esp-path="$ESP" --no-variables list --json=short"#;
        let out = ok(Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .env("ESP", &esp)
            .env("SYSTEMD_RELAX_ESP_CHECKS", "1"));
        out.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("bootctl JSON line");
                v["title"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    }

    /// Did a crash leave a swap half done (`.new` entries, or both boot.0 and boot.1)?
    fn interrupted_swap(&self) -> bool {
        let links = ["boot.0", "boot.1"]
            .iter()
            .filter(|l| self.sysroot.join("ostree").join(l).exists())
            .count();
        links > 1 || self.entries().iter().any(|(n, _)| n.ends_with(".new"))
    }

    /// Every `*.conf` entry (what systemd-boot reads) boots a complete deployment with its
    /// kernel present, and `keel status` lists only complete deployments.
    fn assert_consistent(&self, context: &str) {
        for (name, text) in self.entries() {
            if !name.ends_with(".conf") {
                continue;
            }
            let opt = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                    .unwrap_or_else(|| panic!("{context}: {name} has no {key}"))
            };
            let options = opt("options ");
            let link = options
                .split_whitespace()
                .find_map(|a| a.strip_prefix("ostree="))
                .expect("ostree=");
            let target = fs::canonicalize(self.sysroot.join(link.trim_start_matches('/')))
                .unwrap_or_else(|e| panic!("{context}: {name}: {link}: {e}"));
            assert!(
                target.join("etc").is_dir() && target.join("usr").is_dir(),
                "{context}: {name} boots an incomplete deployment"
            );
            for key in ["linux ", "initrd "] {
                let p = opt(key);
                assert!(
                    self.sysroot
                        .join("boot")
                        .join(p.trim_start_matches('/'))
                        .is_file(),
                    "{context}: {name}: {p} missing"
                );
            }
        }
        for n in self.names() {
            assert!(
                self.deploy_dir(&n).join("etc").is_dir(),
                "{context}: listed deployment {n} is incomplete"
            );
        }
    }
}

fn read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok()
}

#[test]
fn upgrade_keeps_etc_and_var_and_ostree_reads_the_sysroot() {
    let Some(f) = Fixture::new("upgrade_keeps_etc_and_var") else {
        return;
    };
    f.commit("1", |_| {});
    ok(&mut f.keel(&[
        "deploy",
        "keel/test",
        "--karg",
        "root=LABEL=root",
        "--karg",
        "rw",
        "--karg",
        "ignition.firstboot",
    ]));
    let d1 = f.names()[0].clone();
    let etc1 = f.deploy_dir(&d1).join("etc");
    fs::write(etc1.join("foo.conf"), "local edit").unwrap();
    fs::remove_file(etc1.join("bar.conf")).unwrap();
    fs::write(etc1.join("local.conf"), "mine").unwrap();
    fs::write(etc1.join("sub/x"), "x local").unwrap();
    let var = f.sysroot.join("ostree/deploy/keel/var");
    fs::create_dir_all(var.join("home/core")).unwrap();
    fs::write(var.join("home/core/notes"), "keep me").unwrap();
    fs::write(var.join("lib/data"), "db").unwrap();

    let keel_diff = ok(&mut f.keel(&["config-diff"]));
    let view = f.ostree_view();
    let ostree_diff = ok(Command::new("ostree")
        .args(["admin", "config-diff", "--os=keel"])
        .arg(format!("--sysroot={}", view.display())));
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&keel_diff),
        sorted(&ostree_diff),
        "keel config-diff vs ostree admin config-diff"
    );
    assert_eq!(
        sorted(&keel_diff),
        [
            "A    local.conf",
            "D    bar.conf",
            "M    foo.conf",
            "M    sub/x"
        ]
    );

    f.commit("2", |t| {
        let e = t.join("usr/etc");
        fs::write(e.join("foo.conf"), "foo2").unwrap();
        fs::write(e.join("bar.conf"), "bar2").unwrap();
        fs::write(e.join("same.conf"), "same2").unwrap();
        fs::write(e.join("new.conf"), "new2").unwrap();
    });
    assert!(ok(&mut f.keel(&["upgrade", "--check"])).contains("Upgrade available: 2"));
    ok(&mut f.keel(&["upgrade"]));
    let st = f.status(None);
    let versions: Vec<&str> = st["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2", "1"]);
    assert_eq!(st["deployments"][0]["role"], "default");
    assert_eq!(
        st["deployments"][1]["kargs"],
        serde_json::json!(["root=LABEL=root", "rw", "ignition.firstboot"])
    );
    assert_eq!(
        st["deployments"][0]["kargs"],
        serde_json::json!(["root=LABEL=root", "rw"]),
        "an upgrade never provisions again"
    );
    assert_eq!(st["deployments"][1]["role"], "rollback");
    assert_eq!(st["deployments"][0]["origin"], "keel/test");
    let etc2 = f
        .deploy_dir(st["deployments"][0]["deployment"].as_str().unwrap())
        .join("etc");
    assert_eq!(read(&etc2.join("foo.conf")).as_deref(), Some("local edit"));
    assert_eq!(read(&etc2.join("bar.conf")), None);
    assert_eq!(read(&etc2.join("local.conf")).as_deref(), Some("mine"));
    assert_eq!(read(&etc2.join("sub/x")).as_deref(), Some("x local"));
    assert_eq!(read(&etc2.join("same.conf")).as_deref(), Some("same2"));
    assert_eq!(read(&etc2.join("new.conf")).as_deref(), Some("new2"));
    assert_eq!(
        read(&var.join("home/core/notes")).as_deref(),
        Some("keep me")
    );
    assert_eq!(read(&var.join("lib/data")).as_deref(), Some("db"));

    assert_eq!(
        f.ostree_status(),
        f.names(),
        "ostree admin status lists keel's deployments in keel's order"
    );
    assert!(ok(&mut f.keel(&["upgrade"])).contains("No upgrade available"));
    f.assert_consistent("after upgrade");
}

#[test]
fn staged_upgrade_finalizes_at_shutdown_and_retains_booted_and_pinned() {
    let Some(f) = Fixture::new("staged_upgrade_finalizes") else {
        return;
    };
    let (d2, d1, _) = f.two_deployments();
    ok(&mut f.keel(&["pin", "1"]));
    assert_eq!(f.status(None)["deployments"][1]["pinned"], true);

    f.commit("3", |_| {});
    let before = f.entries();
    let out = ok(&mut f.keel(&["upgrade", "--assume-booted", &d2]));
    assert!(out.contains("Staged"), "{out}");
    assert_eq!(
        f.entries(),
        before,
        "staging must not touch the boot entries"
    );
    let st = f.status(Some(&d2));
    assert_eq!(st["staged"]["version"], "3");
    assert_eq!(st["staged"]["role"], "staged");
    assert_eq!(st["deployments"][0]["role"], "booted");
    // A change made after staging still reaches the new deployment: /etc merges at finalize.
    fs::write(f.deploy_dir(&d2).join("etc/late.conf"), "late").unwrap();

    ok(&mut f.keel(&["finalize", "--lock"]));
    assert!(ok(&mut f.keel(&["finalize", "--assume-booted", &d2])).contains("locked"));
    assert_eq!(f.entries(), before, "a locked finalization changes nothing");
    ok(&mut f.keel(&["finalize", "--unlock"]));
    assert!(ok(&mut f.keel(&["finalize", "--assume-booted", &d2])).contains("Finalized"));
    assert!(ok(&mut f.keel(&["finalize", "--assume-booted", &d2])).contains("Nothing is staged"));

    let st = f.status(Some(&d2));
    let roles: Vec<(&str, &str)> = st["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["version"].as_str().unwrap(), d["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [("3", "pending"), ("2", "booted"), ("1", "rollback")]
    );
    assert_eq!(st["deployments"][0]["boot_counting"]["tries_left"], 3);
    let d3 = st["deployments"][0]["deployment"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        read(&f.deploy_dir(&d3).join("etc/late.conf")).as_deref(),
        Some("late")
    );
    assert_eq!(f.ostree_status(), [d3.clone(), d2.clone(), d1.clone()]);

    // Unpinned and neither booted nor merge: 1 and the never-booted 3 go; booted 2 stays.
    ok(&mut f.keel(&["unpin", "2"]));
    // ostree marks deployment roots immutable; removing one must still work.
    ok(Command::new("chattr").arg("+i").arg(f.deploy_dir(&d1)));
    f.commit("4", |_| {});
    ok(&mut f.keel(&["upgrade", "--assume-booted", &d2]));
    ok(&mut f.keel(&["finalize", "--assume-booted", &d2]));
    let st = f.status(Some(&d2));
    let versions: Vec<&str> = st["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["4", "2"]);
    assert_eq!(f.deploy_dirs(), 2);
    assert!(!f.deploy_dir(&d1).exists() && !f.deploy_dir(&d3).exists());
    let boots: Vec<_> = fs::read_dir(f.sysroot.join("boot/ostree"))
        .unwrap()
        .collect();
    assert_eq!(
        boots.len(),
        2,
        "one kernel directory per remaining deployment"
    );

    let out = ok(&mut f.keel(&["cleanup"]));
    assert!(out.contains("pruned"), "{out}");
    let fsck = run(Command::new("ostree")
        .arg(format!(
            "--repo={}",
            f.sysroot.join("ostree/repo").display()
        ))
        .arg("fsck"));
    assert!(
        fsck.status.success(),
        "ostree fsck after cleanup: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    f.assert_consistent("after retention");
}

#[test]
fn rollback_by_command_and_by_boot_counting() {
    let Some(f) = Fixture::new("rollback") else {
        return;
    };
    let (d2, d1, c2) = f.two_deployments();

    ok(&mut f.keel(&["rollback"]));
    assert_eq!(f.names(), [d1.clone(), d2.clone()]);
    assert_eq!(f.ostree_status(), [d1.clone(), d2.clone()]);
    ok(&mut f.keel(&["rollback"]));
    assert_eq!(f.names(), [d2.clone(), d1.clone()]);
    let menu = f.bootctl_menu();
    assert!(
        menu.is_empty() || menu[0].starts_with("Keel 2 "),
        "{menu:?}"
    );

    // Three boots of 2 never reached boot-complete.target: systemd-boot renamed its entry.
    let dir = f.sysroot.join("boot/loader/entries");
    let (newest, _) = f
        .entries()
        .into_iter()
        .max_by_key(|(n, _)| n.split('-').nth(1).unwrap().parse::<u64>().unwrap())
        .unwrap();
    let bad = newest.replace("+3.conf", "+0-3.conf");
    assert_ne!(bad, newest, "new entries are boot-counted: {newest}");
    fs::rename(dir.join(&newest), dir.join(&bad)).unwrap();
    let menu = f.bootctl_menu();
    assert!(
        menu.is_empty() || (menu[0].starts_with("Keel 1 ") && menu[1].starts_with("Keel 2 ")),
        "{menu:?}"
    );
    // A red health check on 2 recorded why, at `/var/lib/keel/health-failure.json` of its boots:
    // the stateroot's shared var on the sysroot.
    let record = f
        .sysroot
        .join("ostree/deploy/keel/var/lib/keel/health-failure.json");
    fs::create_dir_all(record.parent().unwrap()).unwrap();
    fs::write(
        &record,
        serde_json::json!({"deployment": d2, "failed": [
            {"name": "50-app-ready", "ok": false, "detail": "app did not answer"}]})
        .to_string(),
    )
    .unwrap();
    // The agent's first look (before any `keel status`) already records and refuses it.
    let out = run(&mut f.keel(&["upgrade", "--assume-booted", &d1]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed to boot healthy before"));
    let st = f.status(Some(&d1));
    assert_eq!(st["deployments"][0]["role"], "failed");
    assert_eq!(st["next_boot"], d1.as_str());
    assert!(
        st["rolled_back"]["reason"]
            .as_str()
            .unwrap()
            .contains("boot counting exhausted"),
        "{st}"
    );
    let reason = st["rolled_back"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("50-app-ready") && reason.contains("app did not answer"),
        "the rollback reason does not name the failed health check: {reason}"
    );
    assert_eq!(st["failed"][0]["commit"], c2.as_str());
    let text = ok(&mut f.keel(&["status", "--assume-booted", &d1]));
    assert!(text.contains("Rolled back from 2"), "{text}");
    assert!(f
        .sysroot
        .join("ostree/deploy/keel/keel-failed.json")
        .is_file());

    // A karg change is a new boot-counted default deployment of the same commit.
    ok(&mut f.keel(&["rollback", "--assume-booted", &d1]));
    ok(&mut f.keel(&[
        "kargs",
        "--append",
        "quiet",
        "--append",
        "console=ttyS0",
        "--assume-booted",
        &d1,
    ]));
    assert_eq!(
        ok(&mut f.keel(&["kargs", "--assume-booted", &d1])).trim(),
        ""
    );
    let st = f.status(None);
    assert_eq!(
        st["deployments"][0]["kargs"],
        serde_json::json!(["quiet", "console=ttyS0"])
    );
    assert_eq!(st["deployments"][0]["version"], "1");
    assert_eq!(ok(&mut f.keel(&["kargs"])).trim(), "quiet console=ttyS0");
    f.assert_consistent("after rollbacks");
}

/// The syscalls that move a sysroot from one state to the next (every crash-safe step ends in
/// one; ESP files are created in place and end in an fsync): a kill just before the n-th of
/// them visits every intermediate state in order.
const STEPS: &str = "rename,renameat,renameat2,symlink,symlinkat,fsync";

/// Run keel `args` under strace, SIGKILLed (with its children) on entry to the `n`-th step
/// syscall; true when it ran to completion instead.
fn kill_at(f: &Fixture, args: &[&str], n: usize) -> bool {
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={STEPS}"))
        .arg("-e")
        .arg(format!("inject={STEPS}:signal=KILL:when={n}"))
        .arg(KEEL)
        .args(args)
        .arg("--sysroot")
        .arg(&f.sysroot);
    run(&mut c).status.success()
}

/// Kill `args` at step 1, 2, ... until it completes; after each kill the sysroot must be
/// consistent and ostree must agree. `prepare` runs before each attempt. Returns (kills, kills
/// that cut an entry swap in half).
fn kill_at_every_step(
    f: &Fixture,
    what: &str,
    prepare: impl Fn(usize),
    args: impl Fn(usize) -> Vec<String>,
) -> (usize, usize) {
    let mut cut = 0;
    for n in 1..400 {
        prepare(n);
        let a = args(n);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        if kill_at(f, &a, n) {
            return (n - 1, cut);
        }
        cut += usize::from(f.interrupted_swap());
        f.assert_consistent(&format!("{what} killed at step {n}"));
        // `keel status` (inside assert_consistent) finished the interrupted swap: ostree agrees.
        assert_eq!(
            f.ostree_status(),
            f.names(),
            "ostree agrees after {what} killed at step {n}"
        );
    }
    panic!("{what} never completed");
}

#[test]
fn sigkill_at_every_step_of_deploy_finalize_and_rollback_leaves_a_bootable_sysroot() {
    let Some(f) = Fixture::new("sigkill") else {
        return;
    };
    if !keel_testsupport::require("sigkill", &["strace"]) {
        return;
    }
    let many = |t: &Path| {
        for i in 0..50 {
            fs::write(t.join(format!("usr/etc/f{i}")), format!("{i}")).unwrap();
        }
    };
    f.commit("1", many);
    ok(&mut f.keel(&["deploy", "keel/test"]));
    f.commit("2", many);
    ok(&mut f.keel(&["upgrade"]));
    let version = |n: usize| {
        if n.is_multiple_of(2) {
            "1".to_string()
        } else {
            "2".to_string()
        }
    };

    let (deploy_kills, deploy_cut) =
        kill_at_every_step(&f, "deploy", |_| {}, |n| vec!["deploy".into(), version(n)]);
    let booted = f.names()[0].clone();
    let (fin_kills, fin_cut) = kill_at_every_step(
        &f,
        "finalize",
        |n| {
            ok(&mut f.keel(&["deploy", &version(n), "--assume-booted", &booted]));
        },
        |_| vec!["finalize".into(), "--assume-booted".into(), booted.clone()],
    );
    let (rb_kills, rb_cut) =
        kill_at_every_step(&f, "rollback", |_| {}, |_| vec!["rollback".into()]);
    eprintln!(
        "kills: deploy {deploy_kills} ({deploy_cut} mid-swap), finalize {fin_kills} ({fin_cut}), rollback {rb_kills} ({rb_cut})"
    );
    assert!(
        deploy_kills >= 5 && fin_kills >= 5 && rb_kills >= 5,
        "too few steps; is strace injecting?"
    );
    assert!(
        deploy_cut > 0 && fin_cut > 0 && rb_cut > 0,
        "no kill landed inside an entry swap"
    );

    ok(&mut f.keel(&["cleanup"]));
    let leftovers: Vec<String> = f
        .entries()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !n.ends_with(".conf"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let farms: Vec<String> = fs::read_dir(f.sysroot.join("ostree"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("boot."))
        .collect();
    assert_eq!(
        farms.len(),
        3,
        "one boot.N link, its farm and its entries' journal: {farms:?}"
    );
    assert_eq!(f.deploy_dirs(), f.names().len());
    f.assert_consistent("end");
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Loop-mount a new `mib` MiB ext4 (no root reserve) at `at`; `None` (after a SKIP) when the
/// kernel cannot.
fn loop_mount(f: &Fixture, test: &str, mib: u64, at: &Path) -> Option<Mount> {
    if !keel_testsupport::require(test, &["mkfs.ext4", "mount", "umount"]) {
        return None;
    }
    let img = f.base.join(format!("{test}.img"));
    fs::File::create(&img).unwrap().set_len(mib << 20).unwrap();
    ok(Command::new("mkfs.ext4").args(["-q", "-m", "0"]).arg(&img));
    let mounted = run(Command::new("mount")
        .arg("-o")
        .arg("loop")
        .arg(&img)
        .arg(at));
    if !mounted.status.success() {
        keel_testsupport::skip(&format!(
            "{test}: cannot loop-mount: {}",
            String::from_utf8_lossy(&mounted.stderr)
        ));
        return None;
    }
    Some(Mount(at.to_path_buf()))
}

/// Deploy 1, then upgrade to a 2 that `grow` makes too big: the upgrade must fail naming the
/// filesystem, what needed the space and the bytes, and change nothing.
fn upgrade_fails_for_space(f: &Fixture, grow: impl Fn(&Path), what: &str) {
    f.commit("1", |_| {});
    ok(&mut f.keel(&["deploy", "keel/test"]));
    let before = (f.entries(), f.deploy_dirs(), f.names());
    f.commit("2", grow);
    let out = run(&mut f.keel(&["upgrade"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not enough free space on /dev/loop") && err.contains("(ext4)"),
        "{err}"
    );
    assert!(err.contains(what) && err.contains("bytes needed"), "{err}");
    assert_eq!(
        (f.entries(), f.deploy_dirs(), f.names()),
        before,
        "nothing changed"
    );
}

fn noise(len: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect()
}

#[test]
fn full_esp_fails_before_changing_anything() {
    let Some(f) = Fixture::new("full_esp") else {
        return;
    };
    let Some(_esp) = loop_mount(&f, "full_esp", 4, &f.sysroot.join("boot")) else {
        return;
    };
    upgrade_fails_for_space(
        &f,
        |t| fs::write(t.join("usr/lib/modules/6.1.0-test/vmlinuz"), noise(6 << 20)).unwrap(),
        "kernel and initramfs",
    );
}

#[test]
fn full_root_filesystem_fails_before_changing_anything() {
    let Some(f) = Fixture::new("full_root") else {
        return;
    };
    let Some(_root) = loop_mount(&f, "full_root", 24, &f.sysroot) else {
        return;
    };
    ok(Command::new(KEEL)
        .args(["init-sysroot", "--sysroot"])
        .arg(&f.sysroot));
    // The commit fits in the repository; a second copy of its /etc does not.
    upgrade_fails_for_space(
        &f,
        |t| fs::write(t.join("usr/etc/big.db"), noise(12 << 20)).unwrap(),
        "a checkout of",
    );
}

#[test]
fn prepare_root_mounts_the_deployment_in_a_private_mount_namespace() {
    let Some(f) = Fixture::new("prepare_root") else {
        return;
    };
    if !keel_testsupport::require("prepare_root", &["unshare", "mount"]) {
        return;
    }
    f.commit("1", |_| {});
    ok(&mut f.keel(&["deploy", "keel/test"]));
    let name = f.names()[0].clone();
    fs::write(
        f.sysroot.join("ostree/deploy/keel/var/lib/marker"),
        "shared var",
    )
    .unwrap();
    let (_, entry) = f.entries().into_iter().next().unwrap();
    let options = entry
        .lines()
        .find_map(|l| l.strip_prefix("options "))
        .unwrap()
        .to_string();
    let cmdline = f.base.join("cmdline");
    fs::write(&cmdline, format!("BOOT_IMAGE=/vmlinuz {options} quiet\n")).unwrap();
    // In a private mount namespace with its own /run: the sysroot is a mount point, as
    // /sysroot is in the initramfs; nothing leaks to the host.
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run
mount --bind "$S" "$S"
"$KEEL" prepare-root --sysroot "$S" --cmdline "$CMDLINE"
test -f /run/ostree-booted
test -f "$S/usr/lib/modules/6.1.0-test/vmlinuz"
test "$(cat "$S/var/lib/marker")" = "shared var"
test -d "$S/sysroot/ostree/deploy/keel/deploy/{name}"
touch "$S/etc/written-at-boot"
if touch "$S/usr/written" 2>/dev/null; then echo "/usr is writable"; exit 1; fi
echo mounted"#
    );
    let out = ok(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("S", &f.sysroot)
        .env("KEEL", KEEL)
        .env("CMDLINE", &cmdline));
    assert!(
        out.contains(&format!("Mounted deployment {name}")) && out.ends_with("mounted\n"),
        "{out}"
    );
    assert!(f.deploy_dir(&name).join("etc/written-at-boot").is_file());
    assert!(!f.deploy_dir(&name).join("usr/written").exists());
}

#[test]
fn keel_takes_over_a_sysroot_ostree_deployed_and_ostree_still_reads_it() {
    let Some(f) = Fixture::new("ostree_takeover") else {
        return;
    };
    fs::remove_dir_all(&f.sysroot).unwrap();
    fs::create_dir_all(&f.sysroot).unwrap();
    let sysroot_arg = format!("--sysroot={}", f.sysroot.display());
    ok(Command::new("ostree")
        .args(["admin", "init-fs", "--modern"])
        .arg(&f.sysroot));
    ok(Command::new("ostree").args(["admin", "os-init", "keel", &sysroot_arg]));
    let os_release = |t: &Path| {
        fs::write(
            t.join("usr/etc/os-release"),
            "NAME=Keel\nID=keel\nPRETTY_NAME=Keel\n",
        )
        .unwrap()
    };
    f.commit("1", os_release);
    ok(Command::new("ostree").args([
        "admin",
        "deploy",
        "--os=keel",
        "--karg=root=LABEL=root",
        &sysroot_arg,
        "keel/test",
    ]));
    let by_ostree = || -> Vec<String> {
        let out = ok(Command::new("ostree").args(["admin", "status", &sysroot_arg]));
        out.lines()
            .filter_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("keel "))
            .map(|s| s.trim().to_string())
            .collect()
    };
    let d1 = by_ostree();
    assert_eq!(f.names(), d1, "keel reads ostree's deployment");
    assert_eq!(f.status(None)["deployments"][0]["origin"], "keel/test");
    fs::write(f.deploy_dir(&d1[0]).join("etc/local.conf"), "mine").unwrap();

    f.commit("2", os_release);
    ok(&mut f.keel(&["upgrade"]));
    let names = f.names();
    assert_eq!(names.len(), 2);
    assert_eq!(names[1], d1[0]);
    // boot/loader is ostree's loader.N symlink here, so ostree reads keel's entries directly.
    assert_eq!(by_ostree(), names, "ostree reads what keel wrote");
    assert_eq!(
        read(&f.deploy_dir(&names[0]).join("etc/local.conf")).as_deref(),
        Some("mine")
    );
    assert_eq!(
        f.status(None)["deployments"][0]["kargs"],
        serde_json::json!(["root=LABEL=root"])
    );
    // ostree can deploy again on top of keel's entries, and keel reads the result.
    ok(Command::new("ostree").args(["admin", "deploy", "--os=keel", &sysroot_arg, "keel/test"]));
    assert_eq!(
        f.names(),
        by_ostree(),
        "keel reads what ostree wrote after keel"
    );
    f.assert_consistent("after ostree, keel, ostree");
}

#[test]
fn clearing_the_firstboot_flag_keeps_deployments_order_and_counters() {
    let Some(f) = Fixture::new("clear_firstboot") else {
        return;
    };
    f.commit("1", |_| {});
    ok(&mut f.keel(&[
        "deploy",
        "keel/test",
        "--karg",
        "rw",
        "--karg",
        "ignition.firstboot",
    ]));
    let before = f.status(None);
    let names = |f: &Fixture| f.entries().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    let names_before = names(&f);
    // What keel-firstboot-complete.service runs: the flag goes, the deployment stays.
    let out = ok(&mut f.keel(&["kargs", "--delete", "ignition.firstboot"]));
    assert!(out.contains("updated in place"), "{out}");
    let sysroot = keel_deploy::Sysroot::open(&f.sysroot, "keel").unwrap();
    assert!(!sysroot.clear_firstboot().unwrap(), "nothing left to clear");
    let after = f.status(None);
    assert_eq!(after["deployments"][0]["kargs"], serde_json::json!(["rw"]));
    for key in ["deployment", "boot_counting", "role"] {
        assert_eq!(
            after["deployments"][0][key], before["deployments"][0][key],
            "{key}"
        );
    }
    assert!(f
        .entries()
        .iter()
        .all(|(_, text)| !text.contains("ignition.firstboot")));
    // Same entry file names: systemd-bless-boot renames the one systemd-boot booted.
    assert_eq!(names(&f), names_before);
    f.assert_consistent("after clearing the flag");
}

/// The states a power cut can leave on a vfat ESP (which has no atomic rename), made by hand on
/// a directory sysroot: `keel status` (like every command) must keep booting what systemd-boot
/// boots, finish the swap from the journal, remove what owns no data, and retire (never
/// delete) files that may share clusters with a live file.
#[test]
fn power_cut_states_on_the_esp_are_repaired() {
    let Some(f) = Fixture::new("esp_cut_states") else {
        return;
    };
    let (d2, d1, _) = f.two_deployments();
    let dir = f.sysroot.join("boot/loader/entries");
    let before = f.entries();
    assert_eq!(before.len(), 2, "{before:?}");
    let serial = |name: &str| -> u64 { name.split('-').nth(1).unwrap().parse().unwrap() };
    let max = before.iter().map(|(n, _)| serial(n)).max().unwrap();
    let files = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // A cut while the next default entry was being created: empty (its directory slot was
    // written, its data not), or garbage (clusters reused after an older cut).
    let empty = format!("ostree-{}-keel+3.conf", max + 1);
    let garbage = format!("ostree-{}-keel+3.conf", max + 2);
    fs::write(dir.join(&empty), "").unwrap();
    fs::write(dir.join(&garbage), "\u{1}\u{2}binary data of another file").unwrap();
    assert_eq!(
        f.names(),
        [d2.clone(), d1.clone()],
        "status after an empty entry"
    );
    let now = files(&dir);
    assert!(!now.contains(&empty), "the empty entry is removed: {now:?}");
    assert!(
        !now.contains(&garbage),
        "the garbage entry is moved away: {now:?}"
    );
    assert!(
        now.contains(&format!(".keel-retired-{garbage}.retired")),
        "the garbage entry is retired, not deleted: {now:?}"
    );
    f.assert_consistent("after empty and garbage entries");

    // A cut after the commit point: the default entry is complete, the second is missing.
    let (second, second_text) = before[0].clone();
    let default = before[1].0.clone();
    assert!(serial(&default) > serial(&second));
    fs::remove_file(dir.join(&second)).unwrap();
    assert_eq!(
        f.names(),
        [d2.clone(), d1.clone()],
        "status with one entry missing"
    );
    assert_eq!(
        read(&dir.join(&second)).as_deref(),
        Some(second_text.as_str()),
        "the missing entry is created again from the journal"
    );

    // Renames cut in half: an older Keel's `.conf.new` twin of the default entry, and a temp
    // file that is a twin of loader.conf. Deleting either would free the live file's clusters.
    let default_text = read(&dir.join(&default)).unwrap();
    fs::write(dir.join(format!("{default}.new")), &default_text).unwrap();
    let loader = f.sysroot.join("boot/loader");
    let loader_conf = read(&loader.join("loader.conf")).unwrap();
    fs::write(loader.join(".loader.conf.tmp-1-0"), &loader_conf).unwrap();
    assert_eq!(f.names(), [d2.clone(), d1.clone()], "status with twins");
    assert!(files(&dir).contains(&format!(".keel-retired-{default}.new.retired")));
    assert!(files(&loader).contains(&".keel-retired-loader.conf.tmp-1-0.retired".to_string()));
    assert_eq!(read(&dir.join(&default)).unwrap(), default_text);
    assert_eq!(read(&loader.join("loader.conf")).unwrap(), loader_conf);
    f.assert_consistent("after twins");
    let menu = f.bootctl_menu();
    assert!(menu.is_empty() || menu.len() == 2, "bootctl sees {menu:?}");

    // An entry whose farm link leads to a deployment directory that is gone points nowhere:
    // the next command removes it (and says so) instead of keeping it forever.
    let ghost = format!("ostree-{}-keel.conf", max + 3);
    let b = if f.sysroot.join("ostree/boot.0").exists() {
        0
    } else {
        1
    };
    let farm = f.sysroot.join(format!("ostree/boot.{b}.0/keel/ghost"));
    fs::create_dir_all(&farm).unwrap();
    symlink("../../../deploy/keel/deploy/0000.0", farm.join("0")).unwrap();
    let text = default_text
        .lines()
        .map(|l| match l.strip_prefix("options ") {
            Some(o) => {
                let kept: Vec<&str> = o.split(' ').filter(|a| !a.starts_with("ostree=")).collect();
                format!(
                    "options {} ostree=/ostree/boot.{b}/keel/ghost/0",
                    kept.join(" ")
                )
            }
            None if l.starts_with("version ") => format!("version {}", max + 3),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(dir.join(&ghost), text + "\n").unwrap();
    let out = run(&mut f.keel(&["status"]));
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("boots no deployment"),
        "keel status reports the entry pointing nowhere: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!files(&dir).contains(&ghost), "{:?}", files(&dir));
    assert_eq!(f.names(), [d2.clone(), d1.clone()]);

    // The next swap works beside the retired files, which stay.
    ok(&mut f.keel(&["rollback"]));
    assert_eq!(f.names(), [d1, d2]);
    f.assert_consistent("rollback after the repairs");
    let retired = files(&dir)
        .into_iter()
        .filter(|n| n.starts_with(".keel-retired-"))
        .count();
    assert_eq!(retired, 2, "{:?}", files(&dir));
}
