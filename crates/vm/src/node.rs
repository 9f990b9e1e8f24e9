//! A booted Keel node seen over SSH, for tests that update and reboot it: shell commands,
//! `keel status --json`, waiting for first boot to settle, rebooting and waiting for SSH.

use crate::machine::{Machine, RESTART_LINE};
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The kernel prints this once per boot on the serial console.
pub const BOOT_BANNER: &str = "Linux version ";

/// Run `cmd` in the guest as `core`; its stdout without the trailing newline.
pub fn sh(m: &Machine, cmd: &str) -> Result<String> {
    Ok(m.ssh()?.run(cmd)?.trim_end().to_string())
}

/// `keel status --json`.
pub fn status(m: &Machine) -> Result<Value> {
    let out = sh(m, "sudo keel status --json")?;
    serde_json::from_str(&out).with_context(|| format!("keel status --json printed {out}"))
}

/// The commit of the booted deployment in a `keel status --json` value ("" if none).
pub fn booted_commit(st: &Value) -> String {
    st["booted"]
        .as_str()
        .and_then(|b| b.split('.').next())
        .unwrap_or_default()
        .to_string()
}

/// Wait (up to `timeout`) until first boot is complete (no `ignition.firstboot` karg) and the
/// booted entry is blessed (no boot counter).
pub fn wait_settled(m: &Machine, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let st = status(m)?;
        let b = st["deployments"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["role"] == "booted").cloned());
        let settled = b.as_ref().is_some_and(|d| {
            d["boot_counting"].is_null()
                && !d["kargs"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|a| a == "ignition.firstboot"))
        });
        if settled {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("first boot not complete or booted entry not blessed: {st}");
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// `systemctl reboot`, then wait for the next kernel banner, SSH, and the end of startup;
/// returns the time it took.
pub fn reboot_and_wait(m: &mut Machine, timeout: Duration) -> Result<Duration> {
    let mark = m.console.mark();
    let start = Instant::now();
    reboot(m)?;
    wait_rebooted(m, mark, timeout.saturating_sub(start.elapsed()))?;
    Ok(start.elapsed())
}

/// Console lines that show a shutdown (or the next boot) has begun.
const SHUTDOWN_BEGUN: &[&str] = &[
    "Stopped target",
    "systemd-shutdown",
    "reboot: ",
    BOOT_BANNER,
];

/// How long a guest may take to show on the console that it is shutting down.
const SHUTDOWN_SHOWS: Duration = Duration::from_secs(120);

/// Ask the guest to reboot (`systemctl reboot`) and return once the console shows the shutdown
/// has begun; asks again when it has not (the request never reached a slow guest).
pub fn reboot(m: &mut Machine) -> Result<()> {
    let mark = m.console.mark();
    let mut last = String::new();
    for attempt in 1..=3 {
        // The connection drops while the command runs, so ssh's own exit (255) says nothing.
        match m.ssh().and_then(|s| s.output("sudo systemctl reboot")) {
            Ok(o) if !o.status.success() && o.status.code() != Some(255) => bail!(
                "`sudo systemctl reboot` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Ok(o) => last = String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => last = format!("{e:#}"),
        }
        let console = m.console.clone();
        if console
            .wait_for(mark, SHUTDOWN_BEGUN, SHUTDOWN_SHOWS, || m.alive())
            .is_ok()
        {
            return Ok(());
        }
        ensure!(m.alive(), "QEMU exited while rebooting");
        eprintln!(
            "reboot: no shutdown on the console {} s after request {attempt} (ssh said: {last:?}); asking again",
            SHUTDOWN_SHOWS.as_secs()
        );
    }
    bail!(
        "the guest did not start shutting down after 3 reboot requests (ssh said: {last:?}); console:\n{}",
        m.console.tail(mark, 40)
    )
}

/// After a reboot began at console offset `mark`: wait for the next kernel banner, SSH, and the
/// end of startup; returns the time waited.
pub fn wait_rebooted(m: &mut Machine, mark: u64, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let console = m.console.clone();
    console.wait_for(mark, &[BOOT_BANNER], timeout, || m.alive())?;
    let ssh = m.ssh()?.clone();
    ssh.wait_ready(timeout.saturating_sub(start.elapsed()), || {
        ensure!(m.alive(), "QEMU exited");
        Ok(())
    })?;
    let _ = ssh.output("systemctl is-system-running --wait");
    Ok(start.elapsed())
}

/// Like [`reboot_and_wait`], but the guest is made to hang where OVMF sometimes hangs under TCG:
/// its CPUs are stopped through QEMU's monitor as soon as the console shows the kernel's
/// "machine restart", so the console stays silent. The harness must notice the silence
/// (after `hang_after`) and reset the guest ([`Machine::alive`]); returns the time it took.
pub fn reboot_through_firmware_hang(
    m: &mut Machine,
    hang_after: Duration,
    timeout: Duration,
) -> Result<Duration> {
    let mark = m.console.mark();
    let start = Instant::now();
    let resets = m.resets;
    reboot(m)?;
    let console = m.console.clone();
    console.wait_for(mark, &[RESTART_LINE], timeout, || m.alive_no_reset())?;
    m.monitor_command("stop")
        .context("stopping the guest's CPUs through the QEMU monitor")?;
    let tail = console.since(mark);
    let after = tail.rsplit_once(RESTART_LINE).map_or("", |(_, a)| a);
    ensure!(
        after.trim().is_empty(),
        "the firmware printed {after:?} before the guest could be stopped; the hang was not made"
    );
    m.set_hang_after(hang_after);
    let waited = wait_rebooted(m, mark, timeout.saturating_sub(start.elapsed()));
    m.set_hang_after(crate::machine::RESET_HANG);
    waited?;
    ensure!(
        m.resets == resets + 1,
        "the harness reset the guest {} times (want 1)",
        m.resets - resets
    );
    Ok(start.elapsed())
}
