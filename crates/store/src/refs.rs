//! Refs (`refs/heads`, `refs/remotes`) and rev resolution.

use crate::checksum::Checksum;
use crate::error::{IoPath, StoreError};
use crate::objects::ObjectType;
use crate::repo::Repo;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Is `name` a valid ref: `/`-separated components of `[A-Za-z0-9_][-._A-Za-z0-9_]*`?
pub fn valid_ref_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|c| {
            let mut chars = c.chars();
            chars
                .next()
                .is_some_and(|f| f.is_alphanumeric() || f == '_')
                && chars.all(|ch| ch.is_alphanumeric() || "-._".contains(ch))
        })
}

fn read_ref_file(p: &Path) -> Result<Option<Checksum>, StoreError> {
    // O_NONBLOCK: a FIFO (or device) where a ref should be must not block the reader; the
    // handle's own type is checked, so nothing can be swapped in between.
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(p);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(p),
    };
    let ft = f.metadata().at(p)?.file_type();
    if ft.is_dir() {
        return Ok(None);
    }
    if !ft.is_file() {
        return Err(StoreError::Invalid(format!(
            "{} is {}, not a ref file; remove it",
            p.display(),
            crate::fsck::file_type_name(ft)
        )));
    }
    let mut s = String::new();
    io::Read::read_to_string(&mut f, &mut s).at(p)?;
    s.trim_end()
        .parse()
        .map(Some)
        .map_err(|e| StoreError::Invalid(format!("{}: {e}", p.display())))
}

fn walk_refs(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, Checksum)>,
) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(dir),
    };
    for e in entries {
        let e = e.at(dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let full = format!("{prefix}{name}");
        if e.file_type().at(&e.path())?.is_dir() {
            walk_refs(&e.path(), &format!("{full}/"), out)?;
        } else if let Some(c) = read_ref_file(&e.path())? {
            out.push((full, c));
        }
    }
    Ok(())
}

impl Repo {
    /// The file holding a ref: `refs/heads/NAME`, or `refs/remotes/REMOTE/NAME` for `REMOTE:NAME`.
    pub fn ref_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        let (base, rel) = match name.split_once(':') {
            Some((remote, r)) => (self.path().join("refs/remotes").join(remote), r),
            None => (self.path().join("refs/heads"), name),
        };
        let remote_ok = name
            .split_once(':')
            .is_none_or(|(r, _)| valid_ref_name(r) && !r.contains('/'));
        if !valid_ref_name(rel) || !remote_ok {
            return Err(StoreError::InvalidRef(name.to_string()));
        }
        Ok(base.join(rel))
    }

    /// The commit a ref points to, if the ref exists.
    pub fn read_ref(&self, name: &str) -> Result<Option<Checksum>, StoreError> {
        read_ref_file(&self.ref_path(name)?)
    }

    /// All refs, sorted: local heads by name, remote refs as `remote:ref`.
    pub fn list_refs(&self) -> Result<Vec<(String, Checksum)>, StoreError> {
        let mut out = Vec::new();
        walk_refs(&self.path().join("refs/heads"), "", &mut out)?;
        let remotes = self.path().join("refs/remotes");
        if let Ok(entries) = fs::read_dir(&remotes) {
            for e in entries {
                let e = e.at(&remotes)?;
                let remote = e.file_name().to_string_lossy().into_owned();
                walk_refs(&e.path(), &format!("{remote}:"), &mut out)?;
            }
        }
        out.sort();
        Ok(out)
    }

    /// Point a ref at a commit atomically, or delete it with `None`.
    pub fn set_ref(&self, name: &str, target: Option<&Checksum>) -> Result<(), StoreError> {
        let p = self.ref_path(name)?;
        match target {
            Some(c) => {
                let dir = p.parent().unwrap_or(self.path());
                fs::create_dir_all(dir).at(dir)?;
                keel_utils::fsutil::write_atomic(&p, format!("{c}\n").as_bytes(), 0o644).at(&p)
            }
            None => match fs::remove_file(&p) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    Err(StoreError::RevNotFound(name.to_string()))
                }
                r => r.at(&p),
            },
        }
    }

    /// Resolve a full checksum, a unique commit checksum prefix, a ref or `remote:ref`, each
    /// optionally followed by `^` (parent) suffixes.
    pub fn resolve_rev(&self, rev: &str) -> Result<Checksum, StoreError> {
        let base = rev.trim_end_matches('^');
        let mut c = self.resolve_base(base, rev)?;
        for _ in 0..(rev.len() - base.len()) {
            c = self.read_commit(&c)?.parent.ok_or_else(|| {
                StoreError::Invalid(format!("rev `{rev}`: commit {c} has no parent"))
            })?;
        }
        Ok(c)
    }

    fn resolve_base(&self, base: &str, rev: &str) -> Result<Checksum, StoreError> {
        if let Ok(c) = base.parse::<Checksum>() {
            return Ok(c);
        }
        if base.len() >= 4
            && base
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            if let Some(c) = self.resolve_prefix(base)? {
                return Ok(c);
            }
        }
        if let Ok(Some(c)) = self.read_ref(base) {
            return Ok(c);
        }
        if let Some((remote, r)) = base.split_once('/') {
            if let Ok(Some(c)) = self.read_ref(&format!("{remote}:{r}")) {
                return Ok(c);
            }
        }
        Err(StoreError::RevNotFound(rev.to_string()))
    }

    fn resolve_prefix(&self, prefix: &str) -> Result<Option<Checksum>, StoreError> {
        let dir = self.path().join("objects").join(&prefix[..2]);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(_) => return Ok(None),
        };
        let ext = format!(".{}", ObjectType::Commit.extension(false));
        let mut found = None;
        for e in entries {
            let name = e.at(&dir)?.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_suffix(&ext) {
                let hex = format!("{}{rest}", &prefix[..2]);
                if hex.starts_with(prefix) {
                    if found.is_some() {
                        return Err(StoreError::AmbiguousRev(prefix.to_string()));
                    }
                    found = hex.parse().ok();
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_name_table() {
        for (name, ok) in [
            ("main", true),
            ("keel/stable/x86_64", true),
            ("a.b-c_d", true),
            ("_x", true),
            ("", false),
            ("/abs", false),
            ("a//b", false),
            ("a/", false),
            ("-x", false),
            ("a b", false),
            ("..", false),
        ] {
            assert_eq!(valid_ref_name(name), ok, "{name}");
        }
    }
}
