//! The root filesystem from Debian packages, built by `mmdebstrap`, with a package cache.
//!
//! Cache layout (`--cache DIR`):
//! - `DIR/archives/*.deb`: every package ever downloaded. It is copied into the new tree's
//!   `/var/cache/apt/archives` before apt runs (mmdebstrap `sync-in`), so apt downloads only what
//!   is missing, and copied back afterwards (`sync-out`). `--skip=essential/unlink` keeps the
//!   essential packages in the archive directory so that they are cached too.
//! - `DIR/lists/<key>/`: apt's package lists for one set of sources (`key` = hash of the sources
//!   lines), saved after every online compose. `--offline` composes from these lists with
//!   `--skip=update` and with the network closed to apt (proxy pointed at a closed port), so it
//!   succeeds only when every package is already in the cache.

use crate::manifest::{hex, Manifest};
use keel_utils::cmd::{self, CmdError};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// mmdebstrap's hook that sets up merged /usr before any package is unpacked.
pub const MERGED_USR_HOOK: &str = "/usr/share/mmdebstrap/hooks/merged-usr";

/// What went wrong while building the root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// apt could not find a package named in the manifest.
    #[error("package {package:?} (manifest key packages.install) is not in the configured Debian sources: {detail}")]
    MissingPackage { package: String, detail: String },
    /// A package the manifest excludes is needed by another one.
    #[error("an excluded package (manifest key packages.exclude) is needed by another package: {detail}")]
    ExcludedNeeded { detail: String },
    /// A mirror could not be reached.
    #[error("cannot reach the Debian mirror (manifest key debian.mirrors): {detail}")]
    Unreachable { detail: String },
    /// `--offline` without cached package lists for these sources.
    #[error("no cached package lists for these sources in {0}; compose once without --offline to fill the cache")]
    NoCachedLists(PathBuf),
    /// Any other mmdebstrap failure.
    #[error(transparent)]
    Tool(#[from] CmdError),
    /// Cache or staging I/O.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How the packages are fetched.
pub struct Bootstrap<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// Package cache directory, if any.
    pub cache: Option<&'a Path>,
    /// Use only cached lists and packages; no network.
    pub offline: bool,
    /// `SOURCE_DATE_EPOCH` for the build.
    pub epoch: u64,
    /// A scratch directory for staging files (apt preferences).
    pub staging: &'a Path,
}

/// What the bootstrap fetched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Downloads {
    /// Number of .deb files downloaded from the network.
    pub packages: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Number of .deb files reused from the cache.
    pub reused: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// apt preferences that forbid installing each excluded package.
