//! The sysroot: where things live (physical root, ESP, runtime directory), `init`, the lock,
//! which deployment is booted, and the [`Deployment`] type.

use crate::bls::{valid_stateroot, EntryName};
use crate::error::{DeployError, IoPath};
use keel_store::{Checksum, Repo, RepoMode};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The stateroot used when none is given.
pub const DEFAULT_STATEROOT: &str = keel_proto::node::STATEROOT;

/// Tries a new boot entry gets (`+3`): after three boots that never reached
/// `boot-complete.target`, systemd-boot falls back to the previous entry.
pub const BOOT_TRIES: u32 = 3;

/// One deployment: a checkout of `commit` at `ostree/deploy/<stateroot>/deploy/<commit>.<serial>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The stateroot (shares `/var`).
    pub stateroot: String,
    /// The deployed commit.
    pub commit: Checksum,
    /// Counts deployments of the same commit.
    pub serial: u32,
    /// sha256 of kernel ‖ initramfs, hex.
    pub bootcsum: String,
    /// Kernel arguments, without `ostree=`.
    pub kargs: Vec<String>,
    /// The boot entry that boots it (`None` while staged).
    pub entry: Option<EntryName>,
}

impl Deployment {
    /// `<commit>.<serial>`: the directory name.
    pub fn name(&self) -> String {
        format!("{}.{}", self.commit.to_hex(), self.serial)
    }

    /// The deployment a staged record describes (its entry is not written yet).
    pub fn staged(rec: &keel_proto::staged::StagedRecord, commit: Checksum, serial: u32) -> Self {
        Deployment {
            stateroot: rec.stateroot.clone(),
            commit,
            serial,
            bootcsum: rec.bootcsum.clone(),
            kargs: rec.kargs.clone(),
            entry: None,
        }
    }

    /// Parse a directory name `<commit>.<serial>`.
    pub fn parse_name(name: &str) -> Option<(Checksum, u32)> {
        let (c, s) = name.split_once('.')?;
        Some((c.parse().ok()?, s.parse().ok()?))
    }
}

/// A sysroot: the physical root filesystem holding `/ostree`, and the ESP holding boot entries.
#[derive(Debug, Clone)]
pub struct Sysroot {
    root: PathBuf,
    boot: PathBuf,
    run: PathBuf,
    stateroot: String,
    booted: Option<String>,
}

fn mkdir(p: &Path, mode: u32) -> Result<(), DeployError> {
    if !p.is_dir() {
        fs::create_dir_all(p).at(p)?;
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).at(p)?;
    }
    Ok(())
}

fn ensure_symlink(target: &str, link: &Path) -> Result<(), DeployError> {
    if fs::symlink_metadata(link).is_err() {
        symlink(target, link).at(link)?;
    }
    Ok(())
}

impl Sysroot {
    /// Lay out a new sysroot at `path` (like `ostree admin init-fs` + `os-init`): a bare repo at
    /// `ostree/repo`, `ostree/deploy/<stateroot>/{deploy,var}` and `boot/loader/entries` (the
    /// ESP is expected at `<path>/boot`). Existing parts are kept, so it is safe to re-run.
    pub fn init(path: &Path, stateroot: &str) -> Result<Sysroot, DeployError> {
        check_stateroot(stateroot)?;
        let repo = path.join(keel_proto::node::SYSTEM_REPO);
        if !repo.join("config").exists() {
            fs::create_dir_all(path.join("ostree")).at(&path.join("ostree"))?;
            Repo::init(&repo, RepoMode::Bare)?;
        }
        let sr = path.join("ostree/deploy").join(stateroot);
        mkdir(&sr.join("deploy"), 0o755)?;
        let var = sr.join("var");
        for d in ["lib", "log"] {
            mkdir(&var.join(d), 0o755)?;
        }
        mkdir(&var.join("tmp"), 0o1777)?;
        ensure_symlink("../run/lock", &var.join("lock"))?;
        ensure_symlink("../run", &var.join("run"))?;
        // The ESP may already be mounted there: vfat refuses chmod, so no mode is set.
        let entries = path.join("boot/loader/entries");
        fs::create_dir_all(&entries).at(&entries)?;
        Self::open(path, stateroot)
    }

