//! Remote definitions in the repository config, in OSTree's GKeyFile form so that `ostree`
//! reads them too:
//!
//! ```text
//! [remote "origin"]
//! url=http://127.0.0.1:8080/repo
//! gpg-verify=false
//! sign-verify=true
//! sign-verify-summary=true
//! verification-ed25519-file=/etc/keel/origin.pub
//! summary-max-age-secs=604800
//! tls-ca-path=/etc/keel/updates-ca.pem
//! ```
//!
//! `tls-ca-path` is OSTree's: the PEM bundle an `https://` remote's certificate must chain to,
//! in place of the node's trust store (which is used when it is unset).
//!
//! `summary-max-age-secs` is Keel's (OSTree ignores it): a summary older than this is reported
//! as stale (see [`crate::freshness`]); 0 turns the check off; default 7 days.
//!
//! Edits replace or remove one `[remote "NAME"]` section and keep every other line as it was;
//! the file is replaced atomically.

use crate::keys::{self, KeyError};
use ed25519_dalek::VerifyingKey;
use keel_http::CaRoots;
use keel_utils::keyfile::{self, KeyFile, KeyFileError};
use std::path::{Path, PathBuf};

/// Problems with remote definitions.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No such remote.
    #[error("no remote `{name}` in {} (add it with `keel repo remote add {name} URL`)", path.display())]
    NoSuchRemote {
        /// Remote name.
        name: String,
        /// The config file.
        path: PathBuf,
    },
    /// The remote exists already.
    #[error("remote `{name}` already exists in {} (delete it first with `keel repo remote delete {name}`)", path.display())]
    Exists {
        /// Remote name.
        name: String,
        /// The config file.
        path: PathBuf,
    },
    /// A value is unusable.
    #[error("{}: remote `{name}`: {reason}", path.display())]
    Invalid {
        /// Remote name.
        name: String,
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The config is not a key file GLib (and so OSTree) reads.
    #[error("{}: {source}; fix the file (ostree refuses it too)", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// What is wrong, and where.
        source: KeyFileError,
    },
    /// A key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// One remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Name (`origin`).
    pub name: String,
    /// Base URL of the archive repository (`http://`, `https://` or `file://`).
    pub url: String,
    /// Commits must carry a valid ed25519 signature.
    pub sign_verify: bool,
    /// A summary, when the server has one, must carry a valid ed25519 signature.
    pub sign_verify_summary: bool,
    /// File of trusted public keys (base64, one per line).
    pub ed25519_file: Option<PathBuf>,
    /// A trusted public key given inline (base64).
    pub ed25519_key: Option<String>,
    /// `summary-max-age-secs` as written (checked by [`Remote::summary_max_age_secs`]).
    pub summary_max_age: Option<String>,
    /// `tls-ca-path`: the only CAs trusted for this remote (unset: the node's trust store).
    pub tls_ca_path: Option<PathBuf>,
}

impl Remote {
    /// The keys trusted for this remote (empty when it has none configured).
    pub fn trusted_keys(&self, config_path: &Path) -> Result<Vec<VerifyingKey>, ConfigError> {
        let mut out = Vec::new();
        if let Some(f) = &self.ed25519_file {
            out.extend(keys::load_public_file(f)?);
        }
        if let Some(k) = &self.ed25519_key {
            out.push(
                keys::parse_public(k).map_err(|reason| ConfigError::Invalid {
                    name: self.name.clone(),
                    path: config_path.to_path_buf(),
                    reason: format!("verification-ed25519-key: {reason}"),
                })?,
            );
        }
        if (self.sign_verify || self.sign_verify_summary) && out.is_empty() {
            return Err(ConfigError::Invalid {
                name: self.name.clone(),
                path: config_path.to_path_buf(),
                reason: "sign-verify is on but no verification-ed25519-file or -key is set".into(),
            });
        }
        Ok(out)
    }

