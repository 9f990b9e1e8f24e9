//! Files, directories and links of `storage`, written into the target root.
//!
//! Order: directories (shallowest first), then files in parallel (each fetched, decompressed
//! and hashed while it streams into a temp file with its owner and mode), then all files at
//! once made durable (`syncfs`), renamed into place and the renames made durable (see
//! [`crate::beneath::Batch`]), then symbolic links, then hard links. Every path is resolved
//! beneath the root ([`crate::beneath`]).
//! Missing parent directories are created 0755 root:root.
//!
//! Re-running the same config on the same root is idempotent (`tests/KNOWN-DIFFERENCES.md`):
//! a file with `overwrite: false` whose current content is exactly what the config would write
//! is accepted, and `append` fragments are skipped when the file already ends with them.

use crate::beneath::{Batch, Dir, Root};
use crate::error::{AtPath, OpError};
use crate::resource::{Fetcher, FileSink};
use crate::rootfs::Accounts;
use anyhow::{bail, Context, Result};
use keel_ignition_config::types::{Directory, File, Link, NodeGroup, NodeUser, Storage};
use rayon::prelude::*;
use rustix::fs::FileType;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What the files part of a run did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub files: usize,
    pub directories: usize,
    pub links: usize,
}

/// Applies directories, files and links of `storage` under `root`.
pub fn apply(
    root: &Root,
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
    let batch = Batch::new(root);
    storage
        .files
        .par_iter()
        .enumerate()
        .try_for_each(|(i, f)| {
            let path = f.path.as_deref().unwrap_or_default();
            file(root, f, fetcher, accounts, &batch).at(
                format!("$.storage.files.{i}"),
                format!("writing file {path:?}"),
            )
        })?;
    let staged = batch.len();
    batch
        .commit()
        .with_context(|| {
            format!(
                "making {staged} files durable under {}",
                root.path().display()
            )
        })
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
        Some(NodeUser { id: Some(id), .. }) => id_u32(*id, "user")?,
        Some(NodeUser { name: Some(n), .. }) if !n.is_empty() => accounts
            .uid(n)
            .with_context(|| format!("no such user {n:?} in the target root's /etc/passwd"))?,
        _ => 0,
    };
    let gid = match group {
        Some(NodeGroup { id: Some(id), .. }) => id_u32(*id, "group")?,
        Some(NodeGroup { name: Some(n), .. }) if !n.is_empty() => accounts
            .gid(n)
            .with_context(|| format!("no such group {n:?} in the target root's /etc/group"))?,
        _ => 0,
    };
    Ok((uid, gid))
}

/// A user or group id from a config: 0 to 2^32-2 (2^32-1 means "no change" to chown).
pub fn id_u32(id: i64, what: &str) -> Result<u32> {
    u32::try_from(id)
        .ok()
        .filter(|v| *v != u32::MAX)
        .with_context(|| format!("{what} id {id} is outside 0..=4294967294"))
}

