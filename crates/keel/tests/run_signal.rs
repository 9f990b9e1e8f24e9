//! `keel run` stops its QEMU and removes its state directory when it is told to stop
//! (SIGTERM, SIGINT, SIGHUP), instead of leaving QEMU running and `/tmp/keel-run-*` behind.
//! Boots a blank disk: OVMF finds nothing to boot and QEMU keeps running until stopped.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_testsupport::process::KillOnDrop;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// PIDs of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

fn state_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("keel-run-"))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop_with(signal: rustix::process::Signal, name: &str) {
    for tool in ["qemu-system-x86_64", "qemu-img"] {
        assert!(
            keel_utils::cmd::have(tool),
            "{tool} is missing: run scripts/install-deps.sh (this test must not be skipped)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let image = dir.path().join("blank.raw");
    std::fs::write(&image, vec![0u8; 4 << 20]).unwrap();
    let stderr = dir.path().join("stderr");
    let child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "run",
            image.to_str().unwrap(),
            "--memory",
            "256",
            "--cpus",
            "1",
        ])
        .env("TMPDIR", &tmp)
        .env("KEEL_ACCEL", "tcg")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut keel = KillOnDrop(child);
    let needle = tmp.to_str().unwrap().to_string();
    wait_for("QEMU to start", Duration::from_secs(60), || {
        processes_mentioning(&needle)
            .iter()
            .any(|&p| p != keel.0.id())
    });
    assert_eq!(
        state_dirs(&tmp).len(),
        1,
        "one state directory while running"
    );
    let pid = rustix::process::Pid::from_raw(keel.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = keel.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name}: keel run did not exit within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        !status.success(),
        "{name}: keel run exited 0; stderr:\n{err}"
    );
    assert!(
        err.contains("was stopped") && err.contains("signal"),
        "{name}: stderr does not say why it stopped:\n{err}"
    );
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "{name}: QEMU still running: pids {left:?}");
    let dirs = state_dirs(&tmp);
    assert!(dirs.is_empty(), "{name}: state directories left: {dirs:?}");
}

#[test]
fn sigterm_stops_qemu_and_removes_the_state_dir() {
    stop_with(rustix::process::Signal::TERM, "SIGTERM");
}

#[test]
fn sigint_stops_qemu_and_removes_the_state_dir() {
    stop_with(rustix::process::Signal::INT, "SIGINT");
}

#[test]
fn sighup_stops_qemu_and_removes_the_state_dir() {
    stop_with(rustix::process::Signal::HUP, "SIGHUP");
}
