//! Boot time against a plain Debian boot (issue 13), run by `scripts/bench-boot.sh`.
//!
//! Builds the baseline once ([`keel_vm::baseline`]: the same commit's tree, kernel and dracut
//! initramfs booted the plain way, no Keel units), then, for `KEEL_BENCH_RUNS` runs (default 5),
//! boots in turn: the baseline (a fresh overlay each run), a fresh VM of the Keel image
//! (`KEEL_VMTEST_IMAGE`) with a minimal Ignition config (the run's SSH key for `core`), and
//! that VM's second boot. Every boot is a fresh QEMU process with the same flags
//! (`Harness::vm`, `VmOptions::default()`: q35, OVMF, 2 vCPUs, 2 GiB, the same config in
//! fw_cfg), timed by `Machine::wait_ready`: QEMU start until SSH accepts the key and
//! `systemctl is-system-running --wait` returns. Prints one line per run, the medians and both
//! ratios against the goals (second ≤ 1.15 × baseline, first ≤ 1.15 × second), the medians of
//! `systemd-analyze time`'s phases, and `systemd-analyze time`, `critical-chain` and `blame` of
//! the last run's three boots. Skips unless `KEEL_BENCH_BOOT=1` and `KEEL_VMTEST_IMAGE` are set.
//! Other knobs: `KEEL_VMTEST_REPO` (compose repository, default `repo` next to the image),
//! `KEEL_BENCH_REV` (default `keel/stable/x86_64`; the image must be that commit, which the first
//! run checks), `KEEL_BIN` (the keel binary), `KEEL_VMTEST_KEEP` (keep the work directory).

use anyhow::{ensure, Context, Result};
use keel_vm::harness::{Config, Harness, VmOptions};
use keel_vm::machine::Machine;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(600);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_REV: &str = "keel/stable/x86_64";
/// A ratio goal of issue 13.
const GOAL: f64 = 1.15;

/// What one boot gave.
#[derive(Default)]
struct Boot {
    /// Time to ready, seconds.
    ready: f64,
    /// CPU time QEMU used until then (all threads, user + system), seconds.
    cpu: Option<f64>,
    /// `systemd-analyze time`.
    time: String,
    /// `systemd-analyze critical-chain` and `blame` (the last run only).
    profile: String,
    /// `systemd-analyze blame`: each unit's start time, seconds.
    blame: Vec<(String, f64)>,
}

fn sh(m: &Machine, cmd: &str) -> Result<String> {
    m.ssh()?.run(cmd)
}

/// Wait until the boot is ready and collect what systemd says about it.
fn measure(m: &mut Machine, which: &str, profile: bool) -> Result<Boot> {
    let (ready, state) = m
        .wait_ready(READY_TIMEOUT)
        .with_context(|| format!("{which}: the boot did not get ready"))?;
    if state != "running" {
        let failed = sh(m, "systemctl --failed --no-legend --plain").unwrap_or_default();
        eprintln!("WARNING: {which}: system state {state:?}; failed units:\n{failed}");
    }
    let cpu = qemu_cpu_seconds(m.console.path());
    let time = sh(m, "systemd-analyze time")?.trim().to_string();
    let blame = parse_blame(&sh(m, "systemd-analyze blame --no-pager")?);
    let profile = if profile {
        sh(
            m,
            "systemd-analyze critical-chain --no-pager; echo; echo 'blame (top 15, devices left out):'; \
             systemd-analyze blame --no-pager | grep -v '[.]device$' | head -n 15",
        )?
    } else {
        String::new()
    };
    Ok(Boot {
        ready: ready.as_secs_f64(),
        cpu,
        time,
        blame,
        profile,
    })
}

/// CPU seconds (user + system, all threads) used so far by the QEMU process whose serial
/// console goes to `console` (found in /proc by its command line). A second figure beside wall
/// time: under TCG a guest's work is CPU-bound, and CPU time stretches much less than wall time
/// when other jobs share the host's cores.
fn qemu_cpu_seconds(console: &Path) -> Option<f64> {
    let needle = format!("path={}", console.display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.starts_with("qemu-system") || !cmdline.contains(&needle) {
            return None;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        cpu_seconds_of_stat(&stat)
    })
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds (USER_HZ is 100 on x86-64 Linux).
fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    // Fields from the third (state) on follow the command name's closing parenthesis; utime
    // and stime are fields 14 and 15.
    let f: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The Ignition config of the Keel boots (the baseline gets it too, so every QEMU command line
/// is the same, and ignores it): only the run's SSH key for `core`.
fn minimal_config(pubkey: &str) -> Config {
    Config::Ignition(serde_json::json!({
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [pubkey]}]}
    }))
}