pub fn exclude_preferences(packages: &[String]) -> String {
    packages
        .iter()
        .map(|p| format!("Package: {p}\nPin: release *\nPin-Priority: -1\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The cache key of a set of apt sources.
pub fn lists_key(sources: &[String]) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())[..16].to_string()
}

impl Bootstrap<'_> {
    fn archives(&self) -> Option<PathBuf> {
        self.cache.map(|c| c.join("archives"))
    }

    fn lists(&self) -> Option<PathBuf> {
        self.cache
            .map(|c| c.join("lists").join(lists_key(&self.manifest.sources())))
    }

    /// The mmdebstrap command line that builds the tree at `target`.
    pub fn command(&self, target: &Path) -> Result<Command, BootstrapError> {
        let spec = &self.manifest.spec;
        let mut c = Command::new("mmdebstrap");
        c.arg("--mode=root")
            .arg("--format=directory")
            .arg(format!("--variant={}", spec.debian.variant))
            .arg(format!("--components={}", spec.debian.components.join(",")))
            .arg("--aptopt=Acquire::Languages \"none\"")
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            // Kernel packages would otherwise build an initramfs on install; compose builds its own.
            .env("INITRD", "No")
            .env("LC_ALL", "C.UTF-8");
        // Merged /usr the debootstrap way (directory symlinks + usr-is-merged), without the
        // usrmerge package and the perl it drags in.
        if !Path::new(MERGED_USR_HOOK).is_dir() {
            return Err(BootstrapError::Io {
                path: MERGED_USR_HOOK.into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "mmdebstrap's merged-usr hook is missing; install mmdebstrap >= 1.3 (Debian 12)",
                ),
            });
        }
        c.arg(format!("--hook-dir={MERGED_USR_HOOK}"));
        if !spec.packages.install.is_empty() {
            c.arg(format!("--include={}", spec.packages.install.join(",")));
        }
        for p in &spec.dpkg.path_exclude {
            c.arg(format!("--dpkgopt=path-exclude={p}"));
        }
        for p in &spec.dpkg.path_include {
            c.arg(format!("--dpkgopt=path-include={p}"));
        }
        if !spec.packages.exclude.is_empty() {
            let pref = self.staging.join("keel-exclude");
            std::fs::write(&pref, exclude_preferences(&spec.packages.exclude))
                .map_err(io_err(&pref))?;
            c.arg("--setup-hook=mkdir -p \"$1\"/etc/apt/preferences.d")
                .arg(format!(
                    "--setup-hook=copy-in {} /etc/apt/preferences.d/",
                    pref.display()
                ));
        }
        if let (Some(archives), Some(lists)) = (self.archives(), self.lists()) {
            std::fs::create_dir_all(&archives).map_err(io_err(&archives))?;
            c.arg("--skip=essential/unlink")
                .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives")
                .arg(format!(
                    "--setup-hook=sync-in {} /var/cache/apt/archives/",
                    archives.display()
                ))
                .arg(format!(
                    "--customize-hook=sync-out /var/cache/apt/archives {}",
                    archives.display()
                ));
            if self.offline {
                if !has_release_file(&lists) {
                    return Err(BootstrapError::NoCachedLists(lists));
                }
                c.arg("--skip=update")
                    .arg("--setup-hook=mkdir -p \"$1\"/var/lib/apt/lists")
                    .arg(format!(
                        "--setup-hook=sync-in {} /var/lib/apt/lists/",
                        lists.display()
                    ));
            } else {
                std::fs::create_dir_all(&lists).map_err(io_err(&lists))?;
                c.arg(format!(
                    "--customize-hook=sync-out /var/lib/apt/lists {}",
                    lists.display()
                ));
            }
        } else if self.offline {
            return Err(BootstrapError::NoCachedLists(PathBuf::from(
                "(no --cache given)",
            )));
        }
        if self.offline {
            // A closed port on loopback: any attempt to download fails the compose.
            for var in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
                c.env(var, "http://127.0.0.1:9");
            }
        }
        c.arg(&spec.debian.suite).arg(target);
        for s in self.manifest.sources() {
            c.arg(s);
        }
        Ok(c)
    }

    /// Build the tree at `target` (which must not exist or be empty).
    pub fn run(&self, target: &Path) -> Result<Downloads, BootstrapError> {
        let _lock = self.lock_cache()?;
        let before = self.cached_debs()?;
        let mut c = self.command(target)?;
        tracing::info!("running {}", cmd::display(&c));
        cmd::run(&mut c).map_err(explain)?;
        let after = self.cached_debs()?;
        let mut d = Downloads::default();
        for (name, size) in &after {
            if before.iter().any(|(n, _)| n == name) {
                d.reused += 1;
            } else {
                d.packages += 1;
                d.bytes += size;
            }
        }
        Ok(d)
    }

    /// Hold an exclusive lock on the cache for the whole run, so that composes sharing a cache
    /// never read a package another one is still copying in.
    fn lock_cache(&self) -> Result<Option<std::fs::File>, BootstrapError> {
        let Some(cache) = self.cache else {
            return Ok(None);
        };
        std::fs::create_dir_all(cache).map_err(io_err(cache))?;
        let path = cache.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(&path)(e.into()))?;
        Ok(Some(f))
    }

    fn cached_debs(&self) -> Result<BTreeSet<(String, u64)>, BootstrapError> {
        let Some(dir) = self.archives() else {
            return Ok(BTreeSet::new());
        };
        let mut out = BTreeSet::new();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for e in rd {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".deb") {
                let len = e.metadata().map_err(io_err(&e.path()))?.len();
                out.insert((name, len));
            }
        }
        Ok(out)
    }
}

fn has_release_file(lists: &Path) -> bool {
    std::fs::read_dir(lists)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with("Release"))
        })
        .unwrap_or(false)
}

