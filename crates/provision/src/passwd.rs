//! Users and groups, created with the shadow tools (`groupadd`, `useradd`, `usermod`,
//! `userdel`, `groupdel`) using `--root` (they chroot into it), as Ignition does, with `--`
//! before the name so a name is never read as an option; and SSH keys written to
//! `~/.ssh/authorized_keys.d/ignition` beneath the root ([`crate::beneath`]).

use crate::beneath::{set_owner_mode_fd, Root};
use crate::error::{AtPath, OpError};
use crate::files::id_u32;
use crate::rootfs::Accounts;
use anyhow::{Context, Result};
use keel_ignition_config::types::{Passwd, PasswdGroup, PasswdUser};
use keel_utils::cmd;
use std::path::Path;
use std::process::Command;

/// Creates/updates/deletes groups, then users, then writes each user's SSH keys.
pub fn apply(root: &Root, passwd: &Passwd) -> Result<(), OpError> {
    for (i, g) in passwd.groups.iter().enumerate() {
        let name = g.name.as_deref().unwrap_or_default();
        let accounts = Accounts::load(root).at(
            format!("$.passwd.groups.{i}"),
            "reading the root's accounts",
        )?;
        group(root, g, &accounts).at(
            format!("$.passwd.groups.{i}"),
            format!("creating group {name:?}"),
        )?;
    }
    for (i, u) in passwd.users.iter().enumerate() {
        let name = u.name.as_deref().unwrap_or_default();
        let at = format!("$.passwd.users.{i}");
        let accounts = Accounts::load(root).at(&at, "reading the root's accounts")?;
        user(root, u, &accounts).at(&at, format!("creating user {name:?}"))?;
        if u.should_exist != Some(false) && !u.ssh_authorized_keys.is_empty() {
            let accounts = Accounts::load(root).at(&at, "reading the root's accounts")?;
            ssh_keys(root, name, &u.ssh_authorized_keys, &accounts)
                .at(&at, format!("writing SSH keys of {name:?}"))?;
        }
    }
    Ok(())
}

fn root_arg(root: &Path) -> Result<String> {
    let abs =
        std::path::absolute(root).with_context(|| format!("making {} absolute", root.display()))?;
    Ok(abs.to_string_lossy().into_owned())
}

/// `groupadd` for a new group; an existing group is left as it is (Ignition 2.14 fails here,
/// which makes re-runs fail; upstream made it idempotent in 2.25).
fn group(root: &Root, g: &PasswdGroup, accounts: &Accounts) -> Result<()> {
    let name = g.name.as_deref().unwrap_or_default();
    let exists = accounts.has_group(name);
    if g.should_exist == Some(false) {
        if exists {
            cmd::run(Command::new("groupdel").args([
                "--root",
                &root_arg(root.path())?,
                "--",
                name,
            ]))?;
        }
        return Ok(());
    }
    if exists {
        if let (Some(want), Some(have)) = (g.gid, accounts.gid(name)) {
            anyhow::ensure!(
                id_u32(want, "group")? == have,
                "group exists with gid {have}, not {want}"
            );
        }
        return Ok(());
    }
    let mut c = Command::new("groupadd");
    c.args(["--root", &root_arg(root.path())?]);
    if let Some(gid) = g.gid {
        c.args(["--gid", &gid.to_string()]);
    }
    c.args([
        "--password",
        g.password_hash
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or("*"),
    ]);
    if g.system == Some(true) {
        c.arg("--system");
    }
    cmd::run(c.args(["--", name]))?;
    Ok(())
}

/// Which tool the arguments are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `useradd` for a new user.
    Add,
    /// `usermod` for an existing user: only the fields the config sets.
    Modify,
}

/// The `useradd`/`usermod` arguments for `u` (before `--root` and the name).
pub fn account_args(u: &PasswdUser, tool: Tool) -> Vec<String> {
    let add = tool == Tool::Add;
    let mut a: Vec<String> = Vec::new();
    let mut push = |k: &str, v: &str| {
        a.push(k.to_string());
        a.push(v.to_string());
    };
    // A new user without a hash gets a locked password; `""` also means locked.
    match u.password_hash.as_deref() {
        Some(h) if !h.is_empty() => push("--password", h),
        Some(_) => push("--password", "*"),
        None if add => push("--password", "*"),
        None => {}
    }
    if let Some(uid) = u.uid {
        push("--uid", &uid.to_string());
    }
    if let Some(g) = &u.gecos {
        push("--comment", g);
    }
    if let Some(h) = &u.home_dir {
        push(if add { "--home-dir" } else { "--home" }, h);
    }
    if let Some(g) = &u.primary_group {
        push("--gid", g);
    }
    if !u.groups.is_empty() {
        push("--groups", &u.groups.join(","));
    }
    if let Some(s) = &u.shell {
        push("--shell", s);
    }
    let flags: &[(&str, bool)] = if add {
        &[
            ("--no-create-home", u.no_create_home == Some(true)),
            ("--create-home", u.no_create_home != Some(true)),
            ("--no-user-group", u.no_user_group == Some(true)),
            ("--system", u.system == Some(true)),
            ("--no-log-init", u.no_log_init == Some(true)),
        ]
    } else {
        &[("--move-home", u.home_dir.is_some())]
    };
    a.extend(
        flags
            .iter()
            .filter(|(_, set)| *set)
            .map(|(f, _)| f.to_string()),
    );
    a
}

