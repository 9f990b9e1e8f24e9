//! Filesystems: reuse what is there when `wipeFilesystem` is false and the type (and the label
//! and UUID, when given) match; otherwise wipe signatures and run the format's mkfs.

use super::probe;
use anyhow::{bail, Result};
use keel_ignition_config::types::Filesystem;
use keel_utils::cmd;
use std::path::Path;
use std::process::Command;

/// What to do with a device, given what is on it.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Reuse,
    Create,
}

fn decide(f: &Filesystem, found: &super::Probe) -> Result<Decision> {
    let format = f.format.as_deref().unwrap_or_default();
    if f.wipe_filesystem == Some(true) {
        return Ok(Decision::Create);
    }
    if found.fs_type.is_empty() {
        return Ok(Decision::Create);
    }
    if format == "none" {
        bail!(
            "the device holds a {} filesystem, format is \"none\" and wipeFilesystem is false",
            found.fs_type
        );
    }
    let same_type = found.fs_type == format || (format == "vfat" && found.fs_type == "vfat");
    let label_ok = f.label.as_ref().is_none_or(|l| *l == found.label);
    let uuid_ok = f
        .uuid
        .as_ref()
        .is_none_or(|u| u.eq_ignore_ascii_case(&found.uuid));
    if same_type && label_ok && uuid_ok {
        return Ok(Decision::Reuse);
    }
    bail!(
        "the device holds a {} filesystem (label {:?}, uuid {}) that does not match format {format:?}{}{} and wipeFilesystem is false",
        found.fs_type,
        found.label,
        found.uuid,
        f.label.as_ref().map(|l| format!(", label {l:?}")).unwrap_or_default(),
        f.uuid.as_ref().map(|u| format!(", uuid {u}")).unwrap_or_default(),
    )
}

/// The mkfs command line for `f` on `dev`.
fn mkfs(f: &Filesystem, dev: &Path) -> Result<Command> {
    let format = f.format.as_deref().unwrap_or_default();
    let (program, force, label_flag): (&str, &[&str], &str) = match format {
        "ext4" => ("mkfs.ext4", &["-F"], "-L"),
        "xfs" => ("mkfs.xfs", &["-f"], "-L"),
        "vfat" => ("mkfs.vfat", &[], "-n"),
        "swap" => ("mkswap", &["-f"], "-L"),
        "btrfs" => ("mkfs.btrfs", &["-f"], "-L"),
        other => {
            bail!("unsupported filesystem format {other:?} (ext4, xfs, vfat, swap, btrfs or none)")
        }
    };
    let mut c = Command::new(program);
    c.args(force);
    if let Some(l) = &f.label {
        c.args([label_flag, l]);
    }
    if let Some(u) = &f.uuid {
        match format {
            "xfs" => c.args(["-m", &format!("uuid={u}")]),
            "vfat" => c.args(["-i", &u.replace('-', "")]),
            _ => c.args(["-U", u]),
        };
    }
    c.args(&f.options).arg(dev);
    Ok(c)
}

/// Creates or reuses the filesystem of `f`.
pub fn apply(f: &Filesystem) -> Result<()> {
    let Some(format) = f.format.as_deref() else {
        return Ok(());
    };
    let dev = super::wait_for(f.device.as_deref().unwrap_or_default())?;
    let found = probe(&dev)?;
    if decide(f, &found)? == Decision::Reuse {
        tracing::info!(
            "reusing the {} filesystem on {}",
            found.fs_type,
            dev.display()
        );
        return Ok(());
    }
    cmd::run(Command::new("wipefs").arg("--all").arg(&dev))?;
    if format != "none" {
        cmd::run(&mut mkfs(f, &dev)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Probe;
    use super::*;

    #[test]
    fn decide_table() {
        let fs = |format: &str, label: Option<&str>, wipe: Option<bool>| Filesystem {
            format: Some(format.into()),
            label: label.map(Into::into),
            wipe_filesystem: wipe,
            ..Default::default()
        };
        let found = |t: &str, l: &str| Probe {
            fs_type: t.into(),
            label: l.into(),
            uuid: "u-1".into(),
        };
        let cases: Vec<(Filesystem, Probe, Result<Decision, &str>)> = vec![
            (
                fs("ext4", None, None),
                Probe::default(),
                Ok(Decision::Create),
            ),
            (
                fs("ext4", Some("data"), None),
                found("ext4", "data"),
                Ok(Decision::Reuse),
            ),
            (
                fs("ext4", None, None),
                found("ext4", "x"),
                Ok(Decision::Reuse),
            ),
            (
                fs("ext4", Some("data"), None),
                found("ext4", "other"),
                Err("does not match"),
            ),
            (
                fs("xfs", None, None),
                found("ext4", ""),
                Err("does not match"),
            ),
            (
                fs("xfs", None, Some(true)),
                found("ext4", ""),
                Ok(Decision::Create),
            ),
            (
                fs("none", None, None),
                found("ext4", ""),
                Err("format is \"none\""),
            ),
            (
                Filesystem {
                    uuid: Some("U-1".into()),
                    ..fs("ext4", None, None)
                },
                found("ext4", ""),
                Ok(Decision::Reuse),
            ),
        ];
        for (f, p, want) in cases {
            match (decide(&f, &p), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{f:?}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{f:?}: {e}"),
                (got, w) => panic!("{f:?} on {p:?}: got {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn mkfs_command_table() {
        let f = |format: &str| Filesystem {
            format: Some(format.into()),
            label: Some("L".into()),
            uuid: Some("0a1b-2c3d".into()),
            options: vec!["-q".into()],
            ..Default::default()
        };
        let cases = [
            ("ext4", "mkfs.ext4 -F -L L -U 0a1b-2c3d -q /dev/x"),
            ("xfs", "mkfs.xfs -f -L L -m uuid=0a1b-2c3d -q /dev/x"),
            ("vfat", "mkfs.vfat -n L -i 0a1b2c3d -q /dev/x"),
            ("swap", "mkswap -f -L L -U 0a1b-2c3d -q /dev/x"),
        ];
        for (format, want) in cases {
            assert_eq!(
                cmd::display(&mkfs(&f(format), Path::new("/dev/x")).unwrap()),
                want
            );
        }
        assert!(mkfs(&f("zfs"), Path::new("/dev/x")).is_err());
    }
}
