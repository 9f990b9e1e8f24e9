//! The compose manifest: a TOML file that names everything that goes into an OS tree.
//!
//! Every key is documented on its field below; `docs/src/building/manifest.md` is the user-facing page and
//! lists the same keys. Unknown keys are an error (naming the key), so a typo never silently
//! drops a package or a unit.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What can be wrong with a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown/mistyped key (the message names it).
    #[error("manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A key has a value that parses but cannot be used.
    #[error("manifest {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A parsed manifest, plus where it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest content.
    pub spec: Spec,
    /// Directory of the manifest file: relative paths in it are relative to this.
    pub dir: PathBuf,
    /// sha256 of the manifest file's bytes (lowercase hex), recorded in the commit.
    pub sha256: String,
}

/// The manifest's keys (TOML, kebab-case).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    /// Release identity: stream and version prefix.
    pub release: Release,
    /// Where packages come from.
    pub debian: Debian,
    /// Packages to install and to keep out.
    #[serde(default)]
    pub packages: Packages,
    /// dpkg path filters applied while packages are unpacked (trims docs, locales, modules).
    #[serde(default)]
    pub dpkg: DpkgFilters,
    /// Directories (relative to the manifest) whose content is copied over the tree, in order,
    /// after packages are installed.
    #[serde(default)]
    pub overlays: Vec<PathBuf>,
    /// systemd units to enable, disable and mask.
    #[serde(default)]
    pub systemd: SystemdUnits,
    /// The kernel, its default arguments and the initramfs.
    #[serde(default)]
    pub kernel: Kernel,
    /// Users created at boot by systemd-sysusers.
    #[serde(default)]
    pub users: Vec<User>,
    /// Groups created at boot by systemd-sysusers.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Fields written to `/usr/lib/os-release` (e.g. `NAME`, `ID`, `PRETTY_NAME`); compose adds
    /// `VERSION`, `VERSION_ID`, `IMAGE_VERSION` and `OSTREE_VERSION`.
    #[serde(default)]
    pub os_release: BTreeMap<String, String>,
    /// Where the node-side `keel` binary comes from.
    #[serde(default)]
    pub keel: KeelBinary,
    /// Scripts run inside the tree (chroot), in order, after overlays and before unit states are
    /// set (so a script may install a unit that `[systemd]` enables).
    #[serde(default)]
    pub postprocess: Vec<Postprocess>,
    /// Fail the compose when the tree is larger than this many MiB (uncompressed).
    pub size_limit_mib: Option<u64>,
}

/// `[release]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Release {
    /// Release stream: `stable`, `testing` or `next`. The ref is `keel/<stream>/x86_64`.
    pub stream: String,
    /// First field of the version (the Debian major, e.g. `12`). Defaults from `debian.suite`.
    pub version_prefix: Option<String>,
}

/// `[debian]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Debian {
    /// Debian suite or codename, e.g. `bookworm`.
    pub suite: String,
    /// Mirror URLs; each becomes `deb <url> <suite> <components>`.
    pub mirrors: Vec<String>,
    /// Archive components, e.g. `["main"]`.
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Further apt sources as one-line `sources.list` entries (e.g. the security archive).
    #[serde(default)]
    pub extra_sources: Vec<String>,
    /// mmdebstrap variant: the base package set (`essential`, `minbase`, `important`).
    #[serde(default = "default_variant")]
    pub variant: String,
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

fn default_variant() -> String {
    "minbase".into()
}

/// `[packages]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Packages {
    /// Packages to install (on top of the variant's base set). Recommends are not installed.
    #[serde(default)]
    pub install: Vec<String>,
    /// Packages that must never be installed; a package that depends on one fails the compose.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `[dpkg]`: dpkg `--path-exclude`/`--path-include` globs. All excludes come first, then all
/// includes (a later match wins), so includes re-admit paths under an excluded directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DpkgFilters {
    /// Globs of package paths not unpacked, e.g. `/usr/share/doc/*`.
    #[serde(default)]
    pub path_exclude: Vec<String>,
    /// Globs re-admitted after the excludes, e.g. `/usr/share/doc/*/copyright`.
    #[serde(default)]
    pub path_include: Vec<String>,
}