fn user(root: &Root, u: &PasswdUser, accounts: &Accounts) -> Result<()> {
    let name = u.name.as_deref().unwrap_or_default();
    let exists = accounts.has_user(name);
    let root_s = root_arg(root.path())?;
    if u.should_exist == Some(false) {
        if exists {
            cmd::run(Command::new("userdel").args(["--remove", "--root", &root_s, "--", name]))?;
        }
        return Ok(());
    }
    let args = account_args(u, if exists { Tool::Modify } else { Tool::Add });
    if exists && args.is_empty() {
        return Ok(());
    }
    let tool = if exists { "usermod" } else { "useradd" };
    cmd::run(
        Command::new(tool)
            .args(["--root", &root_s])
            .args(&args)
            .args(["--", name]),
    )?;
    Ok(())
}

/// Writes `~/.ssh/authorized_keys.d/ignition` (0600; directories 0700; owned by the user),
/// replacing what a previous run wrote. The home and `.ssh` are resolved beneath the root (a
/// link there leads to a place inside the root, never outside), and the owner and mode are set
/// on the opened directories.
fn ssh_keys(root: &Root, name: &str, keys: &[String], accounts: &Accounts) -> Result<()> {
    let uid = accounts
        .uid(name)
        .with_context(|| format!("user {name:?} missing from the root's /etc/passwd"))?;
    let gid = accounts.primary_gid(name).unwrap_or(0);
    let home = accounts
        .home(name)
        .filter(|h| h.starts_with('/'))
        .with_context(|| format!("user {name:?} has no absolute home directory"))?;
    let ssh = format!("{}/.ssh", home.trim_end_matches('/'));
    let keys_dir = format!("{ssh}/authorized_keys.d");
    for d in [&ssh, &keys_dir] {
        let dir = root.dir(d)?;
        set_owner_mode_fd(&dir, uid, gid, 0o700)
            .with_context(|| format!("setting the owner of {}", root.show(d)))?;
    }
    let mut text = keys.join("\n");
    text.push('\n');
    let path = format!("{keys_dir}/ignition");
    root.write_atomic_with(&path, 0o600, |f| {
        std::io::Write::write_all(f, text.as_bytes())?;
        set_owner_mode_fd(&*f, uid, gid, 0o600)
    })
    .with_context(|| format!("writing {}", root.show(&path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_arguments_table() {
        let full = PasswdUser {
            name: Some("core".into()),
            password_hash: Some("$6$x".into()),
            uid: Some(1500),
            gecos: Some("Core".into()),
            home_dir: Some("/var/home/core".into()),
            primary_group: Some("wheel".into()),
            groups: vec!["a".into(), "b".into()],
            shell: Some("/bin/bash".into()),
            system: Some(true),
            no_create_home: Some(true),
            ..Default::default()
        };
        let cases: Vec<(PasswdUser, Vec<&str>, Vec<&str>)> = vec![
            (
                PasswdUser {
                    name: Some("u".into()),
                    ..Default::default()
                },
                vec!["--password", "*", "--create-home"],
                vec![],
            ),
            (
                full,
                vec![
                    "--password",
                    "$6$x",
                    "--uid",
                    "1500",
                    "--comment",
                    "Core",
                    "--home-dir",
                    "/var/home/core",
                    "--gid",
                    "wheel",
                    "--groups",
                    "a,b",
                    "--shell",
                    "/bin/bash",
                    "--no-create-home",
                    "--system",
                ],
                vec![
                    "--password",
                    "$6$x",
                    "--uid",
                    "1500",
                    "--comment",
                    "Core",
                    "--home",
                    "/var/home/core",
                    "--gid",
                    "wheel",
                    "--groups",
                    "a,b",
                    "--shell",
                    "/bin/bash",
                    "--move-home",
                ],
            ),
            (
                PasswdUser {
                    name: Some("u".into()),
                    password_hash: Some(String::new()),
                    ..Default::default()
                },
                vec!["--password", "*", "--create-home"],
                vec!["--password", "*"],
            ),
        ];
        for (u, add, modify) in cases {
            assert_eq!(account_args(&u, Tool::Add), add);
            assert_eq!(account_args(&u, Tool::Modify), modify);
        }
    }
}