/// The baseline's first boot shows it is the plain boot: no `ostree=`, no Keel unit active.
fn check_plain(m: &Machine) -> Result<()> {
    let cmdline = sh(m, "cat /proc/cmdline")?;
    ensure!(
        !cmdline.contains("ostree=") && !cmdline.contains("ignition."),
        "baseline booted with Keel's kargs: {cmdline}"
    );
    ensure!(
        sh(m, "test -e /run/ostree-booted && echo yes || echo no")?.trim() == "no",
        "the baseline booted as a Keel deployment (/run/ostree-booted)"
    );
    let units = sh(m, "systemctl list-units --all --plain --no-legend 'keel-*'")?;
    let active: Vec<&str> = units
        .lines()
        .filter(|l| l.split_whitespace().nth(2).is_some_and(|a| a != "inactive"))
        .collect();
    ensure!(
        active.is_empty(),
        "Keel units ran in the baseline: {active:?}"
    );
    Ok(())
}

/// One run's Keel boots: a fresh VM's first boot, a clean poweroff, its second boot.
fn keel_boots(h: &Harness, i: usize, commit: Option<&str>, last: bool) -> Result<(Boot, Boot)> {
    let vm = h.vm(
        &format!("keel-{i}"),
        &minimal_config(&h.key.public),
        &VmOptions::default(),
    )?;
    let first = {
        let mut m = vm.boot()?;
        let b = measure(&mut m, "Keel first boot", last)?;
        if let Some(want) = commit {
            let got = keel_vm::node::booted_commit(&keel_vm::node::status(&m)?);
            ensure!(
                got == want,
                "the image boots commit {got}, the baseline was built from {want} (set KEEL_BENCH_REV)"
            );
        }
        keel_vm::node::wait_settled(&m, Duration::from_secs(120))?;
        m.shutdown(POWEROFF_TIMEOUT)?;
        b
    };
    let mut m = vm.boot()?;
    let second = measure(&mut m, "Keel second boot", last)?;
    let cmdline = sh(&m, "cat /proc/cmdline")?;
    ensure!(
        !cmdline.contains("ignition.firstboot"),
        "the second boot provisioned again: {cmdline}"
    );
    m.kill();
    Ok((first, second))
}

/// Median of `v` (not empty).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Seconds of a systemd time span (`1min 2.345s`, `345ms`, `2.5s`).
fn parse_span(s: &str) -> Option<f64> {
    let mut total = 0.0;
    for tok in s.split_whitespace() {
        let split = tok.find(|c: char| c.is_alphabetic() || c == 'µ')?;
        let (num, unit) = tok.split_at(split);
        let n: f64 = num.parse().ok()?;
        total += n * match unit {
            "h" => 3600.0,
            "min" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            _ => return None,
        };
    }
    Some(total)
}

/// The phases of `systemd-analyze time` ("Startup finished in 5.9s (firmware) + … = 34.7s").
fn phases(time: &str) -> Vec<(String, f64)> {
    let Some(line) = time.lines().find(|l| l.starts_with("Startup finished in ")) else {
        return Vec::new();
    };
    let body = line["Startup finished in ".len()..]
        .split(" = ")
        .next()
        .unwrap_or_default();
    body.split(" + ")
        .filter_map(|p| {
            let (span, name) = p.trim().rsplit_once(" (")?;
            Some((name.trim_end_matches(')').to_string(), parse_span(span)?))
        })
        .collect()
}

/// `systemd-analyze blame` lines ("  1min 2.345s foo.service") as (unit, seconds).
fn parse_blame(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let (span, unit) = l.trim().rsplit_once(' ')?;
            Some((unit.to_string(), parse_span(span)?))
        })
        .collect()
}

/// The units whose median start time differs most between boots `a` and `b` of every run
/// (a unit missing from a boot's blame counts 0 s there): "unit a s -> b s (+d s)", at most
/// `n`, devices left out.
fn blame_diff(rows: &[[Boot; 3]], a: usize, b: usize, n: usize) -> Vec<String> {
    let mut units: Vec<&str> = rows
        .iter()
        .flat_map(|r| r[a].blame.iter().chain(&r[b].blame))
        .map(|(u, _)| u.as_str())
        .filter(|u| !u.ends_with(".device"))
        .collect();
    units.sort_unstable();
    units.dedup();
    let med = |k: usize, unit: &str| {
        let v: Vec<f64> = rows
            .iter()
            .map(|r| {
                r[k].blame
                    .iter()
                    .find(|(u, _)| u == unit)
                    .map_or(0.0, |(_, s)| *s)
            })
            .collect();
        median(&v)
    };
    let mut d: Vec<(f64, f64, &str)> = units
        .into_iter()
        .map(|u| (med(a, u), med(b, u), u))
        .collect();
    d.sort_by(|x, y| (y.1 - y.0).abs().total_cmp(&(x.1 - x.0).abs()));
    d.into_iter()
        .take(n)
        .map(|(x, y, u)| format!("{u} {x:.1} s -> {y:.1} s ({:+.1} s)", y - x))
        .collect()
}