/// `[systemd]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SystemdUnits {
    /// Units enabled with `systemctl enable`.
    #[serde(default)]
    pub enable: Vec<String>,
    /// Units disabled with `systemctl disable`.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Units masked with `systemctl mask`.
    #[serde(default)]
    pub mask: Vec<String>,
}

/// `[kernel]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Kernel {
    /// Default kernel arguments, written to `/usr/lib/keel/kargs` for the image builder.
    #[serde(default)]
    pub args: Vec<String>,
    /// Build the initramfs with dracut (needs a kernel and dracut in the tree).
    #[serde(default)]
    pub initramfs: bool,
    /// dracut modules added to the initramfs besides the defaults (`--add`).
    #[serde(default)]
    pub dracut_modules: Vec<String>,
    /// dracut modules left out of the initramfs (`--omit`).
    #[serde(default)]
    pub dracut_omit: Vec<String>,
}

/// `[[users]]`: a `u` line (and `m` lines for `groups`) in `/usr/lib/sysusers.d/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct User {
    /// Login name.
    pub name: String,
    /// Numeric uid; allocated by systemd-sysusers when absent.
    pub uid: Option<u32>,
    /// GECOS comment.
    #[serde(default)]
    pub gecos: String,
    /// Home directory (created at boot by tmpfiles, owned by the user, mode 0700).
    pub home: Option<String>,
    /// Login shell.
    pub shell: Option<String>,
    /// Supplementary groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[[groups]]`: a `g` line in `/usr/lib/sysusers.d/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Numeric gid; allocated by systemd-sysusers when absent.
    pub gid: Option<u32>,
}

/// `[keel]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeelBinary {
    /// Install the node-side `keel` binary as `/usr/bin/keel`, its man pages in
    /// `/usr/share/man/man1` and the dracut module.
    #[serde(default)]
    pub install: bool,
    /// Binary to install, relative to the manifest; default: the `keel` running the compose.
    pub binary: Option<PathBuf>,
}

/// `[[postprocess]]`: a shell script run with `sh -eu` inside the tree (chroot, with /proc,
/// /sys and /dev mounted). Exactly one of `script` and `file` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Postprocess {
    /// Name shown in logs and errors.
    pub name: String,
    /// Inline script.
    pub script: Option<String>,
    /// Script file, relative to the manifest.
    pub file: Option<PathBuf>,
}

/// Debian codename → major version, for the default version prefix.
pub fn debian_major(suite: &str) -> Option<&'static str> {
    match suite {
        "bullseye" => Some("11"),
        "bookworm" => Some("12"),
        "trixie" => Some("13"),
        "forky" => Some("14"),
        _ => None,
    }
}

/// Stream name → the stream code used in versions (next 1, testing 2, stable 3).
pub fn stream_code(stream: &str) -> Option<u32> {
    match stream {
        "next" => Some(1),
        "testing" => Some(2),
        "stable" => Some(3),
        _ => None,
    }
}

const VARIANTS: &[&str] = &[
    "essential",
    "minbase",
    "required",
    "important",
    "debian",
    "standard",
];

