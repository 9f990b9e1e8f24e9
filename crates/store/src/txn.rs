//! Write transactions: objects are written into `tmp/staging-<boot>-<pid>-<n>/`, made durable
//! with one `syncfs`, then renamed into `objects/` and the touched directories fsynced. A killed
//! writer leaves only a staging directory, which fsck ignores and the next transaction removes.

use crate::checksum::{Checksum, Hasher};
use crate::error::{IoPath, StoreError};
use crate::objects::{DirMeta, FileHeader, ObjectType};
use crate::repo::{Repo, RepoLock, RepoMode};
use crate::xattrs;
use std::collections::HashSet;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Deflate level for archive objects. Any level is valid for readers; level 1 compresses
/// several times faster than OSTree's default 6 at a ~10% larger repository.
pub const ARCHIVE_LEVEL: u32 = 1;

/// The xattr holding real metadata in bare-user repositories.
pub const BARE_USER_META: &str = "user.ostreemeta";

/// An open write transaction on a repository.
pub struct Transaction<'r> {
    repo: &'r Repo,
    dir: PathBuf,
    counter: AtomicU64,
    finished: bool,
    _lock: RepoLock,
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().replace('-', ""))
        .unwrap_or_else(|_| "noboot".into())
}

/// Remove staging directories left by writers that no longer run.
fn clean_stale_staging(tmp: &Path) {
    let boot = boot_id();
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("staging-") else {
            continue;
        };
        let mut parts = rest.split('-');
        let (b, pid) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let alive = b == boot && Path::new("/proc").join(pid).exists();
        if !alive {
            tracing::info!("removing stale staging directory {}", e.path().display());
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hasher: Hasher,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Size of the per-thread buffer that file contents are copied through: large writes mean
/// fewer system calls and let a decompressing reader produce big chunks at once.
const COPY_CHUNK: usize = 256 * 1024;

thread_local! {
    static COPY_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copy `content` to `out` through a reused large buffer; returns the bytes copied.
fn copy_large(content: &mut dyn Read, out: &mut File) -> io::Result<u64> {
    COPY_BUF.with_borrow_mut(|buf| {
        buf.resize(COPY_CHUNK, 0);
        let mut total = 0u64;
        loop {
            let n = crate::deflate::read_full(content, buf)?;
            out.write_all(&buf[..n])?;
            total += n as u64;
            if n < buf.len() {
                return Ok(total);
            }
        }
    })
}

/// The error of creating a staged file that another worker of the transaction already created.
fn already_exists(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists)
}

fn zero_times() -> FileTimes {
    FileTimes::new()
        .set_accessed(SystemTime::UNIX_EPOCH)
        .set_modified(SystemTime::UNIX_EPOCH)
}

/// Set a symlink's own timestamps to the epoch, as OSTree does for bare objects.
pub(crate) fn zero_link_times(path: &Path) -> Result<(), StoreError> {
    let zero = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let ts = rustix::fs::Timestamps {
        last_access: zero,
        last_modification: zero,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .at(path)
}

impl Repo {
    /// Start a write transaction (takes the shared repository lock).
    pub fn begin(&self) -> Result<Transaction<'_>, StoreError> {
        let lock = self.lock(false)?;
        let tmp = self.path().join("tmp");
        fs::create_dir_all(&tmp).at(&tmp)?;
        clean_stale_staging(&tmp);
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = tmp.join(format!(
            "staging-{}-{}-{}{}",
            boot_id(),
            std::process::id(),
            nanos,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).at(&dir)?;
        Ok(Transaction {
            repo: self,
            dir,
            counter: AtomicU64::new(0),
            finished: false,
            _lock: lock,
        })
    }

    /// Store a metadata object crash-safely; returns its checksum.
    pub fn write_metadata_object(
        &self,
        t: ObjectType,
        bytes: &[u8],
    ) -> Result<Checksum, StoreError> {
        let tx = self.begin()?;
        let c = tx.write_metadata(t, bytes)?;
        tx.commit()?;
        Ok(c)
    }

    /// Store a content object from its header and content stream crash-safely, verifying
    /// `expected` when given; returns its checksum.
    pub fn write_content_object(
        &self,
        expected: Option<&Checksum>,
        header: &FileHeader,
        content: &mut dyn Read,
    ) -> Result<Checksum, StoreError> {
        let tx = self.begin()?;
        let c = tx.write_content(expected, header, content)?;
        tx.commit()?;
        Ok(c)
    }
}

impl<'r> Transaction<'r> {
    fn temp_path(&self) -> PathBuf {
        self.dir.join(format!(
            "tmp-{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn staged_path(&self, t: ObjectType, c: &Checksum) -> PathBuf {
        self.dir.join(format!(
            "{c}.{}",
            t.extension(self.repo.mode().is_archive())
        ))
    }

    /// Does the object still need writing (is it absent from the repository)? Objects already
    /// staged by this transaction are detected when writing: staged files are created
    /// exclusively, so a second writer of the same object stops at once, and no bookkeeping is
    /// kept in memory.
    pub fn claim(&self, t: ObjectType, c: &Checksum) -> bool {
        !self.repo.has_object(t, c)
    }

    fn stage(&self, tmp: &Path, t: ObjectType, c: &Checksum) -> Result<(), StoreError> {
        let dest = self.staged_path(t, c);
        fs::rename(tmp, &dest).at(&dest)
    }

    /// Write a metadata object (verifies nothing about its contents; the name is its hash).
    pub fn write_metadata(&self, t: ObjectType, bytes: &[u8]) -> Result<Checksum, StoreError> {
        let c = Checksum::of(bytes);
        if self.claim(t, &c) {
            let p = self.staged_path(t, &c);
            let written = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&p)
                .at(&p)
                .and_then(|mut f| f.write_all(bytes).at(&p));
            match written {
                Err(e) if already_exists(&e) => {}
                Err(e) => {
                    let _ = fs::remove_file(&p);
                    return Err(e);
                }
                Ok(()) => {}
            }
        }
        Ok(c)
    }

    /// Write a content object from an untrusted stream: hash it, compare with `expected`.
    pub fn write_content(
        &self,
        expected: Option<&Checksum>,
        header: &FileHeader,
        content: &mut dyn Read,
    ) -> Result<Checksum, StoreError> {
        header
            .validate()
            .map_err(|e| StoreError::Invalid(format!("content object header: {}", e.0)))?;
        if let Some(e) = expected {
            if !self.claim(ObjectType::File, e) {
                return Ok(*e);
            }
        }
        // With a known checksum the object is written under its staged name at once (no
        // rename per object); it is removed again if it does not hash to that name, and a
        // staging directory is only moved into `objects/` by `commit`.
        let tmp = match expected {
            Some(e) => self.staged_path(ObjectType::File, e),
            None => self.temp_path(),
        };
        let mut hasher = Hasher::new();
        hasher.update(&header.stream_prefix());
        let mut reader = HashingReader {
            inner: content,
            hasher,
        };
        let written = self.write_file_object(&tmp, header, &mut reader, None);
        let c = reader.hasher.finish();
        let verdict = match (written, expected) {
            (Err(e), Some(want)) if already_exists(&e) => return Ok(*want),
            (Err(e), _) => Err(e),
            (Ok(()), Some(e)) if *e != c => Err(StoreError::Corrupt {
                kind: ObjectType::File,
                checksum: *e,
                reason: format!("received content hashes to {c}"),
            }),
            (Ok(()), _) => Ok(()),
        };
        if let Err(err) = verdict {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
        if expected.is_some() {
            return Ok(c);
        }
        if !self.claim(ObjectType::File, &c) {
            fs::remove_file(&tmp).at(&tmp)?;
            return Ok(c);
        }
        self.stage(&tmp, ObjectType::File, &c)?;
        Ok(c)
    }

    /// Write a content object whose checksum the caller computed from the same data and already
    /// claimed. `file` enables kernel copy offload for bare repositories.
    pub(crate) fn write_content_trusted(
        &self,
        c: &Checksum,
        header: &FileHeader,
        content: &mut dyn Read,
        file: Option<&File>,
    ) -> Result<(), StoreError> {
        let dest = self.staged_path(ObjectType::File, c);
        match self.write_file_object(&dest, header, content, file) {
            Ok(()) => Ok(()),
            Err(e) if already_exists(&e) => Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&dest);
                Err(e)
            }
        }
    }

    fn write_file_object(
        &self,
        tmp: &Path,
        header: &FileHeader,
        content: &mut dyn Read,
        file: Option<&File>,
    ) -> Result<(), StoreError> {
        let mode = self.repo.mode();
        if header.is_symlink() && mode != RepoMode::Archive && mode != RepoMode::BareUser {
            std::os::unix::fs::symlink(&header.symlink_target, tmp).at(tmp)?;
            if mode == RepoMode::Bare {
                std::os::unix::fs::lchown(tmp, Some(header.uid), Some(header.gid)).at(tmp)?;
                xattrs::set_path(tmp, &header.xattrs)?;
            }
            return zero_link_times(tmp);
        }
        let disk_mode = match mode {
            RepoMode::Archive => 0o644,
            RepoMode::Bare => header.mode & 0o7777,
            RepoMode::BareUser => (header.mode & 0o775) | 0o400,
            RepoMode::BareUserOnly => header.mode & 0o775,
        };
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .at(tmp)?;
        if mode == RepoMode::Archive {
            out.write_all(&header.archive_prefix(0)).at(tmp)?;
            if !header.is_symlink() {
                let size = crate::deflate::deflate_raw(content, &mut out, ARCHIVE_LEVEL).at(tmp)?;
                out.write_all_at(&size.to_be_bytes(), 8).at(tmp)?;
            }
        } else if header.is_symlink() {
            let mut target = header.symlink_target.clone().into_bytes();
            target.push(0);
            out.write_all(&target).at(tmp)?;
        } else if let Some(mut src) = file {
            io::copy(&mut src, &mut out).at(tmp)?;
        } else {
            copy_large(content, &mut out).at(tmp)?;
        }
        if mode == RepoMode::Bare {
            std::os::unix::fs::fchown(&out, Some(header.uid), Some(header.gid)).at(tmp)?;
        }
        out.set_permissions(fs::Permissions::from_mode(disk_mode))
            .at(tmp)?;
        match mode {
            RepoMode::Bare => xattrs::set_fd(&out, tmp, &header.xattrs)?,
            RepoMode::BareUser => {
                let meta = DirMeta {
                    uid: header.uid,
                    gid: header.gid,
                    mode: header.mode,
                    xattrs: header.xattrs.clone(),
                };
                rustix::fs::fsetxattr(
                    &out,
                    BARE_USER_META,
                    &meta.to_bytes(),
                    rustix::fs::XattrFlags::empty(),
                )
                .at(tmp)?;
            }
            _ => {}
        }
        if mode != RepoMode::Archive {
            out.set_times(zero_times()).at(tmp)?;
        }
        Ok(())
    }

    /// Make every staged object durable and move it into `objects/`. Commits (and their
    /// detached metadata) move only after everything else is in place and synced, so a killed or
    /// crashed writer never leaves a commit whose tree is incomplete.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        if fs::read_dir(&dir).at(&dir)?.next().is_some() {
            let d = File::open(&dir).at(&dir)?;
            rustix::fs::syncfs(&d).at(&dir)?;
        }
        for commits in [false, true] {
            let touched = self.move_staged(|t| {
                matches!(t, ObjectType::Commit | ObjectType::CommitMeta) == commits
            })?;
            self.sync_dirs(&touched)?;
        }
        self.finished = true;
        fs::remove_dir_all(&dir).at(&dir)
    }

    /// Rename the staged objects whose type `pick` selects into `objects/`; returns the
    /// `objects/XX` directories touched.
    fn move_staged(
        &self,
        pick: impl Fn(ObjectType) -> bool,
    ) -> Result<HashSet<PathBuf>, StoreError> {
        let objects = self.repo.path().join("objects");
        let mut touched = HashSet::new();
        for e in fs::read_dir(&self.dir).at(&self.dir)? {
            let name = e.at(&self.dir)?.file_name().to_string_lossy().into_owned();
            let parsed = name.split_once('.').and_then(|(hex, ext)| {
                Some((
                    ObjectType::from_extension(ext)?,
                    hex.parse::<Checksum>().ok()?,
                ))
            });
            let Some((t, c)) = parsed.filter(|(t, _)| pick(*t)) else {
                continue;
            };
            let dest = self.repo.object_path(t, &c);
            let sub = objects.join(&c.to_hex()[..2]);
            if touched.insert(sub.clone()) {
                match fs::create_dir(&sub) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e).at(&sub),
                    _ => {}
                }
            }
            fs::rename(self.staged_path(t, &c), &dest).at(&dest)?;
        }
        Ok(touched)
    }

    /// Make renames into `touched` durable: a few directories are fsynced one by one; for more,
    /// one syncfs (a single journal commit) is much cheaper than one commit per directory.
    fn sync_dirs(&self, touched: &HashSet<PathBuf>) -> Result<(), StoreError> {
        let objects = self.repo.path().join("objects");
        if touched.len() > 8 {
            let d = File::open(&objects).at(&objects)?;
            rustix::fs::syncfs(&d).at(&objects)?;
        } else if !touched.is_empty() {
            for sub in touched {
                keel_utils::fsutil::sync_dir(sub).at(sub)?;
            }
            keel_utils::fsutil::sync_dir(&objects).at(&objects)?;
        }
        Ok(())
    }

    /// The repository being written.
    pub fn repo(&self) -> &'r Repo {
        self.repo
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
