//! Committing a directory: a parallel scan that hashes, and writes only missing objects.
//!
//! Each directory's files and subdirectories are processed on a rayon pool (files and
//! subdirectories in parallel, work-stealing across the whole tree). Small files are read once
//! into a buffer, hashed, and written from that buffer only when the object is new; large files
//! are hashed in a streaming pass and copied (kernel copy offload for bare repositories, or
//! streamed through deflate for archive repositories) only when new. Memory stays bounded by
//! one small-file buffer per worker.

use crate::checksum::{Checksum, Hasher};
use crate::error::{IoPath, StoreError};
use crate::gvariant::Variant;
use crate::objects::{content_checksum, Commit, DirMeta, DirTree, FileHeader, ObjectType, S_IFMT};
use crate::repo::Repo;
use crate::txn::Transaction;
use crate::xattrs;
use keel_utils::progress::Progress;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files up to this size are read into memory once; larger ones are streamed twice.
const SMALL_FILE: u64 = 1 << 20;

thread_local! {
    /// Each worker's reusable small-file buffer (no allocator churn, bounded memory).
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where a new commit's parent comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentSpec {
    /// The current value of the branch, if it exists (OSTree's default).
    #[default]
    Auto,
    /// No parent.
    None,
    /// This rev.
    Rev(String),
}

/// Options for [`Repo::commit_dir`].
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Ref to move to the new commit (at the very end).
    pub branch: Option<String>,
    /// One-line subject.
    pub subject: String,
    /// Body text.
    pub body: String,
    /// Commit time in seconds since the epoch; now when `None`.
    pub timestamp: Option<u64>,
    /// Commit metadata, in this byte order.
    pub metadata: Vec<(String, Variant)>,
    /// Parent commit.
    pub parent: ParentSpec,
    /// Append `ostree.ref-binding: [branch]` after `metadata`, like `ostree commit -b`.
    pub ref_binding: bool,
    /// Force this owner on every entry.
    pub owner_uid: Option<u32>,
    /// Force this group on every entry.
    pub owner_gid: Option<u32>,
    /// Owner 0:0 and permissions masked to 0755, like `ostree commit --canonical-permissions`.
    pub canonical_permissions: bool,
}

impl Default for CommitOptions {
    fn default() -> CommitOptions {
        CommitOptions {
            branch: None,
            subject: String::new(),
            body: String::new(),
            timestamp: None,
            metadata: Vec::new(),
            parent: ParentSpec::Auto,
            ref_binding: true,
            owner_uid: None,
            owner_gid: None,
            canonical_permissions: false,
        }
    }
}

struct Scan<'a, 'r> {
    tx: &'a Transaction<'r>,
    opts: &'a CommitOptions,
    progress: &'a Progress,
    hardlinks: Mutex<HashMap<(u64, u64), Checksum>>,
}

fn utf8_name(dir: &Path, name: std::ffi::OsString) -> Result<String, StoreError> {
    name.into_string().map_err(|n| StoreError::Unsupported {
        path: dir.join(n),
        what: "a file name that is not valid UTF-8".into(),
    })
}

impl Scan<'_, '_> {
    fn owner(&self, md: &fs::Metadata) -> (u32, u32, u32) {
        let mut mode = md.mode();
        let (mut uid, mut gid) = (md.uid(), md.gid());
        if self.opts.canonical_permissions {
            uid = 0;
            gid = 0;
            if !md.file_type().is_symlink() {
                mode &= S_IFMT | 0o755;
            }
        }
        (
            self.opts.owner_uid.unwrap_or(uid),
            self.opts.owner_gid.unwrap_or(gid),
            mode,
        )
    }