impl Manifest {
    /// Read and check a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Manifest::parse(&bytes, path, dir)
    }

    /// Parse manifest bytes; `path` is used in messages, `dir` resolves relative paths.
    pub fn parse(bytes: &[u8], path: &Path, dir: PathBuf) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: format!("not UTF-8: {e}"),
        })?;
        let spec: Spec = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let sha256 = hex(&Sha256::digest(bytes));
        let m = Manifest { spec, dir, sha256 };
        m.check(path)?;
        Ok(m)
    }

    fn check(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |key: &str, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let s = &self.spec;
        if stream_code(&s.release.stream).is_none() {
            return Err(invalid(
                "release.stream",
                format!(
                    "unknown stream {:?}; use stable, testing or next",
                    s.release.stream
                ),
            ));
        }
        self.version_prefix()
            .ok_or_else(|| {
                invalid(
                    "release.version-prefix",
                    format!(
                        "suite {:?} has no known Debian major; set release.version-prefix",
                        s.debian.suite
                    ),
                )
            })
            .and_then(|p| {
                if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(())
                } else {
                    Err(invalid(
                        "release.version-prefix",
                        format!("{p:?} is not a number"),
                    ))
                }
            })?;
        if s.debian.mirrors.is_empty() {
            return Err(invalid(
                "debian.mirrors",
                "at least one mirror URL is needed".into(),
            ));
        }
        for m in &s.debian.mirrors {
            if !(m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file://"))
            {
                return Err(invalid(
                    "debian.mirrors",
                    format!("{m:?} is not an http://, https:// or file:// URL"),
                ));
            }
        }
        if !VARIANTS.contains(&s.debian.variant.as_str()) {
            return Err(invalid(
                "debian.variant",
                format!(
                    "{:?} is not one of {}",
                    s.debian.variant,
                    VARIANTS.join(", ")
                ),
            ));
        }
        for (key, list) in [
            ("packages.install", &s.packages.install),
            ("packages.exclude", &s.packages.exclude),
        ] {
            if let Some(bad) = list.iter().find(|p| !is_package_name(p)) {
                return Err(invalid(
                    key,
                    format!("{bad:?} is not a Debian package name"),
                ));
            }
        }
        if let Some(p) = s
            .packages
            .install
            .iter()
            .find(|p| s.packages.exclude.contains(p))
        {
            return Err(invalid(
                "packages.exclude",
                format!("{p:?} is both installed and excluded"),
            ));
        }
        for (key, list) in [
            ("systemd.enable", &s.systemd.enable),
            ("systemd.disable", &s.systemd.disable),
            ("systemd.mask", &s.systemd.mask),
        ] {
            if let Some(bad) = list.iter().find(|u| !is_unit_name(u)) {
                return Err(invalid(key, format!("{bad:?} is not a systemd unit name")));
            }
        }
        for (i, p) in s.postprocess.iter().enumerate() {
            if p.script.is_some() == p.file.is_some() {
                return Err(invalid(
                    &format!("postprocess[{i}] ({})", p.name),
                    "set exactly one of `script` and `file`".into(),
                ));
            }
        }
        for key in s.os_release.keys() {
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(invalid(
                    &format!("os-release.{key}"),
                    "os-release field names are upper case letters, digits and _".into(),
                ));
            }
        }
        for u in &s.users {
            if !is_user_name(&u.name) {
                return Err(invalid(
                    "users.name",
                    format!("{:?} is not a valid user name", u.name),
                ));
            }
        }
        for g in &s.groups {
            if !is_user_name(&g.name) {
                return Err(invalid(
                    "groups.name",
                    format!("{:?} is not a valid group name", g.name),
                ));
            }
        }
        Ok(())
    }

    /// The version prefix: `release.version-prefix`, or the suite's Debian major.
    pub fn version_prefix(&self) -> Option<&str> {
        self.spec
            .release
            .version_prefix
            .as_deref()
            .or_else(|| debian_major(&self.spec.debian.suite))
    }

    /// The ref this manifest's commits go to.
    pub fn ref_name(&self) -> String {
        format!(
            "keel/{}/{}",
            self.spec.release.stream,
            std::env::consts::ARCH
        )
    }

    /// A path from the manifest, resolved against the manifest's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// The apt sources, one `sources.list` line each, in the order mmdebstrap gets them.
    pub fn sources(&self) -> Vec<String> {
        let d = &self.spec.debian;
        let mut out: Vec<String> = d
            .mirrors
            .iter()
            .map(|m| format!("deb {m} {} {}", d.suite, d.components.join(" ")))
            .collect();
        out.extend(d.extra_sources.iter().cloned());
        out
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_package_name(p: &str) -> bool {
    p.len() >= 2
        && p.as_bytes()[0].is_ascii_alphanumeric()
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

fn is_unit_name(u: &str) -> bool {
    let ok_suffix = [
        ".service",
        ".socket",
        ".timer",
        ".target",
        ".path",
        ".mount",
        ".automount",
        ".swap",
        ".slice",
    ]
    .iter()
    .any(|s| u.ends_with(s) && u.len() > s.len());
    ok_suffix
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:\\".contains(&b))
}

fn is_user_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && !n.starts_with('-')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[release]
stream = "stable"
[debian]
suite = "bookworm"
mirrors = ["http://deb.debian.org/debian"]
"#;

    fn parse(extra: &str) -> Result<Manifest, ManifestError> {
        let text = format!("{BASE}{extra}");
        Manifest::parse(text.as_bytes(), Path::new("m.toml"), PathBuf::from("/m"))
    }

    #[test]
    fn good_manifests() {
        let m = parse("").unwrap();
        assert_eq!(m.version_prefix(), Some("12"));
        assert_eq!(m.spec.debian.variant, "minbase");
        assert_eq!(
            m.sources(),
            vec!["deb http://deb.debian.org/debian bookworm main"]
        );
        assert_eq!(
            m.ref_name(),
            format!("keel/stable/{}", std::env::consts::ARCH)
        );
        assert_eq!(m.sha256.len(), 64);
        let text = format!(
            "overlays = [\"overlay\"]\nsize-limit-mib = 900\n{BASE}{}",
            r#"
[packages]
install = ["systemd", "libstdc++6"]
exclude = ["apt"]
[systemd]
enable = ["ssh.service", "getty@ttyS0.service"]
[[users]]
name = "core"
uid = 1000
groups = ["sudo"]
[os-release]
NAME = "Keel"
[[postprocess]]
name = "x"
script = "true"
"#
        );
        let m = Manifest::parse(text.as_bytes(), Path::new("m.toml"), PathBuf::from("/m")).unwrap();
        assert_eq!(m.spec.packages.install.len(), 2);
        assert_eq!(m.resolve(Path::new("overlay")), PathBuf::from("/m/overlay"));
        assert_eq!(m.spec.size_limit_mib, Some(900));
    }

    #[test]
    fn bad_manifests_name_the_key() {
        for (extra, want) in [
            ("colour = 1\n", "colour"),
            ("[packages]\ninstal = [\"x\"]\n", "instal"),
            ("[packages]\ninstall = [\"Bad Name\"]\n", "packages.install"),
            (
                "[packages]\ninstall = [\"vim\"]\nexclude = [\"vim\"]\n",
                "packages.exclude",
            ),
            ("[systemd]\nenable = [\"ssh\"]\n", "systemd.enable"),
            ("[[postprocess]]\nname = \"p\"\n", "postprocess[0] (p)"),
            ("[os-release]\nname = \"x\"\n", "os-release.name"),
            ("[[users]]\nname = \"a b\"\n", "users.name"),
            ("[kernel]\nargs = \"quiet\"\n", "args"),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(want), "{extra:?}: {err}");
        }
        let bad_stream = BASE.replace("\"stable\"", "\"beta\"");
        let err = Manifest::parse(bad_stream.as_bytes(), Path::new("m.toml"), "/".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("release.stream"), "{err}");
        let bad_suite = BASE.replace("bookworm", "sid");
        let err = Manifest::parse(bad_suite.as_bytes(), Path::new("m.toml"), "/".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("release.version-prefix"), "{err}");
        let bad_mirror = BASE.replace("http://deb", "deb");
        let err = Manifest::parse(bad_mirror.as_bytes(), Path::new("m.toml"), "/".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("debian.mirrors"), "{err}");
    }

    #[test]
    fn stream_codes() {
        for (s, c) in [
            ("next", Some(1)),
            ("testing", Some(2)),
            ("stable", Some(3)),
            ("x", None),
        ] {
            assert_eq!(stream_code(s), c);
        }
    }
}
