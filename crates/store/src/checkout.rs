//! Checking out a commit into a directory: hardlinks from bare repositories, copies otherwise,
//! files in parallel; directory metadata applied after their contents, deepest first.

use crate::checksum::Checksum;
use crate::commit::pool;
use crate::error::{IoPath, StoreError};
use crate::objects::{DirMeta, DirTree, FileHeader, ObjectType, S_IFLNK, S_IFMT};
use crate::repo::{Repo, RepoMode};
use crate::treepath::TreeNode;
use crate::txn::zero_link_times;
use crate::xattrs;
use rayon::prelude::*;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Options for [`Repo::checkout`].
#[derive(Debug, Clone, Default)]
pub struct CheckoutOptions {
    /// Do not apply ownership or xattrs; strip setuid/setgid (like `ostree checkout -U`). From a
    /// bare repository this copies, since the objects carry their real owners and modes.
    pub user_mode: bool,
    /// Always copy content instead of hardlinking repository objects.
    pub copy: bool,
    /// Check out only this directory of the commit (e.g. `/usr/etc`).
    pub subpath: Option<String>,
}

struct Ctx<'a> {
    repo: &'a Repo,
    opts: &'a CheckoutOptions,
    objects: OwnedFd,
}

impl Repo {
    /// Check out commit `rev` into `dest`, which must not exist yet.
    pub fn checkout(
        &self,
        rev: &Checksum,
        dest: &Path,
        opts: &CheckoutOptions,
    ) -> Result<(), StoreError> {
        if fs::symlink_metadata(dest).is_ok() {
            return Err(StoreError::Invalid(format!(
                "{}: destination already exists; choose a new directory",
                dest.display()
            )));
        }
        let commit = self.read_commit(rev)?;
        let sub = opts.subpath.as_deref().unwrap_or("/");
        let Some(TreeNode::Dir { tree, meta }) =
            self.resolve_in_tree(commit.root_tree, commit.root_meta, sub)?
        else {
            return Err(StoreError::PathNotFound {
                path: sub.to_string(),
                commit: *rev,
            });
        };
        let objects_dir = self.path().join("objects");
        let objects = open_dir_path(&objects_dir)?;
        let ctx = Ctx {
            repo: self,
            opts,
            objects,
        };
        pool()?.install(|| ctx.dir(&tree, &meta, dest))
    }

    /// Read and parse a dirtree object.
    pub fn read_dirtree(&self, c: &Checksum) -> Result<DirTree, StoreError> {
        let b = self.load_metadata_bytes(ObjectType::DirTree, c)?;
        DirTree::parse(&b).map_err(|e| StoreError::corrupt(ObjectType::DirTree, *c, e))
    }

    /// Read and parse a dirmeta object.
    pub fn read_dirmeta(&self, c: &Checksum) -> Result<DirMeta, StoreError> {
        let b = self.load_metadata_bytes(ObjectType::DirMeta, c)?;
        DirMeta::parse(&b).map_err(|e| StoreError::corrupt(ObjectType::DirMeta, *c, e))
    }
}

/// An `O_PATH` descriptor of a directory, for `*at` calls that skip re-walking long paths.
fn open_dir_path(dir: &Path) -> Result<OwnedFd, StoreError> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at(dir)
}

/// Hardlink an object; false when the filesystem cannot (other device, too many links).
fn try_link(
    from_dir: &OwnedFd,
    from: &str,
    to_dir: &OwnedFd,
    to: &str,
    dest: &Path,
) -> Result<bool, StoreError> {
    match rustix::fs::linkat(from_dir, from, to_dir, to, rustix::fs::AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::XDEV | rustix::io::Errno::MLINK) => Ok(false),
        Err(e) => Err(e).at(dest),
    }
}

impl Ctx<'_> {
    fn dir(&self, tree: &Checksum, meta: &Checksum, dest: &Path) -> Result<(), StoreError> {
        let t = self.repo.read_dirtree(tree)?;
        let m = self.repo.read_dirmeta(meta)?;
        fs::DirBuilder::new().mode(0o700).create(dest).at(dest)?;
        let dest_fd = open_dir_path(dest)?;
        let (files, dirs) = rayon::join(
            || {
                t.files
                    .par_iter()
                    .try_for_each(|(name, c)| self.file(c, &dest_fd, name, &dest.join(name)))
            },
            || {
                t.dirs
                    .par_iter()
                    .try_for_each(|(name, dt, dm)| self.dir(dt, dm, &dest.join(name)))
            },
        );
        files?;
        dirs?;
        if !self.opts.user_mode {
            std::os::unix::fs::lchown(dest, Some(m.uid), Some(m.gid)).at(dest)?;
            xattrs::set_path(dest, &m.xattrs)?;
        }
        fs::set_permissions(dest, fs::Permissions::from_mode(m.mode & 0o7777)).at(dest)
    }

    /// Permission bits for a checked-out regular file. User mode drops setuid/setgid and makes
    /// the file readable by its owner; directories keep their bits (both like `ostree -U`).
    fn perm(&self, mode: u32) -> u32 {
        if self.opts.user_mode {
            (mode & 0o1777) | 0o400
        } else {
            mode & 0o7777
        }
    }

    fn file(&self, c: &Checksum, dir: &OwnedFd, name: &str, dest: &Path) -> Result<(), StoreError> {
        let mode = self.repo.mode();
        let can_link = !self.opts.copy
            && match mode {
                RepoMode::Bare => !self.opts.user_mode,
                RepoMode::BareUserOnly => true,
                RepoMode::BareUser => self.opts.user_mode,
                RepoMode::Archive => false,
            };
        // Like OSTree, empty files are always copied: they are often modified in place (lock
        // files). In bare and bare-user-only repositories the object's own lstat tells what it is.
        let hex = c.to_hex();
        let rel = format!(
            "{}/{}.{}",
            &hex[..2],
            &hex[2..],
            ObjectType::File.extension(false)
        );
        if can_link && mode != RepoMode::BareUser {
            let st = match rustix::fs::statat(
                &self.objects,
                &rel,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => {
                    return Err(StoreError::MissingObject {
                        kind: ObjectType::File,
                        checksum: *c,
                    })
                }
                Err(e) => return Err(e).at(&self.repo.object_path(ObjectType::File, c)),
            };
            let symlink = st.st_mode & S_IFMT == S_IFLNK;
            if (st.st_size != 0 || symlink) && try_link(&self.objects, &rel, dir, name, dest)? {
                return Ok(());
            }
        }
        let mut obj = self.repo.open_content(c)?;
        if can_link
            && mode == RepoMode::BareUser
            && !obj.header.is_symlink()
            && obj.size != 0
            && try_link(&self.objects, &rel, dir, name, dest)?
        {
            return Ok(());
        }
        let h: &FileHeader = &obj.header;
        if h.is_symlink() {
            std::os::unix::fs::symlink(&h.symlink_target, dest).at(dest)?;
            if !self.opts.user_mode {
                std::os::unix::fs::lchown(dest, Some(h.uid), Some(h.gid)).at(dest)?;
                xattrs::set_path(dest, &h.xattrs)?;
            }
            return zero_link_times(dest);
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .at(dest)?;
        io::copy(&mut obj.content, &mut out).at(dest)?;
        if !self.opts.user_mode {
            std::os::unix::fs::fchown(&out, Some(h.uid), Some(h.gid)).at(dest)?;
        }
        out.set_permissions(fs::Permissions::from_mode(self.perm(h.mode)))
            .at(dest)?;
        if !self.opts.user_mode {
            xattrs::set_fd(&out, dest, &h.xattrs)?;
        }
        Ok(())
    }
}
