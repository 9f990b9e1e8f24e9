//! A booted Keel node seen over SSH, for tests that update and reboot it: shell commands,
//! `keel status --json`, waiting for first boot to settle, rebooting and waiting for SSH.

use crate::machine::Machine;
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
    reboot(m);
    wait_rebooted(m, mark, timeout)?;
    Ok(start.elapsed())
}

/// Ask the guest to reboot (`systemctl reboot`) without waiting.
pub fn reboot(m: &Machine) {
    // The connection drops while the command runs; its status says nothing.
    let _ = m.ssh().map(|s| s.output("sudo systemctl reboot"));
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
