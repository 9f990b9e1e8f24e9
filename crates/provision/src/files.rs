//! Files, directories and links of `storage`, written into the target root.
//!
//! Order: directories (shallowest first), then files in parallel (each fetched and written to a
//! temp file with its owner and mode), then all files at once made durable (`syncfs`), renamed
//! into place and the renames made durable (see `keel_utils::batch`), then symbolic links, then
//! hard links.
//! Missing parent directories are created 0755 root:root.
//!
//! Re-running the same config on the same root is idempotent (`tests/KNOWN-DIFFERENCES.md`):
//! a file with `overwrite: false` whose current content is exactly what the config would write
//! is accepted, and `append` fragments are skipped when the file already ends with them.

use crate::error::{AtPath, OpError};
use crate::resource::Fetcher;
use crate::rootfs::{self, Accounts};
use anyhow::{bail, Context, Result};
use keel_ignition_config::types::{Directory, File, Link, NodeGroup, NodeUser, Storage};
use keel_utils::batch::Batch;
use rayon::prelude::*;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the files part of a run did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub files: usize,
    pub directories: usize,
    pub links: usize,
}

/// Applies directories, files and links of `storage` under `root`.
pub fn apply(
    root: &Path,
    storage: &Storage,
    fetcher: &Fetcher,
    accounts: &Accounts,
) -> Result<Counts, OpError> {
    let mut dirs: Vec<(usize, &Directory)> = storage.directories.iter().enumerate().collect();
    dirs.sort_by_key(|(_, d)| depth(d.path.as_deref()));
    for (i, d) in &dirs {
        let path = d.path.as_deref().unwrap_or_default();
        directory(root, d, accounts).at(
            format!("$.storage.directories.{i}"),
            format!("creating directory {path:?}"),
        )?;
    }
    let batch = Batch::new();
    let known_dirs = Mutex::new(HashSet::new());
    storage
        .files
        .par_iter()
        .enumerate()
        .try_for_each(|(i, f)| {
            let path = f.path.as_deref().unwrap_or_default();
            file(root, f, fetcher, accounts, &batch, &known_dirs).at(
                format!("$.storage.files.{i}"),
                format!("writing file {path:?}"),
            )
        })?;
    let staged = batch.len();
    batch
        .commit(root)
        .with_context(|| format!("making {staged} files durable under {}", root.display()))
        .at("$.storage.files", "writing files")?;
    let (hard, soft): (Vec<_>, Vec<_>) = storage
        .links
        .iter()
        .enumerate()
        .partition(|(_, l)| l.hard == Some(true));
    for (i, l) in soft.into_iter().chain(hard) {
        let path = l.path.as_deref().unwrap_or_default();
        link(root, l, accounts).at(
            format!("$.storage.links.{i}"),
            format!("creating link {path:?}"),
        )?;
    }
    Ok(Counts {
        files: storage.files.len(),
        directories: storage.directories.len(),
        links: storage.links.len(),
    })
}

fn depth(path: Option<&str>) -> usize {
    path.unwrap_or_default().matches('/').count()
}

/// Numeric owner for a node: `id`, else `name` looked up in the root; unset means root (0).
pub fn owner(
    user: Option<&NodeUser>,
    group: Option<&NodeGroup>,
    accounts: &Accounts,
) -> Result<(u32, u32)> {
    let uid = match user {
        Some(NodeUser { id: Some(id), .. }) => *id as u32,
        Some(NodeUser { name: Some(n), .. }) if !n.is_empty() => accounts
            .uid(n)
            .with_context(|| format!("no such user {n:?} in the target root's /etc/passwd"))?,
        _ => 0,
    };
    let gid = match group {
        Some(NodeGroup { id: Some(id), .. }) => *id as u32,
        Some(NodeGroup { name: Some(n), .. }) if !n.is_empty() => accounts
            .gid(n)
            .with_context(|| format!("no such group {n:?} in the target root's /etc/group"))?,
        _ => 0,
    };
    Ok((uid, gid))
}

/// Creates the missing parents of `host` (0755, root).
fn parents(host: &Path) -> Result<()> {
    if let Some(parent) = host.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .create(parent)
            .with_context(|| format!("creating parent directories {}", parent.display()))?;
    }
    Ok(())
}

/// [`parents`], skipping directories this run already created or found.
fn parents_once(host: &Path, known: &Mutex<HashSet<PathBuf>>) -> Result<()> {
    let Some(parent) = host.parent() else {
        return Ok(());
    };
    if known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(parent)
    {
        return Ok(());
    }
    parents(host)?;
    known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(parent.to_path_buf());
    Ok(())
}

