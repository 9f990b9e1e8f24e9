//! Repository layout, configuration, open/init, locking and object paths.

use crate::checksum::Checksum;
use crate::error::{IoPath, StoreError};
use crate::objects::{Commit, ObjectType};
use keel_utils::keyfile::KeyFile;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// How content objects are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoMode {
    /// Real files with real ownership, mode and xattrs (needs root to write).
    Bare,
    /// Files owned by the caller; real metadata in the `user.ostreemeta` xattr.
    BareUser,
    /// Files owned by the caller, no ownership or xattrs kept; symlinks are real.
    BareUserOnly,
    /// Compressed `.filez` objects, servable over HTTP.
    Archive,
}

impl RepoMode {
    /// The `mode=` value in the repository config.
    pub fn config_name(self) -> &'static str {
        match self {
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
            RepoMode::Archive => "archive-z2",
        }
    }

    /// Parse a config or command-line mode name.
    pub fn parse(s: &str) -> Option<RepoMode> {
        Some(match s {
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            "archive" | "archive-z2" => RepoMode::Archive,
            _ => return None,
        })
    }

    /// Content objects are `.filez`.
    pub fn is_archive(self) -> bool {
        self == RepoMode::Archive
    }
}

/// Directories `ostree init` creates.
const STATE_DIRS: &[&str] = &[
    "objects",
    "tmp",
    "tmp/cache",
    "extensions",
    "state",
    "refs",
    "refs/heads",
    "refs/mirrors",
    "refs/remotes",
];

/// An open repository.
#[derive(Debug)]
pub struct Repo {
    path: PathBuf,
    mode: RepoMode,
    config: KeyFile,
}

/// A held repository lock (released on drop).
pub struct RepoLock {
    _file: File,
}

