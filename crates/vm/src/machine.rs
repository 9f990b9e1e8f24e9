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
}

impl Machine {
    /// Start QEMU for `spec`, whose serial port must go to a file.
    pub fn start(spec: &QemuSpec, ssh: Option<SshTarget>) -> Result<Machine> {
        let Serial::File(log) = &spec.serial else {
            bail!("a harness VM needs its serial console in a file");
        };
        let console = ConsoleLog::new(log);
        let boot_mark = console.mark();
        let stderr_log = log.with_extension("qemu.log");
        let stderr = std::fs::File::create(&stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        let mut cmd = spec.command();
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
        })
    }

    /// Is the QEMU process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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