    fn dir(&self, path: &Path, md: &fs::Metadata) -> Result<(Checksum, Checksum), StoreError> {
        let (uid, gid, mode) = self.owner(md);
        let meta = DirMeta {
            uid,
            gid,
            mode,
            xattrs: xattrs::read(path)?,
        };
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for e in fs::read_dir(path).at(path)? {
            let e = e.at(path)?;
            let p = e.path();
            let md = fs::symlink_metadata(&p).at(&p)?;
            let ft = md.file_type();
            let name = utf8_name(path, e.file_name())?;
            if ft.is_dir() {
                dirs.push((name, p, md));
            } else if ft.is_file() || ft.is_symlink() {
                files.push((name, p, md));
            } else {
                let what = crate::fsck::file_type_name(ft);
                return Err(StoreError::Unsupported {
                    path: p,
                    what: what.into(),
                });
            }
        }
        let (files, dirs) = rayon::join(
            || {
                files
                    .par_iter()
                    .map(|(n, p, md)| Ok((n.clone(), self.file(p, md)?)))
                    .collect::<Result<Vec<_>, StoreError>>()
            },
            || {
                dirs.par_iter()
                    .map(|(n, p, md)| {
                        let (t, m) = self.dir(p, md)?;
                        Ok((n.clone(), t, m))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            },
        );
        let tree = DirTree {
            files: files?,
            dirs: dirs?,
        };
        let t = self
            .tx
            .write_metadata(ObjectType::DirTree, &tree.to_bytes())?;
        let m = self
            .tx
            .write_metadata(ObjectType::DirMeta, &meta.to_bytes())?;
        self.progress.inc(1, 0);
        Ok((t, m))
    }

    fn file(&self, path: &PathBuf, md: &fs::Metadata) -> Result<Checksum, StoreError> {
        let key = (md.dev(), md.ino());
        if md.nlink() > 1 && md.is_file() {
            if let Some(c) = self
                .hardlinks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            {
                self.progress.inc(1, md.len());
                return Ok(*c);
            }
        }
        let (uid, gid, mode) = self.owner(md);
        let symlink_target = if md.file_type().is_symlink() {
            let t = fs::read_link(path).at(path)?;
            t.into_os_string()
                .into_string()
                .map_err(|_| StoreError::Unsupported {
                    path: path.clone(),
                    what: "a symlink whose target is not valid UTF-8".into(),
                })?
        } else {
            String::new()
        };
        // Regular files are opened once: xattrs and content are read through the descriptor.
        let opened = match md.file_type().is_symlink() {
            true => None,
            false => Some(File::open(path).at(path)?),
        };
        let xattrs = match &opened {
            Some(f) => xattrs::read_fd(f, path)?,
            None => xattrs::read(path)?,
        };
        let header = FileHeader {
            uid,
            gid,
            mode,
            rdev: 0,
            symlink_target,
            xattrs,
        };
        let c = match opened {
            Some(mut f) if md.len() > SMALL_FILE => {
                let mut h = Hasher::new();
                h.update(&header.stream_prefix());
                std::io::copy(&mut f, &mut h).at(path)?;
                let c = h.finish();
                if self.tx.claim(ObjectType::File, &c) {
                    f.rewind().at(path)?;
                    let src = f.try_clone().at(path)?;
                    self.tx
                        .write_content_trusted(&c, &header, &mut f, Some(&src))?;
                }
                c
            }
            Some(mut f) => BUFFER.with_borrow_mut(|data| {
                data.clear();
                f.read_to_end(data).at(path)?;
                let c = content_checksum(&header, data);
                if self.tx.claim(ObjectType::File, &c) {
                    self.tx
                        .write_content_trusted(&c, &header, &mut data.as_slice(), None)?;
                }
                Ok::<_, StoreError>(c)
            })?,
            None => {
                let c = content_checksum(&header, b"");
                if self.tx.claim(ObjectType::File, &c) {
                    self.tx
                        .write_content_trusted(&c, &header, &mut std::io::empty(), None)?;
                }
                c
            }
        };
        if md.nlink() > 1 && md.is_file() {
            self.hardlinks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, c);
        }
        self.progress.inc(1, md.len());
        Ok(c)
    }
}

/// Worker threads for commit and checkout: twice the cores, so I/O waits overlap hashing.
pub(crate) fn pool() -> Result<rayon::ThreadPool, StoreError> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        * 2;
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| StoreError::Invalid(format!("cannot start worker threads: {e}")))
}

impl Repo {
    /// Commit the directory `dir`: write every missing object, then the commit, make them
    /// durable, and finally move `opts.branch` (if any) atomically.
    pub fn commit_dir(
        &self,
        dir: &Path,
        opts: &CommitOptions,
        progress: &Progress,
    ) -> Result<Checksum, StoreError> {
        let md = fs::symlink_metadata(dir).at(dir)?;
        if !md.is_dir() {
            return Err(StoreError::Invalid(format!(
                "{}: not a directory",
                dir.display()
            )));
        }
        let parent = match (&opts.parent, &opts.branch) {
            (ParentSpec::None, _) | (ParentSpec::Auto, None) => None,
            (ParentSpec::Auto, Some(b)) => self.read_ref(b)?,
            (ParentSpec::Rev(r), _) => Some(self.resolve_rev(r)?),
        };
        let started = std::time::Instant::now();
        let tx = self.begin()?;
        let scan = Scan {
            tx: &tx,
            opts,
            progress,
            hardlinks: Mutex::new(HashMap::new()),
        };
        let (root_tree, root_meta) = pool()?.install(|| scan.dir(dir, &md))?;
        let mut metadata = opts.metadata.clone();
        if let (true, Some(b)) = (opts.ref_binding, &opts.branch) {
            metadata.push((
                "ostree.ref-binding".into(),
                Variant::StrList(vec![b.clone()]),
            ));
        }
        let timestamp = opts.timestamp.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        let commit = Commit {
            metadata,
            parent,
            related: Vec::new(),
            subject: opts.subject.clone(),
            body: opts.body.clone(),
            timestamp,
            root_tree,
            root_meta,
        };
        let c = tx.write_metadata(ObjectType::Commit, &commit.to_bytes())?;
        let scanned = started.elapsed();
        tx.commit()?;
        tracing::info!(
            "commit {c}: scan, hash and write {:.2}s; sync and rename {:.2}s",
            scanned.as_secs_f64(),
            (started.elapsed() - scanned).as_secs_f64()
        );
        if let Some(b) = &opts.branch {
            self.set_ref(b, Some(&c))?;
        }
        progress.finish();
        Ok(c)
    }
}
