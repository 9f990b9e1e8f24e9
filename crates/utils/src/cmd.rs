//! Running external tools through one helper that captures stderr into the error.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

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
    let command = display(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| spawn_error(cmd, command.clone(), source))?;
    if out.status.success() {
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
