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

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Links followed while creating one directory path, as the kernel's limit.
const MAX_LINKS: usize = 40;
/// Retries of a resolution the kernel refused with `EAGAIN` (a rename raced with it).
const RESOLVE_TRIES: usize = 16;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The target root, held open: the anchor of every path resolution.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// A directory inside the root, opened by a resolution beneath it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Its path inside the root (`/etc/systemd/system`), for messages.
    path: String,
    /// The root's path on the host, for messages.
    root: PathBuf,
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

/// Files written to temp siblings and all renamed into place at once on [`Batch::commit`]:
/// two `syncfs` calls instead of an fsync per file; a reader (or a reboot) sees each target
/// either old or complete. May be filled from several threads. Temp files of a batch dropped
/// without commit are removed.
pub struct Batch<'r> {
    root: &'r Root,
    /// (parent directory in the root, temp name, target name)
    staged: Mutex<Vec<(String, String, String)>>,
}

impl<'r> Batch<'r> {
    pub fn new(root: &'r Root) -> Batch<'r> {
        Batch {
            root,
            staged: Mutex::new(Vec::new()),
        }
    }

    /// Writes what `fill` produces to a temp file next to `path` (parents created), with
    /// permission bits `mode` set after `fill` ran.
    pub fn stage(
        &self,
        path: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
        let (dir, name) = self.root.parent(path)?;
        self.stage_in(&dir, name, mode, fill)
    }

    /// [`Batch::stage`] in a directory already open.
    pub fn stage_in(
        &self,
        dir: &Dir,
        name: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
        let (tmp, _file) = dir.fill_temp(name, mode, fill)?;
        self.adopt(dir, tmp, name);
        Ok(())
    }

    /// Takes a temp file made by [`Dir::fill_temp`] into the batch, to be renamed to `name`.
    pub fn adopt(&self, dir: &Dir, tmp: String, name: &str) {
        self.lock().push((dir.path.clone(), tmp, name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, String, String)>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of staged files.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the staged data durable, renames every temp file over its target, and makes the
    /// renames durable.
    pub fn commit(self) -> Result<()> {
        let staged = std::mem::take(&mut *self.lock());
        if staged.is_empty() {
            return Ok(());
        }
        let result = (|| -> Result<()> {
            self.root.sync()?;
            for (i, (parent, tmp, name)) in staged.iter().enumerate() {
                let renamed = self
                    .root
                    .find_dir(parent)
                    .and_then(|d| d.with_context(|| format!("{parent:?} disappeared")))
                    .and_then(|d| d.rename(tmp, name));
                if let Err(e) = renamed {
                    remove_temps(self.root, &staged[i..]);
                    return Err(e);
                }
            }
            self.root.sync()
        })();
        result
    }
}

fn remove_temps(root: &Root, staged: &[(String, String, String)]) {
    for (parent, tmp, _) in staged {
        if let Ok(Some(d)) = root.find_dir(parent) {
            let _ = d.remove_file(tmp);
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let staged = std::mem::take(&mut *self.lock());
        remove_temps(self.root, &staged);
    }
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

    #[test]
    fn names_that_are_not_one_element_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(split("/etc/..").is_err());
        assert_eq!(split("/etc/x").unwrap(), ("/etc", "x"));
        assert_eq!(split("/x").unwrap(), ("/", "x"));
    }

    #[test]
    fn batch_renames_on_commit_and_cleans_up_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        let b = Batch::new(&root);
        b.stage("/a/b", 0o600, |f| {
            std::io::Write::write_all(f, b"x").map_err(Into::into)
        })
        .unwrap();
        assert!(!d.path().join("a/b").exists());
        b.commit().unwrap();
        assert_eq!(std::fs::read(d.path().join("a/b")).unwrap(), b"x");
        let b = Batch::new(&root);
        b.stage("/a/c", 0o600, |_| Ok(())).unwrap();
        drop(b);
        assert_eq!(std::fs::read_dir(d.path().join("a")).unwrap().count(), 1);
    }
}