/// Sets owner, then mode (in that order: chown clears setuid/setgid).
fn set_owner_mode(host: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
    std::os::unix::fs::chown(host, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", host.display()))?;
    fs::set_permissions(host, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", host.display()))
}

fn directory(root: &Path, d: &Directory, accounts: &Accounts) -> Result<()> {
    let host = rootfs::resolve(root, d.path.as_deref().unwrap_or_default())?;
    let (uid, gid) = owner(d.user.as_ref(), d.group.as_ref(), accounts)?;
    match fs::symlink_metadata(&host) {
        Ok(m) if m.is_dir() => {}
        Ok(_) if d.overwrite == Some(true) => {
            fs::remove_file(&host).with_context(|| format!("removing {}", host.display()))?;
            parents(&host)?;
            fs::create_dir(&host).with_context(|| format!("mkdir {}", host.display()))?;
        }
        Ok(_) => bail!("a non-directory exists there already and overwrite is false"),
        Err(_) => {
            parents(&host)?;
            fs::create_dir(&host).with_context(|| format!("mkdir {}", host.display()))?;
        }
    }
    set_owner_mode(&host, uid, gid, d.mode_or_default())
}

fn file(
    root: &Path,
    f: &File,
    fetcher: &Fetcher,
    accounts: &Accounts,
    batch: &Batch,
    known_dirs: &Mutex<HashSet<PathBuf>>,
) -> Result<()> {
    let host = rootfs::resolve(root, f.path.as_deref().unwrap_or_default())?;
    let (uid, gid) = owner(f.user.as_ref(), f.group.as_ref(), accounts)?;
    let mode = f.mode_or_default();
    let contents = match f.contents.as_ref().filter(|c| c.source.is_some()) {
        Some(c) => Some(fetcher.fetch(c).context("fetching contents")?),
        None => None,
    };
    let fragments: Vec<u8> = f
        .append
        .iter()
        .enumerate()
        .map(|(j, a)| {
            fetcher
                .fetch(a)
                .with_context(|| format!("fetching append.{j}"))
        })
        .collect::<Result<Vec<_>>>()?
        .concat();
    let existing = fs::symlink_metadata(&host).ok();
    let existing_data = || fs::read(&host).with_context(|| format!("reading {}", host.display()));
    let data = match (existing, contents) {
        (Some(m), _) if !m.is_file() && f.overwrite != Some(true) => {
            bail!("a non-file exists there already and overwrite is false")
        }
        (Some(m), contents) if !m.is_file() => {
            remove_any(&host, &m)?;
            [contents.unwrap_or_default(), fragments].concat()
        }
        (None, contents) => [contents.unwrap_or_default(), fragments].concat(),
        (Some(_), Some(contents)) if f.overwrite == Some(true) => [contents, fragments].concat(),
        (Some(_), Some(contents)) => {
            let want = [contents, fragments].concat();
            if existing_data()? != want {
                bail!("a file exists there already with other contents and overwrite is false");
            }
            return set_owner_mode(&host, uid, gid, mode);
        }
        (Some(_), None) => {
            let old = existing_data()?;
            if old.ends_with(&fragments) {
                return set_owner_mode(&host, uid, gid, mode);
            }
            [old, fragments].concat()
        }
    };
    parents_once(&host, known_dirs)?;
    batch
        .stage(&host, mode, rootfs::owned_content(&data, uid, gid))
        .with_context(|| format!("writing {}", host.display()))
}

fn remove_any(host: &Path, m: &fs::Metadata) -> Result<()> {
    if m.is_dir() {
        fs::remove_dir_all(host)
    } else {
        fs::remove_file(host)
    }
    .with_context(|| format!("removing {}", host.display()))
}

fn link(root: &Path, l: &Link, accounts: &Accounts) -> Result<()> {
    let path = l.path.as_deref().unwrap_or_default();
    let host = rootfs::resolve(root, path)?;
    let target = l.target.as_deref().unwrap_or_default();
    let hard = l.hard == Some(true);
    let hard_target = if hard {
        Some(rootfs::resolve(root, target)?)
    } else {
        None
    };
    if let Ok(m) = fs::symlink_metadata(&host) {
        let same = match &hard_target {
            Some(t) => {
                fs::symlink_metadata(t).is_ok_and(|tm| tm.ino() == m.ino() && tm.dev() == m.dev())
            }
            None => {
                m.file_type().is_symlink()
                    && fs::read_link(&host).is_ok_and(|t| t == Path::new(target))
            }
        };
        if !same {
            if l.overwrite != Some(true) {
                bail!("a non-link or a link with another target exists there already and overwrite is false");
            }
            remove_any(&host, &m)?;
        } else if hard {
            return Ok(());
        } else {
            return lchown(&host, l, accounts);
        }
    }
    parents(&host)?;
    match hard_target {
        Some(t) => fs::hard_link(&t, &host)
            .with_context(|| format!("hard link {} -> {}", host.display(), t.display())),
        None => {
            std::os::unix::fs::symlink(target, &host)
                .with_context(|| format!("symlink {} -> {target}", host.display()))?;
            lchown(&host, l, accounts)
        }
    }
}

fn lchown(host: &Path, l: &Link, accounts: &Accounts) -> Result<()> {
    let (uid, gid) = owner(l.user.as_ref(), l.group.as_ref(), accounts)?;
    std::os::unix::fs::lchown(host, Some(uid), Some(gid))
        .with_context(|| format!("lchown {uid}:{gid} {}", host.display()))
}