/// Turn apt's messages in a failed mmdebstrap run into an error that names the manifest key.
pub fn explain(err: CmdError) -> BootstrapError {
    let CmdError::Failed { stderr, .. } = &err else {
        return err.into();
    };
    let line_with = |needle: &str| {
        stderr
            .lines()
            .find(|l| l.contains(needle))
            .map(|l| l.trim().to_string())
    };
    for needle in [
        "Could not connect",
        "Could not resolve",
        "Failed to fetch",
        "Unable to connect",
        "Connection failed",
        "Temporary failure resolving",
    ] {
        if let Some(line) = line_with(needle) {
            return BootstrapError::Unreachable { detail: line };
        }
    }
    if let Some(line) = line_with("Unable to locate package ") {
        let package = line
            .rsplit("Unable to locate package ")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        return BootstrapError::MissingPackage {
            package,
            detail: line,
        };
    }
    if let Some(line) = line_with("has no installation candidate") {
        let package = line
            .split('\'')
            .nth(1)
            .or_else(|| line.split_whitespace().nth(2))
            .unwrap_or_default()
            .to_string();
        return BootstrapError::MissingPackage {
            package,
            detail: line,
        };
    }
    if let Some(line) = line_with("but it is not installable")
        .or_else(|| line_with("but it is not going to be installed"))
    {
        return BootstrapError::ExcludedNeeded { detail: line };
    }
    err.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn manifest(extra: &str) -> Manifest {
        let text = format!(
            "[release]\nstream = \"stable\"\n[debian]\nsuite = \"bookworm\"\nmirrors = [\"http://m/debian\"]\n{extra}"
        );
        Manifest::parse(text.as_bytes(), Path::new("m.toml"), "/".into()).unwrap()
    }

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn command_lines() {
        let staging = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let m = manifest(
            "[packages]\ninstall = [\"systemd\", \"udev\"]\nexclude = [\"apt\"]\n[dpkg]\npath-exclude = [\"/usr/share/doc/*\"]\npath-include = [\"/usr/share/doc/*/copyright\"]\n",
        );
        let b = Bootstrap {
            manifest: &m,
            cache: Some(cache.path()),
            offline: false,
            epoch: 42,
            staging: staging.path(),
        };
        let c = b.command(Path::new("/t")).unwrap();
        let a = args(&c);
        for want in [
            "--variant=minbase",
            "--include=systemd,udev",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--skip=essential/unlink",
            "bookworm",
            "/t",
            "deb http://m/debian bookworm main",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        let exclude_pos = a.iter().position(|x| x.contains("path-exclude")).unwrap();
        let include_pos = a.iter().position(|x| x.contains("path-include")).unwrap();
        assert!(exclude_pos < include_pos, "includes must follow excludes");
        assert!(a
            .iter()
            .any(|x| x.starts_with("--customize-hook=sync-out /var/lib/apt/lists")));
        let pref = std::fs::read_to_string(staging.path().join("keel-exclude")).unwrap();
        assert_eq!(pref, "Package: apt\nPin: release *\nPin-Priority: -1\n");
        let env: Vec<_> = c.get_envs().collect();
        assert!(env
            .iter()
            .any(|(k, v)| *k == "SOURCE_DATE_EPOCH" && *v == Some("42".as_ref())));

        // Offline without cached lists is refused; with lists it skips the update and closes the network.
        let off = Bootstrap { offline: true, ..b };
        assert!(matches!(
            off.command(Path::new("/t")),
            Err(BootstrapError::NoCachedLists(_))
        ));
        std::fs::write(off.lists().unwrap().join("x_InRelease"), "").unwrap();
        let c = off.command(Path::new("/t")).unwrap();
        assert!(args(&c).iter().any(|x| x == "--skip=update"));
        assert!(c.get_envs().any(|(k, _)| k == "http_proxy"));
    }

    #[test]
    fn apt_errors_name_the_key() {
        let failed = |stderr: &str| CmdError::Failed {
            command: "mmdebstrap".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        };
        for (stderr, want) in [
            ("E: Unable to locate package no-such-pkg\nE: failed", "\"no-such-pkg\" (manifest key packages.install)"),
            ("E: Package 'foo' has no installation candidate", "\"foo\" (manifest key packages.install)"),
            (" udev : Depends: libudev1 but it is not installable", "packages.exclude"),
            ("E: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9", "debian.mirrors"),
            ("something else", "something else"),
        ] {
            let msg = explain(failed(stderr)).to_string();
            assert!(msg.contains(want), "{stderr:?} -> {msg}");
        }
    }

    #[test]
    fn lists_key_depends_on_sources() {
        let a = lists_key(&["deb http://a bookworm main".into()]);
        let b = lists_key(&["deb http://b bookworm main".into()]);
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