impl Repo {
    /// Create a repository (or open an existing one of the same mode).
    pub fn init(path: &Path, mode: RepoMode) -> Result<Repo, StoreError> {
        let config_path = path.join("config");
        if config_path.exists() {
            let repo = Repo::open(path)?;
            if repo.mode != mode {
                return Err(StoreError::Invalid(format!(
                    "{}: a repository of mode {} already exists here",
                    path.display(),
                    repo.mode.config_name()
                )));
            }
            return Ok(repo);
        }
        fs::create_dir_all(path).at(path)?;
        for d in STATE_DIRS {
            let p = path.join(d);
            match fs::create_dir(&p) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e).at(&p),
                _ => {}
            }
        }
        let config = format!("[core]\nrepo_version=1\nmode={}\n", mode.config_name());
        keel_utils::fsutil::write_atomic(&config_path, config.as_bytes(), 0o644)
            .at(&config_path)?;
        Repo::open(path)
    }

    /// Open an existing repository.
    pub fn open(path: &Path) -> Result<Repo, StoreError> {
        let not_repo = |reason: String| StoreError::NotARepo {
            path: path.to_path_buf(),
            reason,
        };
        let config = fs::read_to_string(path.join("config"))
            .map_err(|e| not_repo(format!("cannot read config: {e}")))?;
        let config = KeyFile::parse(&config)
            .map_err(|e| not_repo(format!("config is not a valid key file: {e}")))?;
        let mode_name = config.raw("core", "mode").unwrap_or("bare");
        let mode = RepoMode::parse(mode_name)
            .ok_or_else(|| not_repo(format!("unsupported mode `{mode_name}` in config")))?;
        if !path.join("objects").is_dir() {
            return Err(not_repo("no objects/ directory".into()));
        }
        Ok(Repo {
            path: path.to_path_buf(),
            mode,
            config,
        })
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The storage mode.
    pub fn mode(&self) -> RepoMode {
        self.mode
    }

    /// A value from the repository config (`[section] key=value`).
    pub fn config_value(&self, section: &str, key: &str) -> Option<&str> {
        self.config.raw(section, key)
    }

    /// Take the repository lock (`.lock`, flock): shared for writers adding objects, exclusive for
    /// prune. Blocks until available.
    pub fn lock(&self, exclusive: bool) -> Result<RepoLock, StoreError> {
        let p = self.path.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .at(&p)?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&file, op).at(&p)?;
        Ok(RepoLock { _file: file })
    }

    /// Path of an object (whether or not it exists).
    pub fn object_path(&self, t: ObjectType, c: &Checksum) -> PathBuf {
        let hex = c.to_hex();
        self.path.join("objects").join(&hex[..2]).join(format!(
            "{}.{}",
            &hex[2..],
            t.extension(self.mode.is_archive())
        ))
    }

    /// Does the object exist?
    pub fn has_object(&self, t: ObjectType, c: &Checksum) -> bool {
        fs::symlink_metadata(self.object_path(t, c)).is_ok()
    }

    /// Read a metadata object and check that its bytes hash to its name (detached metadata,
    /// which is named after its commit, is only read).
    pub fn load_metadata_bytes(&self, t: ObjectType, c: &Checksum) -> Result<Vec<u8>, StoreError> {
        let p = self.object_path(t, c);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::MissingObject {
                    kind: t,
                    checksum: *c,
                })
            }
            Err(e) => return Err(e).at(&p),
        };
        if t != ObjectType::CommitMeta && Checksum::of(&bytes) != *c {
            return Err(StoreError::Corrupt {
                kind: t,
                checksum: *c,
                reason: format!("content hashes to {}", Checksum::of(&bytes)),
            });
        }
        Ok(bytes)
    }

    /// Read and parse a commit.
    pub fn read_commit(&self, c: &Checksum) -> Result<Commit, StoreError> {
        let bytes = self.load_metadata_bytes(ObjectType::Commit, c)?;
        Commit::parse(&bytes).map_err(|e| StoreError::corrupt(ObjectType::Commit, *c, e))
    }

    /// Detached metadata (`a{sv}` bytes) of a commit, if any.
    pub fn read_detached_metadata(&self, c: &Checksum) -> Result<Option<Vec<u8>>, StoreError> {
        match self.load_metadata_bytes(ObjectType::CommitMeta, c) {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::MissingObject { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replace (or with `None`, remove) the detached metadata of a commit, crash-safely.
    pub fn write_detached_metadata(
        &self,
        c: &Checksum,
        bytes: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let p = self.object_path(ObjectType::CommitMeta, c);
        match bytes {
            Some(b) => {
                crate::gvariant::parse_dict(b)
                    .map_err(|e| StoreError::corrupt(ObjectType::CommitMeta, *c, e))?;
                let dir = p.parent().unwrap_or(&self.path);
                fs::create_dir_all(dir).at(dir)?;
                keel_utils::fsutil::write_atomic(&p, b, 0o644).at(&p)
            }
            None => match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at(&p),
                _ => Ok(()),
            },
        }
    }

    /// Every object in the repository, by walking `objects/` (skips unrelated files).
    pub fn list_objects(&self) -> Result<Vec<(ObjectType, Checksum)>, StoreError> {
        let objects = self.path.join("objects");
        let mut out = Vec::new();
        for sub in fs::read_dir(&objects).at(&objects)? {
            let sub = sub.at(&objects)?;
            let prefix = sub.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !sub.file_type().at(&sub.path())?.is_dir() {
                continue;
            }
            let dir = sub.path();
            for e in fs::read_dir(&dir).at(&dir)? {
                let name = e.at(&dir)?.file_name().to_string_lossy().into_owned();
                if let Some((rest, ext)) = name.split_once('.') {
                    let hex = format!("{prefix}{rest}");
                    if let (Some(t), Ok(c)) = (ObjectType::from_extension(ext), hex.parse()) {
                        out.push((t, c));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Commits whose pull did not finish (`state/<c>.commitpartial`).
    pub fn is_partial(&self, c: &Checksum) -> bool {
        self.path
            .join("state")
            .join(format!("{c}.commitpartial"))
            .exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_utils::keyfile;

    #[test]
    fn config_lookup_table() {
        let cfg = "[core]\nrepo_version=1\nmode=archive-z2\n\n[remote \"origin\"]\nurl=http://x/\nmode=no\n";
        for (section, key, want) in [
            ("core", "mode", Some("archive-z2")),
            ("core", "repo_version", Some("1")),
            ("remote \"origin\"", "url", Some("http://x/")),
            ("core", "url", None),
            ("nope", "mode", None),
        ] {
            assert_eq!(keyfile::lookup(cfg, section, key).unwrap(), want);
        }
    }

    /// GLib refuses a config that is not a key file, and so does `Repo::open` (it read one
    /// before, ignoring the bad lines); a duplicate key takes its last value, not its first.
    #[test]
    fn config_is_read_as_glib_reads_it() {
        let d = tempfile::tempdir().unwrap();
        let r = Repo::init(&d.path().join("r"), RepoMode::Archive).unwrap();
        let cfg = r.path().join("config");
        fs::write(&cfg, "[core]\nrepo_version=1\nmode=bare\nmode=archive-z2\n").unwrap();
        assert_eq!(Repo::open(r.path()).unwrap().mode(), RepoMode::Archive);
        fs::write(&cfg, "[core]\nmode=archive-z2\nthis is not a key\n").unwrap();
        let e = Repo::open(r.path()).unwrap_err().to_string();
        assert!(e.contains("line 3: `this is not a key`"), "{e}");
    }

    #[test]
    fn init_writes_ostree_layout() {
        let d = tempfile::tempdir().unwrap();
        let r = Repo::init(&d.path().join("r"), RepoMode::Archive).unwrap();
        assert_eq!(
            fs::read_to_string(r.path().join("config")).unwrap(),
            "[core]\nrepo_version=1\nmode=archive-z2\n"
        );
        for dir in STATE_DIRS {
            assert!(r.path().join(dir).is_dir(), "{dir}");
        }
        assert_eq!(Repo::open(r.path()).unwrap().mode(), RepoMode::Archive);
        assert!(Repo::init(r.path(), RepoMode::Bare).is_err());
        assert!(matches!(
            Repo::open(d.path()),
            Err(StoreError::NotARepo { .. })
        ));
    }
}
