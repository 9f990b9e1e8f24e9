//! The image-based layout of a committed tree (the OSTree model):
//!
//! - `/usr` is merged (`/bin`, `/sbin`, `/lib*` are symlinks into `/usr`);
//! - `/etc` is shipped as `/usr/etc` (the defaults that each deployment's `/etc` starts from);
//! - `/var` is empty; what packages put there is recreated at boot by tmpfiles.d lines
//!   ([`crate::tmpfiles`]), and the dpkg database lives in `/usr/lib/sysimage/dpkg`;
//! - `/home`, `/root`, `/opt`, `/srv`, `/mnt`, `/usr/local` are symlinks into `/var`
//!   (`var/home`, `var/roothome`, …) and `/media` points to `run/media`;
//! - `/dev`, `/proc`, `/sys`, `/run`, `/tmp`, `/boot` and `/sysroot` are empty directories and
//!   `/ostree` points to `sysroot/ostree`;
//! - no machine identity: `/usr/etc/machine-id` is empty, SSH host keys are removed (generated
//!   at first boot), logs, caches, backups and random seeds are removed.

use crate::tmpfiles;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// A tree that cannot be given the image layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// `/usr` is not merged.
    #[error("{0} is not a symlink into /usr: the tree must have a merged /usr (Debian bookworm and later)")]
    NotUsrMerged(String),
    /// `/usr/etc` exists already.
    #[error("the tree has both /etc and /usr/etc; remove /usr/etc (it is created from /etc)")]
    UsrEtcExists,
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directories moved into /var, and the symlink left in their place.
pub const MOVED_TO_VAR: &[(&str, &str, &str)] = &[
    ("home", "var/home", "var/home"),
    ("root", "var/roothome", "var/roothome"),
    ("opt", "var/opt", "var/opt"),
    ("srv", "var/srv", "var/srv"),
    ("mnt", "var/mnt", "var/mnt"),
    ("usr/local", "var/usrlocal", "../var/usrlocal"),
];

/// Files removed because they identify a machine or a build, or are logs and caches.
/// The last component may hold one `*`.
pub const UNREPRODUCIBLE: &[&str] = &[
    "etc/ssh/ssh_host_*",
    "etc/hostname",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
    "etc/.pwd.lock",
    "var/lib/dbus/machine-id",
    "var/lib/systemd/random-seed",
    "var/lib/systemd/catalog/database",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/dpkg/statoverride-old",
    "var/lib/dpkg/available-old",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
];

/// Directories whose files (not subdirectories) are all removed.
pub const EMPTIED: &[&str] = &[
    "var/log",
    "var/cache/apt",
    "var/lib/apt/lists",
    // man-db's index, built by its dpkg trigger before compose adds keel's pages (so it would
    // miss them anyway); `man` finds pages without it.
    "var/cache/man",
    "var/tmp",
    "tmp",
    "run",
];

/// Check that `/bin`, `/sbin`, `/lib` (and `/lib64` if present) are symlinks into `/usr`.
pub fn check_usrmerge(tree: &Path) -> Result<(), LayoutError> {
    for name in ["bin", "sbin", "lib", "lib64"] {
        let p = tree.join(name);
        match fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => {
                let target = fs::read_link(&p).map_err(at(&p))?;
                if !target.starts_with("usr") && !target.starts_with("/usr") {
                    return Err(LayoutError::NotUsrMerged(format!("/{name}")));
                }
            }
            Ok(_) => return Err(LayoutError::NotUsrMerged(format!("/{name}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound && name == "lib64" => {}
            Err(e) => return Err(at(&p)(e)),
        }
    }
    Ok(())
}

/// Remove logs, caches, backups, random seeds, machine ids, SSH host keys and `__pycache__`;
/// empty `/etc/machine-id`; point `/etc/resolv.conf` at systemd-resolved's stub (or remove the
/// host's copy when the tree has no resolved).
pub fn clean(tree: &Path) -> Result<(), LayoutError> {
    for pattern in UNREPRODUCIBLE {
        for p in glob_last(tree, pattern).map_err(at(tree))? {
            remove_any(&p)?;
        }
    }
    for dir in EMPTIED {
        remove_files_below(&tree.join(dir))?;
    }
    remove_pycache(&tree.join("usr"))?;
    let mid = tree.join("etc/machine-id");
    if fs::symlink_metadata(&mid).is_ok() || tree.join("etc").is_dir() {
        remove_any(&mid)?;
        fs::write(&mid, b"").map_err(at(&mid))?;
        fs::set_permissions(&mid, fs::Permissions::from_mode(0o444)).map_err(at(&mid))?;
    }
    let resolv = tree.join("etc/resolv.conf");
    remove_any(&resolv)?;
    if tree.join("usr/lib/systemd/systemd-resolved").exists() {
        symlink("../run/systemd/resolve/stub-resolv.conf", &resolv).map_err(at(&resolv))?;
    }
    Ok(())
}

/// Entries matching `pattern`: a path whose last component may hold one `*` (any characters).
fn glob_last(tree: &Path, pattern: &str) -> io::Result<Vec<PathBuf>> {
    let (dir, last) = match pattern.rsplit_once('/') {
        Some((d, l)) => (tree.join(d), l),
        None => (tree.to_path_buf(), pattern),
    };
    let Some((head, tail)) = last.split_once('*') else {
        let p = tree.join(pattern);
        return Ok(fs::symlink_metadata(&p)
            .map(|_| vec![p])
            .unwrap_or_default());
    };
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

fn remove_any(p: &Path) -> Result<(), LayoutError> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p).map_err(at(p)),
        Ok(_) => fs::remove_file(p).map_err(at(p)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(at(p)(e)),
    }
}

/// Remove every non-directory below `dir`, keeping the directory structure.
fn remove_files_below(dir: &Path) -> Result<(), LayoutError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(at(dir)(e)),
    };
    for e in rd {
        let p = e.map_err(at(dir))?.path();
        if fs::symlink_metadata(&p).map_err(at(&p))?.is_dir() {
            remove_files_below(&p)?;
        } else {
            fs::remove_file(&p).map_err(at(&p))?;
        }
    }
    Ok(())
}