    /// The age past which the remote's summary is reported stale (0: never); the default
    /// when unset.
    pub fn summary_max_age_secs(&self, config_path: &Path) -> Result<u64, ConfigError> {
        let Some(v) = &self.summary_max_age else {
            return Ok(crate::freshness::DEFAULT_MAX_AGE_SECS);
        };
        v.parse().map_err(|_| ConfigError::Invalid {
            name: self.name.clone(),
            path: config_path.to_path_buf(),
            reason: format!(
                "summary-max-age-secs={v} is not a number of seconds (e.g. 604800 for 7 days; 0 \
                 turns the check off)"
            ),
        })
    }

    /// The CAs this remote's certificate must chain to: `tls-ca-path` when set, else
    /// `node_store` (the trust store of the node the pull is for).
    pub fn ca_roots(&self, node_store: CaRoots) -> CaRoots {
        match &self.tls_ca_path {
            Some(p) => CaRoots::Only(p.clone()),
            None => node_store,
        }
    }

    fn section_lines(&self) -> Vec<String> {
        let mut l = vec![
            section_header(&self.name),
            format!("url={}", self.url),
            "gpg-verify=false".to_string(),
        ];
        if self.sign_verify {
            l.push("sign-verify=true".into());
        }
        if self.sign_verify_summary {
            l.push("sign-verify-summary=true".into());
        }
        if let Some(f) = &self.ed25519_file {
            l.push(format!("verification-ed25519-file={}", f.display()));
        }
        if let Some(k) = &self.ed25519_key {
            l.push(format!("verification-ed25519-key={k}"));
        }
        if let Some(a) = &self.summary_max_age {
            l.push(format!("summary-max-age-secs={a}"));
        }
        if let Some(p) = &self.tls_ca_path {
            l.push(format!("tls-ca-path={}", p.display()));
        }
        l
    }
}

fn section_header(name: &str) -> String {
    format!("[remote \"{name}\"]")
}

/// The remote a group name (`remote "NAME"`) defines.
fn remote_name(group: &str) -> Option<&str> {
    group.strip_prefix("remote \"")?.strip_suffix('"')
}

/// `mode=` in the `[core]` section of a repository config (none when the config is not a key
/// file).
pub fn core_mode(config: &str) -> Option<&str> {
    keyfile::lookup(config, "core", "mode").ok().flatten()
}

