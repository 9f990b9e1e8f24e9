//! Verifying a repository: every object hashes to its name and parses, and every object
//! reachable from refs and commits exists. Staging leftovers under `tmp/` are not looked at.
//!
//! An object path is looked at (`lstat`) before it is opened: a FIFO, socket, device node or
//! directory where an object should be is reported as corrupt with its path and never opened,
//! so fsck cannot block on it (opening a FIFO for reading waits for a writer forever).

use crate::checksum::Checksum;
use crate::commit::pool;
use crate::error::StoreError;
use crate::gvariant::parse_dict;
use crate::objects::{Commit, DirMeta, DirTree, ObjectType};
use crate::repo::Repo;
use keel_utils::progress::Progress;
use rayon::prelude::*;
use std::collections::HashSet;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// One problem found by fsck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckError {
    /// Type of the bad or missing object.
    pub kind: ObjectType,
    /// Its checksum.
    pub checksum: Checksum,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FsckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.checksum, self.message)
    }
}

/// The result of [`Repo::fsck`].
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Objects verified.
    pub objects: u64,
    /// Commits whose trees were walked.
    pub commits: u64,
    /// Problems, sorted.
    pub errors: Vec<FsckError>,
}

/// How to name a file type in messages ("a FIFO", "a socket", …).
pub(crate) fn file_type_name(ft: FileType) -> &'static str {
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symlink"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "a special file"
    }
}

/// What `ft` is, when an object cannot be stored as it: objects are regular files, and content
/// objects of the bare modes may also be symlinks.
fn special_kind(ft: FileType, symlink_allowed: bool) -> Option<&'static str> {
    let fine = ft.is_file() || (symlink_allowed && ft.is_symlink());
    (!fine).then(|| file_type_name(ft))
}

/// Refuses an object path that is not a regular file (or an allowed symlink) without opening it.
fn check_file_type(repo: &Repo, t: ObjectType, c: &Checksum) -> Result<(), StoreError> {
    let path = repo.object_path(t, c);
    let md = match std::fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::MissingObject {
                kind: t,
                checksum: *c,
            })
        }
        Err(source) => return Err(StoreError::Io { path, source }),
    };
    let symlink_allowed = t == ObjectType::File && !repo.mode().is_archive();
    match special_kind(md.file_type(), symlink_allowed) {
        None => Ok(()),
        Some(kind) => Err(StoreError::Corrupt {
            kind: t,
            checksum: *c,
            reason: special_file_reason(kind, &path),
        }),
    }
}

fn special_file_reason(kind: &str, path: &Path) -> String {
    format!(
        "{} is {kind}, not an object file; remove it (`rm {}`) and pull or commit the object again",
        path.display(),
        path.display()
    )
}

fn verify(repo: &Repo, t: ObjectType, c: &Checksum) -> Result<(), StoreError> {
    check_file_type(repo, t, c)?;
    if t == ObjectType::File {
        return repo.verify_content(c);
    }
    let bytes = repo.load_metadata_bytes(t, c)?;
    let parsed = match t {
        ObjectType::Commit => Commit::parse(&bytes).map(drop),
        ObjectType::DirTree => DirTree::parse(&bytes).map(drop),
        ObjectType::DirMeta => DirMeta::parse(&bytes).map(drop),
        ObjectType::CommitMeta => parse_dict(&bytes).map(drop),
        ObjectType::CommitTombstone | ObjectType::File => Ok(()),
    };
    parsed.map_err(|e| StoreError::corrupt(t, *c, e))
}

fn to_error(t: ObjectType, c: &Checksum, e: StoreError) -> FsckError {
    let message = match e {
        StoreError::Corrupt { reason, .. } => format!("corrupt: {reason}"),
        StoreError::MissingObject { .. } => "missing".into(),
        other => other.to_string(),
    };
    FsckError {
        kind: t,
        checksum: *c,
        message,
    }
}

struct Walk<'a> {
    repo: &'a Repo,
    present: &'a HashSet<(ObjectType, Checksum)>,
    seen_trees: HashSet<Checksum>,
    errors: Vec<FsckError>,
}

impl Walk<'_> {
    fn need(&mut self, t: ObjectType, c: &Checksum, from: &str) -> bool {
        if self.present.contains(&(t, *c)) {
            return true;
        }
        self.errors.push(FsckError {
            kind: t,
            checksum: *c,
            message: format!("missing (referenced by {from})"),
        });
        false
    }

    fn tree(&mut self, tree: &Checksum, meta: &Checksum, from: &str) {
        self.need(ObjectType::DirMeta, meta, from);
        if !self.seen_trees.insert(*tree)
            || !self.need(ObjectType::DirTree, tree, from)
            || check_file_type(self.repo, ObjectType::DirTree, tree).is_err()
        {
            return;
        }
        let Ok(t) = self.repo.read_dirtree(tree) else {
            return;
        };
        let here = format!("dirtree {tree}");
        for (_, c) in &t.files {
            self.need(ObjectType::File, c, &here);
        }
        for (_, dt, dm) in &t.dirs {
            self.tree(dt, dm, &here);
        }
    }
}

impl Repo {
    /// Check every object and the reachability of every commit's tree. Problems are returned
    /// in the report; `Err` only for failures to read the repository itself.
    pub fn fsck(&self, progress: &Progress) -> Result<FsckReport, StoreError> {
        let objects = self.list_objects()?;
        progress.set_total(objects.len() as u64);
        let mut errors: Vec<FsckError> = pool()?.install(|| {
            objects
                .par_iter()
                .filter_map(|(t, c)| {
                    let r = verify(self, *t, c);
                    progress.inc(1, 0);
                    r.err().map(|e| to_error(*t, c, e))
                })
                .collect()
        });
        let present: HashSet<(ObjectType, Checksum)> = objects.iter().copied().collect();
        let mut walk = Walk {
            repo: self,
            present: &present,
            seen_trees: HashSet::new(),
            errors: Vec::new(),
        };
        for (name, c) in self.list_refs()? {
            walk.need(ObjectType::Commit, &c, &format!("ref {name}"));
        }
        let mut commits = 0;
        for (t, c) in &objects {
            if *t != ObjectType::Commit
                || self.is_partial(c)
                || check_file_type(self, *t, c).is_err()
            {
                continue;
            }
            if let Ok(commit) = self.read_commit(c) {
                commits += 1;
                walk.tree(&commit.root_tree, &commit.root_meta, &format!("commit {c}"));
            }
        }
        errors.extend(walk.errors);
        errors.sort_by_key(|e| (e.checksum, e.kind));
        errors.dedup();
        progress.finish();
        Ok(FsckReport {
            objects: objects.len() as u64,
            commits,
            errors,
        })
    }
}
