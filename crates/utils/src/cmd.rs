//! Running external tools through one helper that captures stderr into the error.
//!
//! This module is the only place that starts a `std::process::Command` (enforced by
//! `clippy.toml`): callers build the command line and hand it to [`run`], [`run_stdout`],
//! [`run_inherit`] or [`run_inherit_stoppable`].

// The command helper itself: the one place allowed to run a Command.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Failure to run an external tool.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program is not installed (or not on `PATH`).
    #[error("`{program}` was not found on PATH; install the Debian package `{package}` (apt-get install {package})")]
    NotFound { program: String, package: String },
    /// The program could not be started for another reason.
    #[error("failed to start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// We were asked to stop (SIGTERM, SIGINT or SIGHUP) and stopped the program first.
    #[error("`{command}` was stopped: keel received signal {signal}")]
    Interrupted { command: String, signal: i32 },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Debian package that ships a given program, for error messages.
pub fn package_for(program: &str) -> &str {
    match program {
        "mkfs.ext4" | "mkfs.xfs" | "resize2fs" | "e2fsck" | "tune2fs" | "mke2fs" => "e2fsprogs",
        "mkfs.vfat" | "mkfs.fat" => "dosfstools",
        "sfdisk" | "fdisk" => "fdisk",
        "mmdebstrap" => "mmdebstrap",
        "qemu-img" | "qemu-nbd" => "qemu-utils",
        "qemu-system-x86_64" => "qemu-system-x86",
        "dracut" | "lsinitrd" => "dracut",
        "sgdisk" => "gdisk",
        "losetup" | "wipefs" | "blkid" | "mount" | "umount" => "util-linux",
        "cryptsetup" => "cryptsetup",
        "mdadm" => "mdadm",
        "ostree" => "ostree",
        "xz" => "xz-utils",
        "mcopy" | "mmd" => "mtools",
        "etcd" => "etcd-server",
        other => other,
    }
}

/// Render a command line for messages.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

fn shell_quote(a: &OsStr) -> String {
    let s = a.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Keep the last `max` bytes of a tool's stderr (on a char boundary), trimmed.
fn tail(stderr: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(stderr);
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

/// Run a command to completion, capturing stdout and stderr. Fails with the stderr tail when the
/// exit status is not success.
pub fn run(cmd: &mut Command) -> Result<Output, CmdError> {
    run_accepting(cmd, &[])
}

/// Like [`run`], but the exit codes in `also_ok` are answers too (e.g. `blkid`'s 2, "nothing
/// found"): the output is returned and the caller reads `status.code()`.
pub fn run_accepting(cmd: &mut Command, also_ok: &[i32]) -> Result<Output, CmdError> {
    let command = display(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| spawn_error(cmd, command.clone(), source))?;
    let accepted = out.status.code().is_some_and(|c| also_ok.contains(&c));
    if out.status.success() || accepted {
        Ok(out)
    } else {
        Err(CmdError::Failed {
            command,
            status: out.status.to_string(),
            stderr: tail(&out.stderr, 4000),
        })
    }
}

/// Run a command and return its stdout as a string.
pub fn run_stdout(cmd: &mut Command) -> Result<String, CmdError> {
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run a command whose stdout/stderr stay attached to ours (for long tools whose own progress
/// output is useful), failing with the exit status when it fails.
pub fn run_inherit(cmd: &mut Command) -> Result<(), CmdError> {
    let command = display(cmd);
    let status = cmd
        .status()
        .map_err(|source| spawn_error(cmd, command.clone(), source))?;
    if status.success() {
        Ok(())
    } else {
        Err(CmdError::Failed {
            command,
            status: status.to_string(),
            stderr: "(output shown above)".into(),
        })
    }
}

/// The signals after which [`run_inherit_stoppable`] stops its child and returns.
pub const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
];

/// Like [`run_inherit`], but when this process gets SIGTERM, SIGINT or SIGHUP the child is sent
/// SIGTERM (SIGKILL after `grace`), reaped, and [`CmdError::Interrupted`] is returned, so the
/// caller's cleanup (temporary directories, `Drop` guards) runs instead of the child outliving
/// us. For long-running children such as a VM, in a process that ends when the child does
/// (the handlers stay installed).
pub fn run_inherit_stoppable(cmd: &mut Command, grace: Duration) -> Result<(), CmdError> {
    let command = display(cmd);
    let got = Arc::new(AtomicUsize::new(0));
    for sig in STOP_SIGNALS {
        // The handler only stores the signal number (async-signal-safe). It stays registered:
        // this is for a process that ends when its child does.
        if let Err(e) = signal_hook::flag::register_usize(sig, Arc::clone(&got), sig as usize) {
            tracing::warn!("cannot handle signal {sig}: {e}");
        }
    }
    wait_or_stop(cmd, &command, &got, grace)
}

fn wait_or_stop(
    cmd: &mut Command,
    command: &str,
    got: &AtomicUsize,
    grace: Duration,
) -> Result<(), CmdError> {
    let mut child = cmd
        .spawn()
        .map_err(|source| spawn_error(cmd, command.to_string(), source))?;
    let pid = rustix::process::Pid::from_child(&child);
    loop {
        let status = child.try_wait().map_err(|source| CmdError::Spawn {
            command: command.to_string(),
            source,
        })?;
        if let Some(status) = status {
            return if status.success() {
                Ok(())
            } else {
                Err(CmdError::Failed {
                    command: command.to_string(),
                    status: status.to_string(),
                    stderr: "(output shown above)".into(),
                })
            };
        }
        let signal = got.load(Ordering::SeqCst);
        if signal != 0 {
            tracing::info!("signal {signal}: stopping `{command}`");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + grace;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(CmdError::Interrupted {
                command: command.to_string(),
                signal: signal as i32,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_error(cmd: &Command, command: String, source: std::io::Error) -> CmdError {
    if source.kind() == std::io::ErrorKind::NotFound {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let package = package_for(&program).to_string();
        CmdError::NotFound { program, package }
    } else {
        CmdError::Spawn { command, source }
    }
}

/// Is `program` on `PATH`?
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_stderr_and_command() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom"), "{msg}");
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }

    #[test]
    fn accepted_exit_codes_are_answers_and_others_fail() {
        let mut two = Command::new("sh");
        two.args(["-c", "echo out; exit 2"]);
        let out = run_accepting(&mut two, &[2]).unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(2), &b"out\n"[..])
        );
        assert!(run(&mut two).is_err(), "2 fails when it is not accepted");
        let err = run_accepting(Command::new("sh").args(["-c", "exit 3"]), &[2]).unwrap_err();
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }

    #[test]
    fn missing_program_names_package() {
        let err = run(&mut Command::new("mkfs.definitely-not-here")).unwrap_err();
        assert!(matches!(err, CmdError::NotFound { .. }));
        let err = run(&mut Command::new("mmdebstrap-missing-xyz")).unwrap_err();
        assert!(err.to_string().contains("apt-get install"));
    }

    #[test]
    fn quoting_table() {
        for (arg, want) in [
            ("plain", "plain"),
            ("with space", "'with space'"),
            ("it's", "'it'\\''s'"),
            ("", "''"),
        ] {
            assert_eq!(shell_quote(OsStr::new(arg)), want);
        }
    }

    #[test]
    fn tail_keeps_end() {
        assert_eq!(tail(b"  abc  ", 10), "abc");
        assert_eq!(tail(b"0123456789", 3), "…789");
    }
}
