//! Power cuts at a high rate (issue 13): the boot-entry swap on a real vfat ESP and ext4 root,
//! cut by SIGKILLing QEMU at stratified random moments of every kind of operation, hundreds of
//! times in an hour. The guest boots the image's own kernel directly (SeaBIOS, no boot loader)
//! into a small initramfs built here (busybox, the `keel` under test, the modules for virtio,
//! ext4 and vfat) that mounts the image's disk and runs `keel` on it as a node would, so each
//! cut costs seconds instead of a full boot. The full boot path (systemd, finalization at
//! shutdown, boot counting) is cut in `vm_rollback.rs`.
//!
//! Every boot first checks what systemd-boot would boot before any `keel` command runs (every
//! `.conf` entry with a `linux` line boots a complete deployment whose kernel and initramfs on
//! the ESP are byte for byte the deployment's; at least one does), then lets `keel status`
//! repair and checks strictly (no incomplete entry left), checks that every earlier synced
//! `/var` file survived, and starts the next operation, which the host cuts:
//! `stage` (`keel deploy` staging a checkout), `finalize` (the staged deployment's swap),
//! `swap` (`keel deploy` without staging) and `rollback`.
//!
//! `KEEL_VMTEST_SOAK_CUTS` (default 8 in the suite, 2 of each kind) and `KEEL_VMTEST_SEED`
//! (printed) set the run; `scripts/bench-power-cuts.sh` runs 200 and more.

use anyhow::{bail, ensure, Context, Result};
use keel_testsupport::rng::{seed_from_env, Rng};
use keel_vm::cpio::{newc, Member};
use keel_vm::harness::{Config, Harness, TestRun, VmOptions};
use keel_vm::machine::Machine;
use keel_vm::qemu::{DirectBoot, QemuSpec};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const REF: &str = "keel/stable/x86_64";
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);
const KINDS: [&str; 4] = ["finalize", "stage", "swap", "rollback"];
/// Modules the small initramfs loads (with their dependencies), unless built in.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "ext4",
    "crc32c_generic",
    "vfat",
    "nls_cp437",
    "nls_ascii",
];

