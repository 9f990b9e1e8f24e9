//! The one way provisioning touches the target root: every path is resolved by the kernel as
//! if the root were `/` (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`), so `..`
//! and symbolic links (absolute or relative, already in the root or created by the config)
//! never lead outside it. What is then created, linked, renamed, chowned, chmodded or removed
//! is one name in a directory opened that way (`*at` calls on the directory's descriptor),
//! and that last name is never followed.
//!
//! Every stage that writes under the root (files, directories, links, units, drop-ins, masks,
//! presets, enablement links, SSH keys, crypttab, mount points, the result file) goes through
//! [`Root`], [`Dir`] and [`Batch`]; nothing in the provisioning code joins a config path onto
//! the root path.

mod batch;
mod dir;

pub use batch::Batch;
pub use dir::{set_owner_mode_fd, Dir};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Links followed while creating one directory path, as the kernel's limit.
const MAX_LINKS: usize = 40;
/// Retries of a resolution the kernel refused with `EAGAIN` (a rename raced with it).
const RESOLVE_TRIES: usize = 16;

/// The target root, held open: the anchor of every path resolution.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// Splits a config path (`/etc/x`) into its parent (`/etc`) and last name (`x`); the name
/// must be one ordinary path element.
pub fn split(path: &str) -> Result<(&str, &str)> {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    check_name(name).with_context(|| format!("path {path:?}"))?;
    Ok((if parent.is_empty() { "/" } else { parent }, name))
}

/// Refuses a name that is not one ordinary path element (empty, `.`, `..`, or with a `/` or
/// NUL in it).
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        bail!("{name:?} is not a single file name (it is empty, \".\", \"..\" or has a \"/\")");
    }
    Ok(())
}

/// The elements of a path, without empty ones and `.`.
fn elements(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(str::to_string)
}

fn relative(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        rest => rest,
    }
}

impl Root {
    /// Opens the root directory `path` (created when missing: it is the caller's own path).
    pub fn open(path: &Path) -> Result<Root> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating the target root {}", path.display()))?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening the target root {}", path.display()))?;
        let root = Root {
            fd,
            path: path.to_path_buf(),
        };
        if let Err(Errno::NOSYS) = root.resolve("/", OFlags::PATH) {
            bail!("this kernel has no openat2 (Linux 5.6 or newer is needed to write beneath the root {} safely)", path.display());
        }
        Ok(root)
    }

    /// The root's path on the host (for tools that take `--root` and chroot into it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `"PATH" in ROOT`, for messages.
    pub fn show(&self, path: &str) -> String {
        format!("{path:?} in {}", self.path.display())
    }

    fn resolve(&self, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                relative(path),
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                how,
            ) {
                Err(Errno::AGAIN) if tries < RESOLVE_TRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// The directory at `path` (symlinks followed inside the root), or None when it does not
    /// exist.
    pub fn find_dir(&self, path: &str) -> Result<Option<Dir>> {
        match self.resolve(path, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => Ok(Some(self.dir_of(fd, path))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening directory {}", self.show(path))),
        }
    }

    /// The directory at `path`, created with its missing parents (0755, owned by the caller),
    /// like `mkdir -p` with the root as `/`: a link on the way is followed inside the root,
    /// and a link to a missing directory gets that directory created (`/home` → `/var/home`
    /// before `/var/home` exists).
    pub fn dir(&self, path: &str) -> Result<Dir> {
        if let Some(d) = self.find_dir(path)? {
            return Ok(d);
        }
        let top = || {
            self.find_dir("/")?
                .with_context(|| format!("the target root {} is gone", self.path.display()))
        };
        let mut todo: Vec<String> = elements(path).rev().collect();
        let mut cur = top()?;
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                let up = cur.path.rsplit_once('/').map_or("/", |(p, _)| p);
                cur = self
                    .find_dir(if up.is_empty() { "/" } else { up })?
                    .with_context(|| format!("{} is gone", self.show(up)))?;
                continue;
            }
            match cur.stat(&name)? {
                Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        bail!("too many levels of symbolic links in {}", self.show(path));
                    }
                    let target = cur.read_link(&name).unwrap_or_default();
                    if target.is_absolute() {
                        cur = top()?;
                    }
                    todo.extend(elements(&target.to_string_lossy()).rev());
                    continue;
                }
                Some(_) => {}
                None => cur.mkdir(&name, 0o755)?,
            }
            cur = cur
                .subdir(&name)?
                .with_context(|| format!("{} is not a directory", cur.show(&name)))?;
        }
        Ok(cur)
    }

    /// The parent directory of `path` (created when missing) and the last name.
    pub fn parent<'p>(&self, path: &'p str) -> Result<(Dir, &'p str)> {
        let (parent, name) = split(path)?;
        let dir = self
            .dir(parent)
            .with_context(|| format!("creating parent directories of {}", self.show(path)))?;
        Ok((dir, name))
    }

    /// The parent directory of `path` if it exists, and the last name.
    pub fn find_parent<'p>(&self, path: &'p str) -> Result<Option<(Dir, &'p str)>> {
        let (parent, name) = split(path)?;
        Ok(self.find_dir(parent)?.map(|d| (d, name)))
    }

    fn dir_of(&self, fd: OwnedFd, path: &str) -> Dir {
        Dir {
            fd,
            path: path.to_string(),
            root: self.path.clone(),
        }
    }

    /// The contents of the file at `path` (symlinks followed inside the root), None when it
    /// does not exist. Only regular files are read (never a FIFO or device node).
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let fd = match self.resolve(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", self.show(path))),
        };
        read_regular(fd).with_context(|| format!("reading {}", self.show(path)))
    }

    /// The host path of a directory opened beneath the root (for `mount`, which takes a path;
    /// it has no symbolic links left in it).
    pub fn host_path(&self, dir: &Dir) -> Result<PathBuf> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&dir.fd);
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .with_context(|| format!("finding where {} is", self.show(&dir.path)))
    }

    /// Makes everything written on the root's filesystem durable.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::syncfs(&self.fd)
            .with_context(|| format!("syncing the filesystem of {}", self.path.display()))
    }

    /// Replaces the file at `path` with `data` crash-safely (temp file, fsync, rename, fsync of
    /// the directory); missing parents are created.
    pub fn write_atomic(&self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        self.write_atomic_with(path, mode, |f| {
            std::io::Write::write_all(f, data).map_err(Into::into)
        })
    }

    /// [`Root::write_atomic`] with what `fill` writes (it may chown the file first).
    pub fn write_atomic_with(
        &self,
        path: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
        let (dir, name) = self.parent(path)?;
        let (tmp, f) = dir.fill_temp(name, mode, fill)?;
        let done = (|| -> Result<()> {
            f.sync_all()
                .with_context(|| format!("syncing {}", dir.show(&tmp)))?;
            dir.rename(&tmp, name)?;
            rustix::fs::fsync(&dir.fd).with_context(|| format!("syncing {}", dir.show(".")))
        })();
        if done.is_err() {
            let _ = dir.remove_file(&tmp);
        }
        done
    }
}