    /// Open the sysroot at `path`. On a booted Keel system (`/run/ostree-booted` exists) `/`
    /// means the physical root `/sysroot` with the ESP at `/boot`; any other path is a sysroot
    /// directory with its ESP at `<path>/boot` and its runtime state under `<path>/run/keel`.
    pub fn open(path: &Path, stateroot: &str) -> Result<Sysroot, DeployError> {
        check_stateroot(stateroot)?;
        let path = &std::path::absolute(path).at(path)?;
        let booted_system = path == Path::new("/") && Path::new("/run/ostree-booted").exists();
        let (root, boot, run) = if booted_system {
            (
                keel_proto::node::SYSROOT_MOUNT.into(),
                "/boot".into(),
                "/run/keel".into(),
            )
        } else {
            (path.to_path_buf(), path.join("boot"), path.join("run/keel"))
        };
        if !root.join("ostree/repo/config").exists() {
            return Err(DeployError::Layout {
                path: root,
                reason: "no ostree/repo; create the sysroot first (keel image build does)".into(),
            });
        }
        Ok(Sysroot {
            root,
            boot,
            run,
            stateroot: stateroot.to_string(),
            booted: None,
        })
    }

    /// Treat deployment `name` (`<commit>.<serial>`) as booted: for directory sysroots in tests
    /// and image builds, where nothing is booted.
    pub fn with_booted(mut self, name: Option<String>) -> Sysroot {
        self.booted = name;
        self
    }

    /// The physical root (holds `ostree/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ESP (holds `loader/` and the kernels).
    pub fn boot(&self) -> &Path {
        &self.boot
    }

    /// Runtime state (staged deployment record); tmpfs on a booted system.
    pub fn run_dir(&self) -> &Path {
        &self.run
    }

    /// The stateroot operated on.
    pub fn stateroot(&self) -> &str {
        &self.stateroot
    }

    /// The system repository.
    pub fn repo(&self) -> Result<Repo, DeployError> {
        Ok(Repo::open(&self.root.join(keel_proto::node::SYSTEM_REPO))?)
    }

    /// `ostree/deploy/<stateroot>`.
    pub fn stateroot_dir(&self) -> PathBuf {
        self.root.join("ostree/deploy").join(&self.stateroot)
    }

    /// The directory of deployment `name`.
    pub fn deploy_path(&self, name: &str) -> PathBuf {
        self.stateroot_dir().join("deploy").join(name)
    }

    /// The `.origin` file of deployment `name`.
    pub fn origin_path(&self, name: &str) -> PathBuf {
        self.stateroot_dir()
            .join("deploy")
            .join(format!("{name}.origin"))
    }

    /// Take the sysroot lock (`ostree/lock`, like ostree) for a change; released on drop.
    pub(crate) fn lock(&self) -> Result<File, DeployError> {
        Ok(self
            .take_lock(true)?
            .expect("a blocking flock returns only when taken"))
    }

    /// Take the sysroot lock if nobody holds it (and it can be taken: `None` for a reader
    /// without write access).
    pub(crate) fn lock_if_free(&self) -> Result<Option<File>, DeployError> {
        self.take_lock(false)
    }

    fn take_lock(&self, wait: bool) -> Result<Option<File>, DeployError> {
        use rustix::fs::FlockOperation::{LockExclusive, NonBlockingLockExclusive};
        let p = self.root.join("ostree/lock");
        let f = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
        {
            Ok(f) => f,
            // Not root, or a read-only root: reading is all this caller can do anyway.
            Err(e)
                if !wait
                    && matches!(
                        e.kind(),
                        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                    ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e).at(&p),
        };
        match rustix::fs::flock(
            &f,
            if wait {
                LockExclusive
            } else {
                NonBlockingLockExclusive
            },
        ) {
            Ok(()) => Ok(Some(f)),
            Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
            Err(e) => Err(e).at(&p),
        }
    }

    /// Names of the deployment directories on disk (complete or not).
    pub(crate) fn deploy_dirs(&self) -> Result<Vec<String>, DeployError> {
        let d = self.stateroot_dir().join("deploy");
        let mut out = Vec::new();
        for e in fs::read_dir(&d).at(&d)? {
            let name = e.at(&d)?.file_name().to_string_lossy().into_owned();
            if Deployment::parse_name(&name).is_some() && !name.ends_with(".origin") {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The booted deployment's name: the override, or the deployment whose directory has the
    /// device and inode of `/` (what `ostree-prepare-root` mounted), on a booted system.
    pub fn booted_name(&self) -> Option<String> {
        if self.booted.is_some() {
            return self.booted.clone();
        }
        if !keel_proto::node::is_node_sysroot(&self.root) {
            return None;
        }
        let root = fs::metadata("/").ok()?;
        self.deploy_dirs().ok()?.into_iter().find(|n| {
            fs::metadata(self.deploy_path(n))
                .is_ok_and(|m| m.dev() == root.dev() && m.ino() == root.ino())
        })
    }
}

fn check_stateroot(s: &str) -> Result<(), DeployError> {
    if valid_stateroot(s) {
        Ok(())
    } else {
        Err(DeployError::State(format!(
            "stateroot `{s}`: use letters, digits, `_`, `.` and `-` (e.g. `keel`)"
        )))
    }
}