fn remove_pycache(dir: &Path) -> Result<(), LayoutError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(at(dir)(e)),
    };
    for e in rd {
        let e = e.map_err(at(dir))?;
        let p = e.path();
        if e.file_type().map_err(at(&p))?.is_dir() {
            if e.file_name() == "__pycache__" {
                fs::remove_dir_all(&p).map_err(at(&p))?;
            } else {
                remove_pycache(&p)?;
            }
        }
    }
    Ok(())
}

/// Empty `dir` (creating it if needed) and set its mode.
fn empty_dir(dir: &Path, mode: u32) -> Result<(), LayoutError> {
    remove_any(dir)?;
    fs::create_dir(dir).map_err(at(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(at(dir))
}

/// Move `from` to `to` (both in the same tree), creating `to`'s parent.
fn move_to(from: &Path, to: &Path) -> Result<(), LayoutError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(at(parent))?;
    }
    remove_any(to)?;
    fs::rename(from, to).map_err(at(from))
}

/// Give a composed tree the image layout. Returns the tmpfiles.d entries written to
/// `/usr/lib/tmpfiles.d/keel-var.conf`.
pub fn apply(tree: &Path) -> Result<Vec<tmpfiles::Entry>, LayoutError> {
    check_usrmerge(tree)?;
    if tree.join("usr/etc").exists() {
        return Err(LayoutError::UsrEtcExists);
    }
    fs::create_dir_all(tree.join("var")).map_err(at(tree))?;

    let dpkg = tree.join("var/lib/dpkg");
    if dpkg.is_dir() {
        let sysimage = tree.join("usr/lib/sysimage/dpkg");
        move_to(&dpkg, &sysimage)?;
        symlink("../../usr/lib/sysimage/dpkg", &dpkg).map_err(at(&dpkg))?;
    }

    for (name, dest, link) in MOVED_TO_VAR {
        let from = tree.join(name);
        let md = fs::symlink_metadata(&from);
        if md.as_ref().is_ok_and(|m| m.is_dir()) {
            move_to(&from, &tree.join(dest))?;
        } else if md.is_ok() {
            remove_any(&from)?;
        }
        symlink(link, &from).map_err(at(&from))?;
    }
    let media = tree.join("media");
    remove_any(&media)?;
    symlink("run/media", &media).map_err(at(&media))?;

    let entries = tmpfiles::var_to_tmpfiles(tree).map_err(at(&tree.join("var")))?;
    let conf_dir = tree.join("usr/lib/tmpfiles.d");
    fs::create_dir_all(&conf_dir).map_err(at(&conf_dir))?;
    let conf = conf_dir.join("keel-var.conf");
    fs::write(&conf, tmpfiles::render(&entries)).map_err(at(&conf))?;

    let etc = tree.join("etc");
    if etc.is_dir() {
        fs::rename(&etc, tree.join("usr/etc")).map_err(at(&etc))?;
    }
    let mid = tree.join("usr/etc/machine-id");
    remove_any(&mid)?;
    fs::write(&mid, b"").map_err(at(&mid))?;
    fs::set_permissions(&mid, fs::Permissions::from_mode(0o444)).map_err(at(&mid))?;

    for (name, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("boot", 0o755),
        ("sysroot", 0o755),
    ] {
        empty_dir(&tree.join(name), mode)?;
    }
    let ostree = tree.join("ostree");
    remove_any(&ostree)?;
    symlink("sysroot/ostree", &ostree).map_err(at(&ostree))?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small tree shaped like a fresh Debian bootstrap.
    fn synthetic() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in [
            "usr/bin",
            "usr/lib/systemd",
            "usr/local/bin",
            "etc/ssh",
            "var/lib/dpkg/info",
            "var/log/apt",
            "var/cache/apt/archives",
            "var/mail",
            "home",
            "root",
            "opt",
            "srv",
            "mnt",
            "media/cdrom",
            "dev/pts",
            "proc/1",
            "run/lock",
            "tmp/x",
            "boot",
            "usr/lib/python3/dist-packages/m/__pycache__",
        ] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        for (l, t) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
            symlink(t, r.join(l)).unwrap();
        }
        for (f, c) in [
            ("etc/machine-id", "0123456789abcdef\n"),
            ("etc/hostname", "buildhost\n"),
            ("etc/resolv.conf", "nameserver 10.0.0.1\n"),
            ("etc/passwd", "root:x:0:0::/root:/bin/bash\n"),
            ("etc/passwd-", "old\n"),
            ("etc/ssh/ssh_host_ed25519_key", "secret"),
            ("etc/ssh/sshd_config", "# config"),
            ("var/lib/dpkg/status", "Package: x\n"),
            ("var/log/apt/history.log", "log"),
            ("var/cache/apt/pkgcache.bin", "cache"),
            ("root/.bashrc", "# bashrc"),
            ("tmp/x/junk", "junk"),
            ("usr/lib/python3/dist-packages/m/__pycache__/m.pyc", "pyc"),
            ("usr/lib/systemd/systemd-resolved", ""),
        ] {
            fs::write(r.join(f), c).unwrap();
        }
        t
    }

    #[test]
    fn globs_in_the_last_component() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("d")).unwrap();
        for f in ["a.dat", "a.dat-old", "b-old", "ssh_host_rsa_key", "other"] {
            fs::write(t.path().join("d").join(f), "").unwrap();
        }
        let names = |pattern: &str| -> Vec<String> {
            glob_last(t.path(), pattern)
                .unwrap()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("d/*-old"), vec!["a.dat-old", "b-old"]);
        assert_eq!(names("d/ssh_host_*"), vec!["ssh_host_rsa_key"]);
        assert_eq!(names("d/other"), vec!["other"]);
        assert!(names("d/missing").is_empty());
        assert!(names("nodir/*").is_empty());
    }

    #[test]
    fn usrmerge_is_required() {
        let t = synthetic();
        check_usrmerge(t.path()).unwrap();
        fs::remove_file(t.path().join("sbin")).unwrap();
        fs::create_dir(t.path().join("sbin")).unwrap();
        let err = check_usrmerge(t.path()).unwrap_err().to_string();
        assert!(err.contains("/sbin"), "{err}");
    }

    #[test]
    fn clean_then_apply_gives_the_image_layout() {
        let t = synthetic();
        let r = t.path();
        clean(r).unwrap();
        let entries = apply(r).unwrap();

        let link = |p: &str| {
            fs::read_link(r.join(p))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        for (p, want) in [
            ("home", "var/home"),
            ("root", "var/roothome"),
            ("opt", "var/opt"),
            ("srv", "var/srv"),
            ("mnt", "var/mnt"),
            ("media", "run/media"),
            ("usr/local", "../var/usrlocal"),
            ("ostree", "sysroot/ostree"),
            (
                "usr/etc/resolv.conf",
                "../run/systemd/resolve/stub-resolv.conf",
            ),
        ] {
            assert_eq!(link(p), want, "{p}");
        }
        assert!(!r.join("etc").exists());
        assert_eq!(fs::read(r.join("usr/etc/machine-id")).unwrap(), b"");
        assert_eq!(
            fs::read_to_string(r.join("usr/etc/passwd")).unwrap(),
            "root:x:0:0::/root:/bin/bash\n"
        );
        for gone in [
            "usr/etc/hostname",
            "usr/etc/passwd-",
            "usr/etc/ssh/ssh_host_ed25519_key",
            "usr/lib/python3/dist-packages/m/__pycache__",
        ] {
            assert!(
                fs::symlink_metadata(r.join(gone)).is_err(),
                "{gone} should be gone"
            );
        }
        assert!(r.join("usr/etc/ssh/sshd_config").exists());
        for d in ["var", "dev", "proc", "sys", "run", "tmp", "boot", "sysroot"] {
            assert_eq!(
                fs::read_dir(r.join(d)).unwrap().count(),
                0,
                "/{d} must be empty"
            );
        }
        assert_eq!(
            fs::metadata(r.join("tmp")).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
        assert_eq!(
            fs::read_to_string(r.join("usr/lib/sysimage/dpkg/status")).unwrap(),
            "Package: x\n"
        );
        let conf = fs::read_to_string(r.join("usr/lib/tmpfiles.d/keel-var.conf")).unwrap();
        for want in [
            "L /var/lib/dpkg - - - - ../../usr/lib/sysimage/dpkg",
            "C /var/roothome/.bashrc - - - - /usr/share/factory/var/roothome/.bashrc",
            "d /var/usrlocal/bin 0755",
            "d /var/log/apt 0755",
            "d /var/home 0755",
        ] {
            assert!(conf.contains(want), "{want:?} missing from\n{conf}");
        }
        assert!(
            !conf.contains("history.log") && !conf.contains("pkgcache"),
            "{conf}"
        );
        assert_eq!(conf.lines().count(), entries.len() + 1);
    }

    #[test]
    fn apply_refuses_an_existing_usr_etc() {
        let t = synthetic();
        fs::create_dir_all(t.path().join("usr/etc")).unwrap();
        assert!(matches!(apply(t.path()), Err(LayoutError::UsrEtcExists)));
    }
}