/// The config file of a repository.
pub fn config_path(repo: &Path) -> PathBuf {
    repo.join("config")
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Every remote defined in `config` text, in file order, read as GLib (and so OSTree) reads
/// the file (see `keel_utils::keyfile`).
pub fn parse_remotes(config: &str) -> Result<Vec<Remote>, KeyFileError> {
    let kf = KeyFile::parse(config)?;
    let mut out = Vec::new();
    for group in kf.groups() {
        let Some(name) = remote_name(group) else {
            continue;
        };
        let string = |key| -> Result<Option<String>, KeyFileError> {
            Ok(kf.string(group, key)?.map(|v| v.into_owned()))
        };
        out.push(Remote {
            name: name.to_string(),
            url: string("url")?.unwrap_or_default(),
            sign_verify: kf.boolean(group, "sign-verify")?.unwrap_or(false),
            sign_verify_summary: kf.boolean(group, "sign-verify-summary")?.unwrap_or(false),
            ed25519_file: string("verification-ed25519-file")?.map(PathBuf::from),
            ed25519_key: string("verification-ed25519-key")?,
            summary_max_age: string("summary-max-age-secs")?,
            tls_ca_path: string("tls-ca-path")?.map(PathBuf::from),
        });
    }
    Ok(out)
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<Remote>, ConfigError> {
    parse_remotes(text).map_err(|source| ConfigError::Syntax {
        path: path.to_path_buf(),
        source,
    })
}

/// All remotes of the repository at `repo`.
pub fn list(repo: &Path) -> Result<Vec<Remote>, ConfigError> {
    let path = config_path(repo);
    parse_file(&path, &read(&path)?)
}

/// One remote by name.
pub fn get(repo: &Path, name: &str) -> Result<Remote, ConfigError> {
    let path = config_path(repo);
    let remote = parse_file(&path, &read(&path)?)?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ConfigError::NoSuchRemote {
            name: name.to_string(),
            path: path.clone(),
        })?;
    if remote.url.is_empty() {
        return Err(ConfigError::Invalid {
            name: name.to_string(),
            path,
            reason: "no url= set".into(),
        });
    }
    Ok(remote)
}

/// `config` without the section of remote `name`; None when there is no such section.
fn without_section(config: &str, name: &str) -> Option<String> {
    let mut out = String::new();
    let mut skipping = false;
    let mut found = false;
    for line in config.lines() {
        if let Some(group) = keyfile::group_header(line) {
            skipping = remote_name(group) == Some(name);
            found |= skipping;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    found.then_some(out)
}

fn write(path: &Path, text: &str) -> Result<(), ConfigError> {
    keel_utils::fsutil::write_atomic(path, text.as_bytes(), 0o644).map_err(|source| {
        ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Add a remote (an error if one of that name exists).
pub fn add(repo: &Path, remote: &Remote) -> Result<(), ConfigError> {
    let path = config_path(repo);
    let invalid = |reason: &str| ConfigError::Invalid {
        name: remote.name.clone(),
        path: path.clone(),
        reason: reason.to_string(),
    };
    if !valid_name(&remote.name) {
        return Err(invalid("a remote name uses only letters, digits and `-._`"));
    }
    let scheme_ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| remote.url.starts_with(s));
    if !scheme_ok {
        return Err(invalid(
            "the URL must start with http://, https:// or file://",
        ));
    }
    remote.trusted_keys(&path)?;
    remote.summary_max_age_secs(&path)?;
    let mut text = read(&path)?;
    if parse_file(&path, &text)?
        .iter()
        .any(|r| r.name == remote.name)
    {
        return Err(ConfigError::Exists {
            name: remote.name.clone(),
            path,
        });
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    for l in remote.section_lines() {
        text.push_str(&l);
        text.push('\n');
    }
    write(&path, &text)
}

/// Delete a remote.
pub fn delete(repo: &Path, name: &str) -> Result<(), ConfigError> {
    let path = config_path(repo);
    let text = read(&path)?;
    let new = without_section(&text, name).ok_or_else(|| ConfigError::NoSuchRemote {
        name: name.to_string(),
        path: path.clone(),
    })?;
    write(&path, &format!("{}\n", new.trim_end_matches('\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(name: &str, url: &str) -> Remote {
        Remote {
            name: name.into(),
            url: url.into(),
            sign_verify: false,
            sign_verify_summary: false,
            ed25519_file: None,
            ed25519_key: None,
            summary_max_age: None,
            tls_ca_path: None,
        }
    }

    #[test]
    fn parse_table() {
        let cfg = "[core]\nrepo_version=1\nmode=bare\n\n[remote \"a\"]\nurl=http://x/\ngpg-verify=false\nsign-verify=true\nverification-ed25519-key=K\n\n[remote \"b\"]\nurl = file:///r\n[other]\nurl=nope\n";
        let got = parse_remotes(cfg).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].url, "http://x/");
        assert!(got[0].sign_verify && !got[0].sign_verify_summary);
        assert_eq!(got[0].ed25519_key.as_deref(), Some("K"));
        assert_eq!(got[1].url, "file:///r");
        assert!(!got[1].sign_verify);
    }

    #[test]
    fn add_list_delete_keep_other_sections() {
        let d = tempfile::tempdir().unwrap();
        let base = "[core]\nrepo_version=1\nmode=archive-z2\n";
        std::fs::write(d.path().join("config"), base).unwrap();
        add(d.path(), &remote("origin", "http://127.0.0.1:1/")).unwrap();
        add(d.path(), &remote("second", "file:///srv/repo")).unwrap();
        assert!(matches!(
            add(d.path(), &remote("origin", "http://other/")),
            Err(ConfigError::Exists { .. })
        ));
        for (name, url, want) in [
            ("bad name", "http://x/", "letters"),
            ("ok", "ftp://x/", "http://"),
        ] {
            let err = add(d.path(), &remote(name, url)).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let names: Vec<String> = list(d.path())
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["origin", "second"]);
        delete(d.path(), "origin").unwrap();
        assert!(matches!(
            get(d.path(), "origin"),
            Err(ConfigError::NoSuchRemote { .. })
        ));
        assert_eq!(get(d.path(), "second").unwrap().url, "file:///srv/repo");
        delete(d.path(), "second").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("config")).unwrap(),
            base
        );
    }

    #[test]
    fn summary_max_age_defaults_parses_and_names_a_bad_value() {
        let cfg = "[remote \"a\"]\nurl=http://x/\n[remote \"b\"]\nurl=http://y/\nsummary-max-age-secs=60\n[remote \"c\"]\nurl=http://z/\nsummary-max-age-secs=7d\n";
        let r = parse_remotes(cfg).unwrap();
        let p = Path::new("/r/config");
        assert_eq!(r[0].summary_max_age_secs(p).unwrap(), 7 * 24 * 3600);
        assert_eq!(r[1].summary_max_age_secs(p).unwrap(), 60);
        let err = r[2].summary_max_age_secs(p).unwrap_err().to_string();
        assert!(
            err.contains("/r/config") && err.contains("summary-max-age-secs=7d"),
            "{err}"
        );
        assert!(r[1]
            .section_lines()
            .contains(&"summary-max-age-secs=60".to_string()));
    }

    #[test]
    fn tls_ca_path_replaces_the_node_store_and_round_trips() {
        let cfg = "[remote \"a\"]\nurl=https://x/\ntls-ca-path = /etc/keel/ca.pem\n[remote \"b\"]\nurl=https://y/\n";
        let r = parse_remotes(cfg).unwrap();
        let node = CaRoots::SystemAt(PathBuf::from("/d/etc/ssl/certs/ca-certificates.crt"));
        assert_eq!(
            r[0].ca_roots(node.clone()),
            CaRoots::Only(PathBuf::from("/etc/keel/ca.pem"))
        );
        assert_eq!(r[1].ca_roots(node.clone()), node);
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config"), "[core]\nrepo_version=1\n").unwrap();
        add(d.path(), &r[0]).unwrap();
        assert_eq!(get(d.path(), "a").unwrap(), r[0]);
    }

    #[test]
    fn sign_verify_needs_a_key() {
        let mut r = remote("s", "http://x/");
        r.sign_verify = true;
        let err = r
            .trusted_keys(Path::new("/r/config"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no verification-ed25519"), "{err}");
    }

    /// Remotes are read as GLib reads the config: a value given twice keeps the last one, a
    /// section given twice is one remote, escapes are resolved, booleans are GLib's (`yes` was
    /// taken as true here but refused by OSTree), and a file OSTree refuses is refused.
    #[test]
    fn remotes_are_read_as_glib_reads_them() {
        let cfg = "[remote \"a\"]\n# url=http://old/\nurl=http://x/\nurl=http://y/\n\
                   [remote \"b\"]\nurl=file:///r\n[remote \"a\"]\nsign-verify=1\n\
                   verification-ed25519-file=/etc/k\\sey\n";
        let got = parse_remotes(cfg).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].url, "http://y/");
        assert!(got[0].sign_verify);
        assert_eq!(got[0].ed25519_file.as_deref(), Some(Path::new("/etc/k ey")));
        let e = parse_remotes("[remote \"a\"]\nurl=http://x/\nsign-verify=yes\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`yes` is not a boolean"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config"), "url=http://x/\n").unwrap();
        let e = list(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("config: line 1: key `url` comes before any [group]"),
            "{e}"
        );
        assert_eq!(
            core_mode("[core]\nmode=bare\nmode=archive-z2\n"),
            Some("archive-z2")
        );
        assert_eq!(core_mode("mode=bare\n"), None);
    }
}