/// "firmware 5.9 s, loader 1.1 s, …": each phase's median over `times`.
fn phase_medians(times: &[&str]) -> String {
    let all: Vec<Vec<(String, f64)>> = times.iter().map(|t| phases(t)).collect();
    let Some(names) = all.first() else {
        return String::new();
    };
    names
        .iter()
        .map(|(name, _)| {
            let v: Vec<f64> = all
                .iter()
                .filter_map(|p| p.iter().find(|(n, _)| n == name).map(|(_, s)| *s))
                .collect();
            format!("{name} {:.1} s", median(&v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).map(PathBuf::from)
}

fn bench(image: &Path) -> Result<()> {
    let runs: usize = std::env::var("KEEL_BENCH_RUNS")
        .ok()
        .map(|r| r.parse().context("KEEL_BENCH_RUNS is not a number"))
        .transpose()?
        .unwrap_or(5);
    ensure!(runs >= 1, "KEEL_BENCH_RUNS must be at least 1");
    let repo = env_path("KEEL_VMTEST_REPO").unwrap_or_else(|| image.with_file_name("repo"));
    let rev = std::env::var("KEEL_BENCH_REV").unwrap_or_else(|_| DEFAULT_REV.into());
    let keel = env_path("KEEL_BIN").unwrap_or_else(|| PathBuf::from("keel"));
    let work = tempfile::Builder::new()
        .prefix("keel-bench-boot-")
        .tempdir_in(image.parent().unwrap_or(Path::new("/var/tmp")))?;
    let h = Harness::new(image, work.path(), &keel)?;
    let commit = keel_utils::cmd::run_stdout(
        std::process::Command::new(&keel)
            .arg("repo")
            .arg("--repo")
            .arg(&repo)
            .args(["rev-parse", &rev]),
    )
    .with_context(|| format!("resolving {rev} in {}", repo.display()))?
    .trim()
    .to_string();
    let started = Instant::now();
    let disk =
        keel_vm::baseline::build_baseline(&keel, &repo, &commit, work.path(), &h.key.public)?;
    eprintln!(
        "baseline disk {} (commit {commit}) built in {:.0} s; accelerator {:?}",
        disk.display(),
        started.elapsed().as_secs_f64(),
        h.accel
    );
    let base = Harness {
        image: disk,
        workdir: h.workdir.clone(),
        key: h.key.clone(),
        accel: h.accel,
        keel: h.keel.clone(),
    };
    let mut rows: Vec<[Boot; 3]> = Vec::new();
    for i in 1..=runs {
        let last = i == runs;
        let b = {
            let vm = base.vm(
                &format!("baseline-{i}"),
                &minimal_config(&h.key.public),
                &VmOptions::default(),
            )?;
            let mut m = vm.boot()?;
            let b = measure(&mut m, "baseline", last)?;
            if i == 1 {
                check_plain(&m)?;
            }
            m.kill();
            b
        };
        let (f, s) = keel_boots(&h, i, (i == 1).then_some(commit.as_str()), last)?;
        let cpu = |b: &Boot| b.cpu.map_or("?".into(), |c| format!("{c:.1}"));
        println!(
            "boot run {i}: baseline {:.1} s, keel first {:.1} s, keel second {:.1} s \
             (QEMU CPU to ready: {} / {} / {} s)",
            b.ready,
            f.ready,
            s.ready,
            cpu(&b),
            cpu(&f),
            cpu(&s)
        );
        for (name, boot) in [("baseline", &b), ("keel first", &f), ("keel second", &s)] {
            println!("    {name}: {}", boot.time.replace('\n', "; "));
        }
        rows.push([b, f, s]);
    }
    let col = |k: usize| median(&rows.iter().map(|r| r[k].ready).collect::<Vec<_>>());
    let (base_m, first_m, second_m) = (col(0), col(1), col(2));
    let (r_second, r_first) = (second_m / base_m, first_m / second_m);
    let verdict = |r: f64| if r <= GOAL { "met" } else { "NOT met" };
    println!(
        "boot medians: baseline {base_m:.1} s, second {second_m:.1} s (x{r_second:.2} baseline, goal {GOAL}: {}), \
         first {first_m:.1} s (x{r_first:.2} second, goal {GOAL}: {})",
        verdict(r_second),
        verdict(r_first)
    );
    let cpu_col = |k: usize| {
        let v: Vec<f64> = rows.iter().filter_map(|r| r[k].cpu).collect();
        (v.len() == rows.len()).then(|| median(&v))
    };
    if let (Some(b), Some(f), Some(s)) = (cpu_col(0), cpu_col(1), cpu_col(2)) {
        println!(
            "QEMU CPU medians: baseline {b:.1} s, second {s:.1} s (x{:.2} baseline), first {f:.1} s (x{:.2} second)",
            s / b,
            f / s
        );
    }
    for (k, name) in [(0, "baseline"), (2, "keel second"), (1, "keel first")] {
        let times: Vec<&str> = rows.iter().map(|r| r[k].time.as_str()).collect();
        println!(
            "phase medians, {name} (systemd-analyze time): {}",
            phase_medians(&times)
        );
    }
    for (a, b, what) in [
        (0, 2, "baseline -> keel second"),
        (2, 1, "keel second -> keel first"),
    ] {
        println!("unit start times, medians, largest differences {what} (systemd-analyze blame):");
        for l in blame_diff(&rows, a, b, 12) {
            println!("    {l}");
        }
    }
    let last = rows.last().context("no runs")?;
    for (k, name) in [
        (0, "baseline"),
        (1, "keel first boot"),
        (2, "keel second boot"),
    ] {
        println!("\n=== {name}, run {runs}: systemd-analyze time, critical-chain, blame");
        println!("{}\n\n{}", last[k].time, last[k].profile.trim_end());
    }
    if std::env::var_os("KEEL_VMTEST_KEEP").is_some() {
        eprintln!("keeping {}", work.keep().display());
    }
    Ok(())
}

#[test]
fn bench_boot() {
    if std::env::var("KEEL_BENCH_BOOT").as_deref() != Ok("1") {
        keel_testsupport::skip(
            "bench_boot: set KEEL_BENCH_BOOT=1 to run the boot benchmark (scripts/bench-boot.sh)",
        );
        return;
    }
    let Some(image) = env_path("KEEL_VMTEST_IMAGE") else {
        keel_testsupport::skip(
            "bench_boot: KEEL_VMTEST_IMAGE is not set (scripts/bench-boot.sh builds the image)",
        );
        return;
    };
    if let Err(e) = bench(&image) {
        panic!("boot benchmark failed: {e:#}");
    }
}

#[test]
fn systemd_analyze_time_parsed() {
    let t = "Startup finished in 5.905s (firmware) + 1.107s (loader) + 2.383s (kernel) + \
             9.877s (initrd) + 1min 2.5s (userspace) = 1min 21.772s\n\
             multi-user.target reached after 15.430s in userspace.";
    let p = phases(t);
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["firmware", "loader", "kernel", "initrd", "userspace"]
    );
    assert!((p[4].1 - 62.5).abs() < 1e-9 && (p[0].1 - 5.905).abs() < 1e-9);
    for (s, want) in [("345ms", 0.345), ("2min", 120.0), ("1h 1us", 3600.000001)] {
        let got = parse_span(s).unwrap();
        assert!((got - want).abs() < 1e-9, "{s}: {got}");
    }
    assert_eq!(parse_span("12x"), None);
    assert!(phases("Bootup is not yet finished").is_empty());
    let other = "Startup finished in 4.1s (firmware) + 1.0s (loader) + 2.0s (kernel) + 8.0s (initrd) + 10.0s (userspace) = 25.1s";
    let third = "Startup finished in 6.1s (firmware) + 1.0s (loader) + 2.0s (kernel) + 8.0s (initrd) + 12.0s (userspace) = 29.1s";
    assert_eq!(
        phase_medians(&[t, other, third]),
        "firmware 5.9 s, loader 1.0 s, kernel 2.0 s, initrd 8.0 s, userspace 12.0 s"
    );
    assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    let stat =
        "4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 9 0 0 0 1234 566 0 0 20 0 5 0 1 2 3";
    assert_eq!(cpu_seconds_of_stat(stat), Some(18.0));
    assert_eq!(cpu_seconds_of_stat("4242 (x) S 1"), None);
    let blame = parse_blame(
        "10.011s keel-healthcheck.service\n1min 2.5s slow.service\n 345ms dev-vda.device\n",
    );
    assert_eq!(blame.len(), 3);
    assert_eq!(blame[1], ("slow.service".to_string(), 62.5));
    let boot = |b: &[(&str, f64)]| Boot {
        blame: b.iter().map(|(u, s)| (u.to_string(), *s)).collect(),
        ..Boot::default()
    };
    let rows = [[
        boot(&[("a.service", 1.0), ("b.service", 2.0), ("x.device", 9.0)]),
        boot(&[]),
        boot(&[("a.service", 1.5), ("c.service", 4.0)]),
    ]];
    assert_eq!(
        blame_diff(&rows, 0, 2, 2),
        [
            "c.service 0.0 s -> 4.0 s (+4.0 s)",
            "b.service 2.0 s -> 0.0 s (-2.0 s)"
        ]
    );
}
