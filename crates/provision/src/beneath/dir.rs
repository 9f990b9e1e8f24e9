//! [`Dir`]: a directory opened beneath the root, and what is done to one name in it (`*at`
//! calls on its descriptor; the name itself is never followed).

use super::check_name;
use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory inside the root, opened by a resolution beneath it.
#[derive(Debug)]
pub struct Dir {
    pub(super) fd: OwnedFd,
    /// Its path inside the root (`/etc/systemd/system`), for messages.
    pub(super) path: String,
    /// The root's path on the host, for messages.
    pub(super) root: PathBuf,
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Dir {
    /// Its path inside the root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `"PATH/name" in ROOT`, for messages.
    pub fn show(&self, name: &str) -> String {
        let p = match (self.path.as_str(), name) {
            (p, ".") => p.to_string(),
            ("/", n) => format!("/{n}"),
            (p, n) => format!("{p}/{n}"),
        };
        format!("{p:?} in {}", self.root.display())
    }

    /// What `name` is (a symbolic link is not followed), None when it does not exist.
    pub fn stat(&self, name: &str) -> Result<Option<rustix::fs::Stat>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting {}", self.show(name))),
        }
    }

    /// The target of the symbolic link `name`, None when it is not a link.
    pub fn read_link(&self, name: &str) -> Option<PathBuf> {
        rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .ok()
            .map(|t| PathBuf::from(OsStr::from_bytes(t.as_bytes())))
    }

    /// Opens `name` itself for reading (a link is refused, a FIFO does not block) and says
    /// what kind of file it is.
    fn open_nofollow(&self, name: &str) -> Result<(OwnedFd, FileType)> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", self.show(name)))?;
        let kind = FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
        Ok((fd, kind))
    }

    /// Opens the regular file `name` for reading (never through a link).
    pub fn open_file(&self, name: &str) -> Result<File> {
        match self.open_nofollow(name)? {
            (fd, FileType::RegularFile) => Ok(File::from(fd)),
            _ => bail!("{} is not a regular file", self.show(name)),
        }
    }

    /// Creates the directory `name`; one that exists already is fine.
    pub fn mkdir(&self, name: &str, mode: u32) -> Result<()> {
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("creating directory {}", self.show(name))),
        }
    }

    /// Sets the owner, then the mode (chown clears set-id bits) of the regular file or
    /// directory `name`, never through a link.
    pub fn set_owner_mode(&self, name: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        let (fd, kind) = self.open_nofollow(name)?;
        if !matches!(kind, FileType::RegularFile | FileType::Directory) {
            bail!(
                "{} is neither a file nor a directory; not changing its owner",
                self.show(name)
            );
        }
        set_owner_mode_fd(&fd, uid, gid, mode).with_context(|| self.show(name))
    }

    /// Sets the owner of `name` itself (a link is not followed).
    pub fn lchown(&self, name: &str, uid: u32, gid: u32) -> Result<()> {
        rustix::fs::chownat(
            &self.fd,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("chown {uid}:{gid} {}", self.show(name)))
    }

    /// The subdirectory `name` itself (a link there is refused, not followed), None when
    /// missing.
    pub fn subdir(&self, name: &str) -> Result<Option<Dir>> {
        check_name(name)?;
        match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.child(name),
                root: self.root.clone(),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening directory {}", self.show(name))),
        }
    }

    fn child(&self, name: &str) -> String {
        if self.path == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.path)
        }
    }

    /// Creates a temp file next to `name`, lets `fill` write it, then sets permission bits
    /// `mode`. Returns the temp name and the open file; on failure the temp file is removed.
    pub fn fill_temp(
        &self,
        name: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<(String, File)> {
        check_name(name)?;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let short: String = name.chars().take(64).collect();
        let tmp = format!(".{short}.tmp-{}-{n}", std::process::id());
        let fd = rustix::fs::openat(
            &self.fd,
            tmp.as_str(),
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .with_context(|| format!("creating {}", self.show(&tmp)))?;
        let mut f = File::from(fd);
        let filled = fill(&mut f).and_then(|()| {
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))
                .with_context(|| format!("chmod {mode:o} {}", self.show(&tmp)))
        });
        match filled {
            Ok(()) => Ok((tmp, f)),
            Err(e) => {
                let _ = self.remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Renames `from` over `to`, both in this directory.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .with_context(|| format!("renaming {} to {to:?}", self.show(from)))
    }

    /// Creates the symbolic link `name` → `target` (the target is stored, not resolved).
    pub fn symlink(&self, target: &Path, name: &str) -> Result<()> {
        rustix::fs::symlinkat(target, &self.fd, name)
            .with_context(|| format!("symlink {} -> {}", self.show(name), target.display()))
    }

    /// Creates `name` as a hard link to `from_name` in `from` (a link there is linked itself).
    pub fn hard_link(&self, from: &Dir, from_name: &str, name: &str) -> Result<()> {
        rustix::fs::linkat(&from.fd, from_name, &self.fd, name, AtFlags::empty())
            .with_context(|| format!("hard link {} -> {}", self.show(name), from.show(from_name)))
    }

    /// Removes the non-directory `name`; a missing one is fine.
    pub fn remove_file(&self, name: &str) -> Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.show(name))),
        }
    }

    /// Removes the empty directory `name`; false when it is not empty or missing.
    pub fn remove_empty_dir(&self, name: &str) -> bool {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).is_ok()
    }

    /// Removes `name` whatever it is, a directory with everything in it (links inside are
    /// removed, never followed).
    pub fn remove_any(&self, name: &str) -> Result<()> {
        remove_tree(&self.fd, OsStr::new(name))
            .with_context(|| format!("removing {}", self.show(name)))
    }
}

/// Removes `name` in `dir` and, for a directory, everything in it; names are taken as bytes
/// (not only UTF-8), links are removed and never followed, and directories are opened with
/// `O_NOFOLLOW`, so a swap for a link cannot redirect the removal.
fn remove_tree(dir: &OwnedFd, name: &OsStr) -> Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&sub)? {
        let entry = entry?;
        let n = OsStr::from_bytes(entry.file_name().to_bytes());
        if n != "." && n != ".." {
            names.push(n.to_os_string());
        }
    }
    for n in &names {
        remove_tree(&sub, n).with_context(|| format!("removing {:?}", n))?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// fchown, then fchmod, on an open file or directory.
pub fn set_owner_mode_fd(fd: impl AsFd, uid: u32, gid: u32, mode: u32) -> Result<()> {
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .with_context(|| format!("chown {uid}:{gid}"))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).with_context(|| format!("chmod {mode:o}"))
}

#[cfg(test)]
mod tests {
    use super::super::Root;
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn removing_a_tree_never_follows_links_in_it() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("t/a");
        std::fs::create_dir_all(&tree).unwrap();
        symlink(outside.path(), tree.join("out")).unwrap();
        std::fs::write(tree.join(OsStr::from_bytes(b"\xff")), "").unwrap();
        let root = Root::open(d.path()).unwrap();
        root.find_dir("/")
            .unwrap()
            .unwrap()
            .remove_any("t")
            .unwrap();
        assert!(!d.path().join("t").exists());
        assert!(outside.path().join("keep").exists());
    }
}
