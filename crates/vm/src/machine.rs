//! One running VM: a QEMU child process with its serial console in a log file, reachable over
//! SSH on a forwarded loopback port. The process is killed when the value is dropped.

use crate::console::ConsoleLog;
use crate::qemu::{QemuSpec, Serial};
use crate::ssh::SshTarget;
use anyhow::{bail, Context, Result};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A booted (or booting) VM.
pub struct Machine {
    child: Child,
    stderr_log: std::path::PathBuf,
    started: Instant,
    /// Console log of this VM (shared across its boots).
    pub console: ConsoleLog,
    /// Console offset at which this boot started.
    pub boot_mark: u64,
    /// SSH access, when a port is forwarded.
    pub ssh: Option<SshTarget>,
    /// QEMU's human monitor (a Unix socket), for resetting a guest whose firmware hangs.
    monitor: std::path::PathBuf,
    /// When the harness last reset a hung guest.
    last_reset: Option<Instant>,
    /// How long the console may stay silent after a restart before the guest is reset.
    hang_after: Duration,
    /// How many times the harness reset a hung guest.
    pub resets: u32,
}

/// The guest's last words before the firmware takes over at a reboot.
pub const RESTART_LINE: &str = "reboot: machine restart";

/// Silence after a restart that means the firmware hung (a normal restart prints the kernel's
/// first lines within seconds, even under TCG).
pub const RESET_HANG: Duration = Duration::from_secs(90);

/// The console stopped at a restart: nothing after the last [`RESTART_LINE`] but blank output.
fn stopped_at_restart(console_tail: &str) -> bool {
    console_tail
        .rsplit_once(RESTART_LINE)
        .is_some_and(|(_, after)| after.trim().is_empty())
}