/// The guest's /init: mount the image's disk, check, repair, check, start the operation.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /sysroot
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs run /run
say() { echo "KEEL-CUT $*"; }
at() { say T "$1" "$(cut -d' ' -f1 /proc/uptime)"; }
for m in $(cat /modules.order); do insmod "/lib/modules/$m" 2>>/run/insmod.err; done
n=0
while [ ! -b /dev/vda2 ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
arg() { sed -n "s/.*keelcut\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
op=$(arg op)
i=$(arg n)
why() { echo "dmesg: $(dmesg | tail -n 5 | tr '\n' ' ') disks: $(ls /dev | grep vd | tr '\n' ' ') filesystems: $(grep -v nodev /proc/filesystems | tr -d '\t' | tr '\n' ' ') insmod: $(tail -c 300 /run/insmod.err | tr '\n' ' ')"; }
mount -t ext4 /dev/vda2 /sysroot || { say FATAL cannot mount the root filesystem: $(why); poweroff -f; }
mount -t vfat /dev/vda1 /sysroot/boot || { say FATAL cannot mount the ESP: $(why); poweroff -f; }
S=/sysroot
K="/usr/bin/keel"
V=$S/ostree/deploy/keel/var/lib/keelcut
mkdir -p $V

# Byte for byte equal (each pair compared once a boot: nothing here rewrites a kernel file).
same() {
    grep -qxF "$1 $2" /run/same 2>/dev/null && return 0
    cmp -s "$1" "$2" && echo "$1 $2" >> /run/same
}

# What systemd-boot would boot: every entry with a linux line must boot a complete deployment
# with its own kernel and initramfs; with $1=1 an entry without one (cut short) is an error too.
check_entries() {
    good=0
    bad=""
    for f in $S/boot/loader/entries/*.conf; do
        [ -f "$f" ] || continue
        b=$(basename "$f")
        if ! grep -q '^linux ' "$f"; then
            [ "$1" = 1 ] && bad="$bad $b:incomplete"
            continue
        fi
        p=$(sed -n 's/^options .*ostree=\([^ ]*\).*/\1/p' "$f")
        l=$(sed -n 's/^linux //p' "$f")
        r=$(sed -n 's/^initrd //p' "$f")
        d=$S$p
        if [ -z "$p" ] || [ ! -d "$d/usr/lib" ] || [ ! -d "$d/etc" ]; then
            bad="$bad $b:deployment($p)"
            continue
        fi
        k=$(ls -d "$d"/usr/lib/modules/*/ | head -n 1)
        same "$S/boot$l" "${k}vmlinuz" || { bad="$bad $b:kernel"; continue; }
        same "$S/boot$r" "${k}initramfs.img" || { bad="$bad $b:initramfs"; continue; }
        good=$((good + 1))
    done
    [ $good -gt 0 ] || bad="$bad no-bootable-entry"
    echo "$bad"
}

# The deployment the highest-version entry boots (the default).
default_deployment() {
    best=""
    bestv=-1
    for f in $S/boot/loader/entries/*.conf; do
        [ -f "$f" ] || continue
        v=$(sed -n 's/^version //p' "$f")
        case $v in '' | *[!0-9]*) continue ;; esac
        if [ "$v" -gt "$bestv" ]; then bestv=$v; best=$f; fi
    done
    p=$(sed -n 's/^options .*ostree=\([^ ]*\).*/\1/p' "$best")
    basename "$(readlink -f "$S$p")"
}

if [ "$op" = setup ]; then
    v1=$(ls $S/ostree/deploy/keel/deploy | grep -v origin | head -n 1 | cut -d. -f1)
    t=$S/ostree/deploy/keel/var/tmp/keelcut-v2
    rm -rf $t
    $K repo --repo $S/ostree/repo checkout "$v1" $t >/dev/null 2>/run/err &&
        mkdir -p $t/usr/share/keel-test && echo v2 > $t/usr/share/keel-test/version &&
        v2=$($K repo --repo $S/ostree/repo commit -b keel-test/cut-v2 -s cut-v2 \
            --add-metadata-string version=keel-cut-v2 $t 2>>/run/err | tail -n 1) &&
        rm -rf $t || { say FATAL setup: $(tail -c 400 /run/err); poweroff -f; }
    echo "$v1 $v2" > $V/commits
    sync
    say SETUP $v1 $v2
    poweroff -f
fi

at mounted
raw=$(check_entries 0)
at raw-checked
if [ -z "$raw" ]; then say RAW ok; else say RAW bad:$raw; fi
$K status --sysroot $S >/dev/null 2>/run/err || say STATUS-FAILED $(tail -c 400 /run/err)
at status
$K cleanup --sysroot $S >/dev/null 2>/run/err || say STATUS-FAILED cleanup: $(tail -c 400 /run/err)
at cleanup
post=$(check_entries 1)
at checked
j=0
while [ $j -lt "$i" ]; do
    [ "$(cat $V/data-$j 2>/dev/null)" = "value-$j" ] || post="$post lost:/var/lib/keelcut/data-$j"
    j=$((j + 1))
done
if [ -z "$post" ]; then say CHECK ok; else say CHECK bad:$post; fi
echo "value-$i" > $V/data-$i
sync
read v1 v2 < $V/commits
d=$(default_deployment)
if [ "${d%%.*}" = "$v1" ]; then target=$v2; else target=$v1; fi
say STATE default=$d target=$target
case $op in
stage)
    say START
    $K deploy $target --sysroot $S --assume-booted $d >/dev/null 2>/run/err
    ;;
finalize)
    $K deploy $target --sysroot $S --assume-booted $d >/dev/null 2>/run/err || say STATUS-FAILED staging
    sync
    say START
    $K finalize --sysroot $S --assume-booted $d >/dev/null 2>/run/err
    ;;
swap)
    say START
    $K deploy $target --sysroot $S >/dev/null 2>/run/err
    ;;
rollback)
    say START
    $K rollback --sysroot $S >/dev/null 2>/run/err
    ;;
esac
say DONE $? $(tail -c 200 /run/err | tr '\n' ' ')
sync
sleep 100000
"#;

/// Module files (relative to the modules directory) for `wanted` and their dependencies,
/// dependencies first; built-in modules are skipped.
fn module_closure(moddir: &Path, wanted: &[&str]) -> Result<Vec<String>> {
    let dep = std::fs::read_to_string(moddir.join("modules.dep"))
        .with_context(|| format!("reading {}/modules.dep", moddir.display()))?;
    let builtin = std::fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default();
    let name_of = |path: &str| -> String {
        let file = path.rsplit('/').next().unwrap_or(path);
        file.split('.').next().unwrap_or(file).replace('-', "_")
    };
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in dep.lines() {
        let Some((m, rest)) = line.split_once(':') else {
            continue;
        };
        let d = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(name_of(m), (m.to_string(), d));
    }
    let builtins: HashSet<String> = builtin.lines().map(name_of).collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    fn visit(
        path: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        name_of: &dyn Fn(&str) -> String,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(path.to_string()) {
            return;
        }
        if let Some((_, ds)) = deps.get(&name_of(path)) {
            for d in ds {
                visit(d, deps, name_of, seen, order);
            }
        }
        order.push(path.to_string());
    }
    for w in wanted {
        match deps.get(*w) {
            Some((path, _)) => visit(&path.clone(), &deps, &name_of, &mut seen, &mut order),
            None if builtins.contains(*w) => {}
            None => bail!("module {w} is neither in modules.dep nor built in"),
        }
    }
    for m in &order {
        ensure!(
            m.ends_with(".ko"),
            "{m}: compressed modules are not supported by this initramfs"
        );
    }
    Ok(order)
}