/// Reads a regular file to its end; refuses other kinds of files.
fn read_regular(fd: OwnedFd) -> Result<Option<Vec<u8>>> {
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        bail!("not a regular file");
    }
    let mut data = Vec::new();
    File::from(fd).read_to_end(&mut data)?;
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/etc")).unwrap();
        std::fs::create_dir_all(r.join("var/home")).unwrap();
        symlink("/var/home", r.join("home")).unwrap();
        symlink("../usr/etc", r.join("etc2")).unwrap();
        symlink("/../../..", r.join("escape")).unwrap();
        symlink(outside.path(), r.join("abs")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let root = Root::open(r).unwrap();
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("/a/b", Ok("a/b")),
            ("/home/core/x", Ok("var/home/core/x")),
            ("/etc2/hosts", Ok("usr/etc/hosts")),
            ("/escape/etc/passwd", Ok("etc/passwd")),
            ("/loop/x", Err("Too many levels")),
        ];
        for (path, want) in cases {
            let got = root.parent(path).map(|(dir, name)| {
                root.host_path(&dir)
                    .unwrap()
                    .join(name)
                    .strip_prefix(std::fs::canonicalize(r).unwrap())
                    .unwrap()
                    .to_path_buf()
            });
            match (got, want) {
                (Ok(got), Ok(w)) => assert_eq!(got, Path::new(w), "{path}"),
                (Err(e), Err(w)) => assert!(format!("{e:#}").contains(w), "{path}: {e:#}"),
                (got, w) => panic!("{path}: got {got:?}, want {w:?}"),
            }
        }
        let (dir, name) = root.parent("/abs/x").unwrap();
        dir.fill_temp(name, 0o644, |_| Ok(())).unwrap();
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(r.join(outside.path().strip_prefix("/").unwrap()).is_dir());
    }

    #[test]
    fn names_that_are_not_one_element_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(split("/etc/..").is_err());
        assert_eq!(split("/etc/x").unwrap(), ("/etc", "x"));
        assert_eq!(split("/x").unwrap(), ("/", "x"));
    }
}