impl Machine {
    /// Start QEMU for `spec`, whose serial port must go to a file.
    // The VM harness owns QEMU as a long-running child it talks to and kills; the command
    // helper runs tools to completion.
    #[allow(clippy::disallowed_methods)]
    pub fn start(spec: &QemuSpec, ssh: Option<SshTarget>) -> Result<Machine> {
        let Serial::File(log) = &spec.serial else {
            bail!("a harness VM needs its serial console in a file");
        };
        let console = ConsoleLog::new(log);
        let boot_mark = console.mark();
        let stderr_log = log.with_extension("qemu.log");
        let stderr = std::fs::File::create(&stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        let monitor = log.with_extension("monitor");
        let mut cmd = spec.command();
        cmd.arg("-monitor").arg(format!(
            "unix:{},server=on,wait=off",
            crate::qemu::escape_opt(&monitor)
        ));
        tracing::info!("starting {}", keel_utils::cmd::display(&cmd));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow::anyhow!(
                        "`{}` was not found; install the Debian package `qemu-system-x86`",
                        crate::qemu::QEMU
                    )
                } else {
                    anyhow::anyhow!("starting {}: {e}", crate::qemu::QEMU)
                }
            })?;
        Ok(Machine {
            child,
            stderr_log,
            started: Instant::now(),
            console,
            boot_mark,
            ssh,
            monitor,
            last_reset: None,
            hang_after: RESET_HANG,
            resets: 0,
        })
    }

    /// Is the QEMU process still running? Every wait polls this, so it also resets a guest
    /// whose firmware hung at a reboot: under TCG, OVMF sometimes spins forever after the
    /// kernel's "machine restart" and prints nothing (seen in CI and here, about one reboot in
    /// fifty); a reset through the monitor boots it again.
    pub fn alive(&mut self) -> bool {
        let running = matches!(self.child.try_wait(), Ok(None));
        if running {
            self.reset_if_hung();
        }
        running
    }

    /// Is the QEMU process still running? Unlike [`Machine::alive`], never resets the guest.
    pub fn alive_no_reset(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Change how long a silent console after a restart is taken for a firmware hang (the
    /// hang test shortens it; the default is [`RESET_HANG`]).
    pub fn set_hang_after(&mut self, d: Duration) {
        self.hang_after = d;
    }

    fn reset_if_hung(&mut self) {
        let quiet = std::fs::metadata(self.console.path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d >= self.hang_after);
        let recently = self
            .last_reset
            .is_some_and(|t| t.elapsed() < self.hang_after);
        if !quiet || recently {
            return;
        }
        let end = self.console.mark();
        if !stopped_at_restart(&self.console.since(end.saturating_sub(512))) {
            return;
        }
        self.last_reset = Some(Instant::now());
        self.resets += 1;
        eprintln!(
            "the guest printed nothing for {} s after \"{RESTART_LINE}\" (firmware hang at reset); resetting it through the QEMU monitor",
            self.hang_after.as_secs()
        );
        // `cont` after the reset: a guest whose CPUs were stopped stays stopped across a reset.
        if let Err(e) = self
            .monitor_command("system_reset")
            .and_then(|_| self.monitor_command("cont"))
        {
            eprintln!("could not reset through {}: {e}", self.monitor.display());
        }
    }

    /// Run one command in QEMU's human monitor and return what it printed.
    pub fn monitor_command(&self, command: &str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.monitor)?;
        s.write_all(format!("{command}\n").as_bytes())?;
        // Read until the monitor's second prompt (after the greeting, then after the command),
        // so the command has run before the connection closes.
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while String::from_utf8_lossy(&seen).matches("(qemu)").count() < 2 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        Ok(String::from_utf8_lossy(&seen).into_owned())
    }

    /// What QEMU itself printed (errors such as a failed KVM start), for failure messages.
    pub fn qemu_stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The SSH target, or an error for VMs started without one.
    pub fn ssh(&self) -> Result<&SshTarget> {
        self.ssh
            .as_ref()
            .context("this VM was started without SSH forwarding")
    }

    /// Wait until SSH answers and systemd has finished starting up (`running` or
    /// `degraded`); returns the time from QEMU start to that point and the system state. Gives
    /// up at once when QEMU exits or the console shows emergency mode, quoting the console's
    /// failure lines.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(Duration, String)> {
        let ssh = self.ssh()?.clone();
        let deadline = timeout.saturating_sub(self.elapsed());
        let console = self.console.clone();
        let mark = self.boot_mark;
        let qemu_log = self.stderr_log.clone();
        let child = &mut self.child;
        ssh.wait_ready(deadline, || {
            if !matches!(child.try_wait(), Ok(None)) {
                let said = std::fs::read_to_string(&qemu_log).unwrap_or_default();
                bail!("QEMU exited ({})", said.trim());
            }
            let text = console.since(mark);
            if EMERGENCY.iter().any(|p| text.contains(p)) {
                bail!("the VM entered emergency mode:\n{}", failure_lines(&text));
            }
            Ok(())
        })
        .with_context(|| format!("console log: {}", self.console.path().display()))?;
        let out = ssh.output("systemctl is-system-running --wait")?;
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((self.elapsed(), state))
    }

    /// Power off through systemd and wait for QEMU to exit (killing it after `timeout`).
    pub fn shutdown(&mut self, timeout: Duration) -> Result<()> {
        if let Some(ssh) = &self.ssh {
            // The connection drops while the command runs; its status says nothing.
            let _ = ssh.output("sudo systemctl poweroff");
        }
        let start = Instant::now();
        while start.elapsed() < timeout {
            if !self.alive() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.kill();
        bail!(
            "the VM did not power off within {} s and was killed; console log: {}",
            timeout.as_secs(),
            self.console.path().display()
        )
    }

    /// Stop QEMU at once.
    pub fn kill(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Console text systemd prints when boot stops in emergency mode.
pub const EMERGENCY: &[&str] = &["Entering emergency mode", "You are in emergency mode"];

/// The console lines that explain a failed boot (failed units and error messages), cleaned of
/// terminal escapes.
pub fn failure_lines(text: &str) -> String {
    text.lines()
        .map(crate::console::strip_control)
        .filter(|l| {
            let lower = l.to_lowercase();
            lower.contains("failed") || lower.contains("error")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_that_stopped_at_a_restart() {
        for (tail, want) in [
            (
                "[  43.1] reboot: Restarting system\r\n[  43.2] reboot: machine restart\r\n",
                true,
            ),
            (
                "reboot: machine restart\r\n\u{1b}[2J Keel  Boot in 3 s.",
                false,
            ),
            (
                "reboot: machine restart\n[    0.000000] Linux version 6.1",
                false,
            ),
            ("localhost login: ", false),
        ] {
            assert_eq!(stopped_at_restart(tail), want, "{tail:?}");
        }
    }
}