/// The shared libraries `bin` needs (from ldd), as absolute paths.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = keel_utils::cmd::run_stdout(Command::new("ldd").arg(bin))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let p = match l.split_once("=>") {
                Some((_, r)) => r.split_whitespace().next(),
                None => l.split_whitespace().next(),
            }?;
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect())
}

/// Kernel and initramfs for the soak, made in `dir` from the compose repository.
fn build_boot(h: &Harness, repo: &Path, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let modules = dir.join("modules");
    if !modules.exists() {
        keel_utils::cmd::run(
            Command::new(&h.keel)
                .args(["repo", "--repo"])
                .arg(repo)
                .args(["checkout", "-U", "--subpath", "usr/lib/modules", REF])
                .arg(&modules),
        )?;
    }
    let kver = std::fs::read_dir(&modules)?
        .flatten()
        .find(|e| e.path().join("vmlinuz").is_file())
        .context("no kernel in the commit's usr/lib/modules")?
        .path();
    let order = module_closure(&kver, MODULES)?;
    let busybox = std::fs::read("/bin/busybox").context("reading /bin/busybox (busybox-static)")?;
    let keel = std::fs::read(&h.keel).with_context(|| format!("reading {}", h.keel.display()))?;
    let mut owned: Vec<(String, u32, Vec<u8>)> = vec![
        ("init".into(), 0o755, INIT.as_bytes().to_vec()),
        ("bin/busybox".into(), 0o755, busybox),
        ("usr/bin/keel".into(), 0o755, keel),
        ("modules.order".into(), 0o644, {
            let names: Vec<String> = order
                .iter()
                .map(|m| m.rsplit('/').next().unwrap_or(m).to_string())
                .collect();
            (names.join("\n") + "\n").into_bytes()
        }),
    ];
    for lib in libraries(&h.keel)? {
        let data = std::fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
        owned.push((rel, 0o755, data));
    }
    for m in &order {
        let file = m.rsplit('/').next().unwrap_or(m);
        owned.push((
            format!("lib/modules/{file}"),
            0o644,
            std::fs::read(kver.join(m)).with_context(|| format!("reading module {m}"))?,
        ));
    }
    let mut members: Vec<Member> = owned
        .iter()
        .map(|(path, mode, data)| Member::File {
            path,
            mode: *mode,
            data,
        })
        .collect();
    members.push(Member::CharDevice {
        path: "dev/console",
        major: 5,
        minor: 1,
    });
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, newc(&members))?;
    Ok((kver.join("vmlinuz"), initrd))
}

/// One boot: start QEMU with `op`, wait for the guest's checks; returns the machine (about to
/// run the operation) and the lines it printed.
fn boot(spec: &QemuSpec, op: &str, n: usize) -> Result<(Machine, Vec<String>)> {
    let mut spec = spec.clone();
    if let Some(d) = spec.direct_boot.as_mut() {
        d.append = format!("{} keelcut.op={op} keelcut.n={n}", d.append);
    }
    let mut m = Machine::start(&spec, None)?;
    let mark = m.boot_mark;
    let want: &[&str] = if op == "setup" {
        &["KEEL-CUT SETUP", "KEEL-CUT FATAL"]
    } else {
        &["KEEL-CUT STATE", "KEEL-CUT FATAL"]
    };
    let console = m.console.clone();
    console
        .wait_for(mark, want, BOOT_TIMEOUT, || m.alive_no_reset())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let lines: Vec<String> = console
        .since(mark)
        .lines()
        .filter_map(|l| l.find("KEEL-CUT ").map(|i| l[i + 9..].trim().to_string()))
        .collect();
    if let Some(f) = lines.iter().find(|l| l.starts_with("FATAL")) {
        bail!("the guest stopped: {f}");
    }
    Ok((m, lines))
}

