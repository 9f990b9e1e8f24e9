//! Running a program inside the tree being composed.
//!
//! The program runs under `chroot` in a private mount namespace (`unshare --mount`) where `/proc`,
//! `/sys` and `/dev` of the tree are mounted. The mounts belong to that namespace only, so they
//! disappear with the process: a crash or a kill can never leave the host with mounts inside
//! the tree. The environment is reset to a fixed, minimal one so that host settings (locale, TMPDIR,
//! proxies) do not leak into the tree.

use keel_utils::cmd::{self, CmdError};
use std::path::Path;
use std::process::{Command, Output};

const SETUP: &str = r#"set -e
t="$1"; shift
mount -t proc proc "$t/proc"
mount -t sysfs sysfs "$t/sys"
mount --bind /dev "$t/dev"
exec chroot "$t" "$@""#;

/// Build the command that runs `argv` inside `tree` with `env` added to the fixed environment.
pub fn command(tree: &Path, argv: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        SETUP,
        "sh",
    ])
    .arg(tree)
    .args(argv)
    .env_clear()
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    .env("LANG", "C.UTF-8")
    .env("HOME", "/root")
    .env("DEBIAN_FRONTEND", "noninteractive");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Run `argv` inside `tree` and capture its output; the error carries the command and stderr.
pub fn run(tree: &Path, argv: &[&str], env: &[(&str, String)]) -> Result<Output, CmdError> {
    cmd::run(&mut command(tree, argv, env))
}
