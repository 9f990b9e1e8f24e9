//! `keel prepare-root`: in the initramfs, after the root filesystem is mounted at `/sysroot`,
//! mount the deployment named by the `ostree=` kernel argument as the future `/`, with the
//! stateroot's `/var`, a read-only `/usr` and the physical root at `/sysroot`.

use crate::error::{DeployError, IoPath};
use crate::sysroot::Deployment;
use rustix::mount::{
    mount_bind, mount_change, mount_move, mount_remount, MountFlags, MountPropagationFlags,
};
use std::fs;
use std::path::{Path, PathBuf};

/// The deployment a boot selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTarget {
    /// The deployment directory under the physical root.
    pub deploy: PathBuf,
    /// Its stateroot.
    pub stateroot: String,
    /// `<commit>.<serial>`.
    pub name: String,
}

/// The value of the last `ostree=` argument of a kernel command line (split as the kernel
/// splits it).
pub fn ostree_arg(cmdline: &str) -> Option<&str> {
    keel_utils::cmdline::last_value(cmdline, "ostree")
}

fn invalid(path: &Path, reason: impl Into<String>) -> DeployError {
    DeployError::Layout {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Follow `ostree=/ostree/boot.B/<stateroot>/<bootcsum>/<n>` inside `sysroot` to the deployment.
pub fn resolve(sysroot: &Path, cmdline: &str) -> Result<BootTarget, DeployError> {
    let arg = ostree_arg(cmdline).ok_or_else(|| {
        invalid(
            sysroot,
            "no ostree= argument on the kernel command line; boot a Keel entry",
        )
    })?;
    let rel = arg.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|p| p == "..") {
        return Err(invalid(
            sysroot,
            format!("ostree={arg}: not a path below the sysroot"),
        ));
    }
    let link = sysroot.join(rel);
    let target = fs::canonicalize(&link).at(&link)?;
    let deploy_root =
        fs::canonicalize(sysroot.join("ostree/deploy")).at(&sysroot.join("ostree/deploy"))?;
    let parts: Vec<String> = target
        .strip_prefix(&deploy_root)
        .map_err(|_| invalid(&target, format!("ostree={arg} leads outside ostree/deploy")))?
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [stateroot, d, name] if d == "deploy" && Deployment::parse_name(name).is_some() => {
            Ok(BootTarget {
                deploy: target.clone(),
                stateroot: stateroot.clone(),
                name: name.clone(),
            })
        }
        _ => Err(invalid(
            &target,
            format!(
                "ostree={arg} does not lead to ostree/deploy/<stateroot>/deploy/<commit>.<serial>"
            ),
        )),
    }
}

/// Resolve the boot target from `cmdline_path` (normally `/proc/cmdline`) and mount it on
/// `sysroot`; then touch `/run/ostree-booted`.
pub fn prepare_root(sysroot: &Path, cmdline_path: &Path) -> Result<BootTarget, DeployError> {
    let cmdline = fs::read_to_string(cmdline_path).at(cmdline_path)?;
    let t = resolve(sysroot, &cmdline)?;
    let d = &t.deploy;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .at(Path::new("/"))?;
    mount_bind(d, d).at(d)?;
    let var = sysroot.join("ostree/deploy").join(&t.stateroot).join("var");
    mount_bind(&var, d.join("var")).at(&d.join("var"))?;
    let usr = d.join("usr");
    mount_bind(&usr, &usr).at(&usr)?;
    mount_remount(&usr, MountFlags::BIND | MountFlags::RDONLY, "").at(&usr)?;
    mount_bind(sysroot, d.join("sysroot")).at(&d.join("sysroot"))?;
    mount_move(d, sysroot).at(sysroot)?;
    fs::create_dir_all("/run").at(Path::new("/run"))?;
    fs::write("/run/ostree-booted", b"").at(Path::new("/run/ostree-booted"))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// `split_whitespace` saw `"ostree=/a b"`-style quoting and init's arguments after `--`
    /// as kernel parameters; the kernel does not.
    #[test]
    fn ostree_arg_is_read_as_the_kernel_reads_it() {
        for (cmdline, want) in [
            ("ostree=/a ostree=/b", Some("/b")),
            ("ostree=\"/a\" quiet", Some("/a")),
            ("\"ostree=/a\"", Some("/a")),
            ("ostree=/a -- ostree=/b", Some("/a")),
            ("-- ostree=/b", None),
            ("x=\"ostree=/a b\"", None),
        ] {
            assert_eq!(ostree_arg(cmdline), want, "{cmdline}");
        }
    }

    #[test]
    fn cmdline_and_path_resolution() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path();
        let name = format!("{}.0", "ab".repeat(32));
        fs::create_dir_all(s.join("ostree/deploy/keel/deploy").join(&name)).unwrap();
        fs::create_dir_all(s.join("ostree/boot.1.0/keel/ff")).unwrap();
        symlink(
            format!("../../../deploy/keel/deploy/{name}"),
            s.join("ostree/boot.1.0/keel/ff/0"),
        )
        .unwrap();
        symlink("boot.1.0", s.join("ostree/boot.1")).unwrap();
        fs::create_dir_all(s.join("ostree/elsewhere")).unwrap();
        symlink("../../../elsewhere", s.join("ostree/boot.1.0/keel/ff/1")).unwrap();
        // (cmdline, Ok(stateroot) or Err(message part))
        let table = [
            (
                "root=LABEL=root rw ostree=/ostree/boot.1/keel/ff/0 quiet",
                Ok("keel"),
            ),
            (
                "ostree=/ostree/boot.0/keel/ff/0 ostree=/ostree/boot.1/keel/ff/0",
                Ok("keel"),
            ),
            ("root=LABEL=root rw", Err("no ostree= argument")),
            (
                "ostree=/ostree/boot.1/keel/ff/1",
                Err("outside ostree/deploy"),
            ),
            ("ostree=/ostree/boot.1/keel/ff/9", Err("No such file")),
            ("ostree=/ostree/boot.1/../../etc", Err("not a path below")),
            ("ostree=/ostree/deploy/keel", Err("does not lead to")),
        ];
        for (cmdline, want) in table {
            match (resolve(s, cmdline), want) {
                (Ok(got), Ok(sr)) => {
                    assert_eq!(got.stateroot, sr);
                    assert_eq!(got.name, name);
                    assert_eq!(
                        got.deploy,
                        fs::canonicalize(s.join("ostree/deploy/keel/deploy").join(&name)).unwrap()
                    );
                }
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{cmdline}: {e}"),
                (got, want) => panic!("{cmdline}: got {got:?}, want {want:?}"),
            }
        }
    }
}