/// Wait for the guest to print `KEEL-CUT <what>`; the instant it was seen.
fn wait_line(m: &mut Machine, what: &str) -> Result<Instant> {
    let console = m.console.clone();
    let mark = m.boot_mark;
    console
        .wait_for(mark, &[&format!("KEEL-CUT {what}")], BOOT_TIMEOUT, || {
            m.alive_no_reset()
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Instant::now())
}

fn line<'a>(lines: &'a [String], key: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key))
        .map_or("(missing)", str::trim)
}

fn soak(h: &Harness, repo: &Path, t: &mut TestRun) -> Result<()> {
    let cuts: usize = std::env::var("KEEL_VMTEST_SOAK_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut rng = Rng::new(seed_from_env("KEEL_VMTEST_SEED", "power-cut soak"));
    eprintln!("power-cut soak: {cuts} cuts");
    let dir = h.workdir.join("soak");
    std::fs::create_dir_all(&dir)?;
    let start = Instant::now();
    let (kernel, initrd) = build_boot(h, repo, &dir)?;
    t.timing("kernel, modules and initramfs", start.elapsed());
    let opts = VmOptions {
        memory_mb: 1024,
        cpus: 1,
        ssh: false,
        ..VmOptions::default()
    };
    let cfg = Config::Ignition(json!({"ignition": {"version": "3.4.0"}}));
    let vm = h.vm("soak", &cfg, &opts)?;
    let mut spec = vm.spec.clone();
    spec.ignition = None;
    spec.direct_boot = Some(DirectBoot {
        kernel,
        initrd,
        append: "console=ttyS0,115200 panic=-1 quiet loglevel=1".into(),
    });

    let start = Instant::now();
    let (_m, lines) = boot(&spec, "setup", 0)?;
    t.timing("setup boot (v2 committed in the guest)", start.elapsed());
    eprintln!("setup: {}", line(&lines, "SETUP"));

    let mut n = 0;
    let check_boot = |t: &mut TestRun, lines: &[String], what: &str| {
        let raw = t.check(
            &format!("{what}: systemd-boot's view before repair"),
            || {
                let raw = line(lines, "RAW");
                ensure!(raw == "ok", "{raw}");
                Ok(())
            },
        );
        let repaired = t.check(&format!("{what}: consistent after keel status"), || {
            let failed: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("STATUS-FAILED"))
                .collect();
            ensure!(failed.is_empty(), "{failed:?}");
            let c = line(lines, "CHECK");
            ensure!(c == "ok", "{c}");
            Ok(())
        });
        raw && repaired
    };
    // Calibration: each kind once, uncut, timed.
    let mut window = HashMap::new();
    for kind in KINDS {
        let (mut m, lines) = boot(&spec, kind, n)?;
        check_boot(t, &lines, &format!("before calibration of {kind}"));
        let seen = wait_line(&mut m, "START")?;
        let took = wait_line(&mut m, "DONE")? - seen;
        m.kill();
        n += 1;
        t.timing(&format!("{kind}, uncut"), took);
        window.insert(kind, took.mul_f64(1.25) + Duration::from_millis(200));
    }
    let per_kind = cuts.div_ceil(KINDS.len()).max(1);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut bad = 0;
    let mut pending: Option<String> = None;
    for c in 0..cuts {
        let kind = KINDS[c % KINDS.len()];
        let k = counts.entry(kind).or_default();
        // Stratified: the k-th cut of a kind lands in the k-th slice of its window.
        let delay = rng.in_slice(window[kind], *k, per_kind);
        *k += 1;
        let (mut m, lines) = boot(&spec, kind, n)?;
        if let Some(what) = pending.take() {
            if !check_boot(t, &lines, &what) {
                bad += 1;
            }
        }
        let seen = wait_line(&mut m, "START")?;
        std::thread::sleep(delay.saturating_sub(seen.elapsed()));
        let done = m.console.since(m.boot_mark).contains("KEEL-CUT DONE");
        m.kill();
        n += 1;
        let what = format!(
            "cut {c} ({kind} +{} ms{})",
            delay.as_millis(),
            if done { ", after it finished" } else { "" }
        );
        eprintln!("{what}");
        pending = Some(what);
    }
    // The boot after the last cut checks it.
    let (m, lines) = boot(&spec, "none", n)?;
    if let Some(what) = pending.take() {
        if !check_boot(t, &lines, &what) {
            bad += 1;
        }
    }
    drop(m);
    let summary: Vec<String> = KINDS
        .iter()
        .map(|k| format!("{k} {}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    eprintln!(
        "power-cut soak: {cuts} cuts ({}), {bad} inconsistent, {:.0} s",
        summary.join(", "),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn vm_powercut() {
    keel_vm::testmain::run("powercut", soak);
}