fn kind(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn directory(root: &Root, d: &Directory, accounts: &Accounts) -> Result<()> {
    let (dir, name) = root.parent(d.path.as_deref().unwrap_or_default())?;
    let (uid, gid) = owner(d.user.as_ref(), d.group.as_ref(), accounts)?;
    match dir.stat(name)? {
        Some(st) if kind(&st) == FileType::Directory => {}
        Some(_) if d.overwrite == Some(true) => {
            dir.remove_any(name)?;
            dir.mkdir(name, 0o700)?;
        }
        Some(_) => bail!("a non-directory exists there already and overwrite is false"),
        None => dir.mkdir(name, 0o700)?,
    }
    dir.set_owner_mode(name, uid, gid, d.mode_or_default())
}

/// Writes one file: a temp file next to it gets the existing contents (when only appending),
/// the fetched contents and the appended fragments, streamed; it is then either staged in
/// `batch` or dropped when the existing file already holds exactly that.
fn file(
    root: &Root,
    f: &File,
    fetcher: &Fetcher,
    accounts: &Accounts,
    batch: &Batch,
) -> Result<()> {
    let (dir, name) = root.parent(f.path.as_deref().unwrap_or_default())?;
    let (uid, gid) = owner(f.user.as_ref(), f.group.as_ref(), accounts)?;
    let mode = f.mode_or_default();
    let contents = f.contents.as_ref().filter(|c| c.source.is_some());
    let existing = match dir.stat(name)? {
        Some(st) if kind(&st) == FileType::RegularFile => true,
        Some(_) if f.overwrite != Some(true) => {
            bail!("a non-file exists there already and overwrite is false")
        }
        Some(_) => {
            dir.remove_any(name)?;
            false
        }
        None => false,
    };
    let keep_old = existing && contents.is_none();
    let mut old_len = 0;
    let (tmp, out) = dir
        .fill_temp(name, mode, |out| {
            if keep_old {
                old_len = std::io::copy(&mut dir.open_file(name)?, out)
                    .with_context(|| format!("copying {}", dir.show(name)))?;
            }
            if let Some(c) = contents {
                fetcher
                    .fetch_to(c, &mut FileSink::new(out)?)
                    .context("fetching contents")?;
            }
            for (j, a) in f.append.iter().enumerate() {
                fetcher
                    .fetch_to(a, &mut FileSink::new(out)?)
                    .with_context(|| format!("fetching append.{j}"))?;
            }
            crate::beneath::set_owner_mode_fd(&*out, uid, gid, mode)
        })
        .with_context(|| format!("writing {}", dir.show(name)))?;
    let unchanged = match (existing, contents.is_some(), f.overwrite == Some(true)) {
        (false, _, _) | (true, true, true) => Ok(false),
        (true, true, false) => same_as_existing(&dir, name, &out).and_then(|same| {
            if same {
                Ok(true)
            } else {
                bail!("a file exists there already with other contents and overwrite is false")
            }
        }),
        (true, false, _) => already_appended(&out, old_len),
    };
    match unchanged {
        Ok(false) => {
            batch.adopt(&dir, tmp, name);
            Ok(())
        }
        Ok(true) => {
            dir.remove_file(&tmp)?;
            dir.set_owner_mode(name, uid, gid, mode)
        }
        Err(e) => {
            dir.remove_file(&tmp)?;
            Err(e)
        }
    }
}

/// Whether the file `name` holds exactly what the temp file `new` holds.
fn same_as_existing(dir: &Dir, name: &str, new: &std::fs::File) -> Result<bool> {
    let old = dir.open_file(name)?;
    let len = new.metadata()?.len();
    if old.metadata()?.len() != len {
        return Ok(false);
    }
    same_range(&old, 0, new, 0, len).with_context(|| format!("comparing with {}", dir.show(name)))
}

/// For append-only entries: whether the old contents (the first `old_len` bytes of `out`)
/// already end with the fragments (the rest of `out`), so a re-run adds nothing.
fn already_appended(out: &std::fs::File, old_len: u64) -> Result<bool> {
    let total = out.metadata()?.len();
    let added = total - old_len;
    Ok(added <= old_len && same_range(out, old_len - added, out, old_len, added)?)
}

/// Compares `len` bytes of `a` at `a_off` with `b` at `b_off`, a chunk at a time.
fn same_range(
    a: &std::fs::File,
    a_off: u64,
    b: &std::fs::File,
    b_off: u64,
    len: u64,
) -> Result<bool> {
    const CHUNK: u64 = 64 * 1024;
    let (mut x, mut y) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done) as usize;
        a.read_exact_at(&mut x[..n], a_off + done)?;
        b.read_exact_at(&mut y[..n], b_off + done)?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}

fn link(root: &Root, l: &Link, accounts: &Accounts) -> Result<()> {
    let (dir, name) = root.parent(l.path.as_deref().unwrap_or_default())?;
    let target = l.target.as_deref().unwrap_or_default();
    let hard = l.hard == Some(true);
    let hard_target = if hard {
        let (tdir, tname) = root
            .find_parent(target)?
            .with_context(|| format!("hard link target {} does not exist", root.show(target)))?;
        Some((tdir, tname))
    } else {
        None
    };
    if let Some(st) = dir.stat(name)? {
        let same = match &hard_target {
            Some((tdir, tname)) => tdir
                .stat(tname)?
                .is_some_and(|t| t.st_ino == st.st_ino && t.st_dev == st.st_dev),
            None => {
                kind(&st) == FileType::Symlink
                    && dir.read_link(name).is_some_and(|t| t == Path::new(target))
            }
        };
        if !same {
            if l.overwrite != Some(true) {
                bail!("a non-link or a link with another target exists there already and overwrite is false");
            }
            dir.remove_any(name)?;
        } else if hard {
            return Ok(());
        } else {
            return lchown(&dir, name, l, accounts);
        }
    }
    match hard_target {
        Some((tdir, tname)) => dir.hard_link(&tdir, tname, name),
        None => {
            dir.symlink(Path::new(target), name)?;
            lchown(&dir, name, l, accounts)
        }
    }
}

fn lchown(dir: &Dir, name: &str, l: &Link, accounts: &Accounts) -> Result<()> {
    let (uid, gid) = owner(l.user.as_ref(), l.group.as_ref(), accounts)?;
    dir.lchown(name, uid, gid)
}
