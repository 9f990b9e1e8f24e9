//! The repository summary (`summary`, `summary.sig`): the refs a server offers, in one file.
//!
//! `summary` is the GVariant `(a(s(taya{sv}))a{sv})`: refs sorted by name, each with the size of
//! its commit object (a `t` in GLib's native little-endian order; unlike every other integer
//! OSTree stores, it is not byte-swapped: observed with ostree 2022.7), the commit checksum, and
//! per-ref metadata (`ostree.commit.version` if the commit has one, then
//! `ostree.commit.timestamp`, big-endian). The global dictionary carries, in this order,
//! `ostree.summary.mode`, `ostree.summary.last-modified` (big-endian),
//! `ostree.summary.tombstone-commits` and `ostree.summary.indexed-deltas`, exactly as
//! `ostree summary -u` writes them. `summary.sig` is an `a{sv}` holding the signatures (see
//! [`crate::sign`]). Regenerating without a key removes a stale `summary.sig`, as OSTree does.

use crate::sign::{self, ED25519_KEY};
use ed25519_dalek::SigningKey;
use keel_store::gvariant::{
    array_var, parse_dict, read_str, ser_dict, ser_str, Frame, GvError, StructReader,
};
use keel_store::{Checksum, ObjectType, Repo, StoreError, Variant};
use std::io;

/// One ref in a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRef {
    /// Ref name.
    pub name: String,
    /// Size of the commit object in bytes.
    pub commit_size: u64,
    /// The commit.
    pub checksum: Checksum,
    /// Per-ref metadata.
    pub meta: Vec<(String, Variant)>,
}

/// A parsed summary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Refs, sorted by name.
    pub refs: Vec<SummaryRef>,
    /// Global metadata.
    pub meta: Vec<(String, Variant)>,
}

/// `ostree.summary.mode`.
pub const MODE_KEY: &str = "ostree.summary.mode";
/// `ostree.summary.last-modified`.
pub const LAST_MODIFIED_KEY: &str = "ostree.summary.last-modified";
/// `ostree.summary.expires`.
pub const EXPIRES_KEY: &str = "ostree.summary.expires";
/// Per-ref `ostree.commit.timestamp`.
pub const COMMIT_TIMESTAMP_KEY: &str = "ostree.commit.timestamp";

/// Keys whose `t` value OSTree stores big-endian and means seconds since the epoch.
const BE_TIME_KEYS: [&str; 3] = [LAST_MODIFIED_KEY, EXPIRES_KEY, COMMIT_TIMESTAMP_KEY];

/// A big-endian `t` metadata value.
fn be_u64(v: Option<&Variant>) -> Option<u64> {
    match v {
        Some(Variant::U64(x)) => Some(u64::from_be(*x)),
        _ => None,
    }
}

/// A metadata value for humans, as `ostree summary --view` shows it: times (stored big-endian)
/// as RFC 3339 with the number of seconds, everything else in GVariant text style.
pub fn display_value(key: &str, v: &Variant) -> String {
    match (BE_TIME_KEYS.contains(&key), be_u64(Some(v))) {
        (true, Some(t)) => format!("{} ({t})", crate::freshness::format_time(t)),
        _ => v.display(),
    }
}

impl Summary {
    /// Serialize.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut refs = Frame::new();
        for r in &self.refs {
            let mut inner = Frame::new();
            inner.child(8, &r.commit_size.to_le_bytes(), false);
            inner.child(1, &r.checksum.0, true);
            inner.child(8, &ser_dict(&r.meta), false);
            let mut entry = Frame::new();
            entry.child(1, &ser_str(&r.name), true);
            entry.child(8, &inner.finish_struct(), false);
            refs.child(8, &entry.finish_struct(), true);
        }
        let mut top = Frame::new();
        top.child(8, &refs.finish_array(), true);
        top.child(8, &ser_dict(&self.meta), false);
        top.finish_struct()
    }

    /// Parse (untrusted bytes: never panics).
    pub fn parse(data: &[u8]) -> Result<Summary, GvError> {
        let mut top = StructReader::new(data);
        let refs_data = top.var(8, false)?;
        let meta = parse_dict(top.var(8, true)?)?;
        let mut refs = Vec::new();
        for e in array_var(refs_data, 8)? {
            let mut er = StructReader::new(e);
            let name = read_str(er.var(1, false)?)?.to_string();
            let mut inner = StructReader::new(er.var(8, true)?);
            let size = inner.fixed(8, 8)?;
            let mut le = [0u8; 8];
            le.copy_from_slice(size);
            let csum = inner.var(1, false)?;
            let checksum = Checksum::from_bytes(csum)
                .ok_or_else(|| GvError(format!("ref {name}: checksum has {} bytes", csum.len())))?;
            let meta = parse_dict(inner.var(8, true)?)?;
            refs.push(SummaryRef {
                name,
                commit_size: u64::from_le_bytes(le),
                checksum,
                meta,
            });
        }
        Ok(Summary { refs, meta })
    }

    /// The commit a ref points to.
    pub fn find(&self, name: &str) -> Option<&SummaryRef> {
        self.refs.iter().find(|r| r.name == name)
    }

    /// A global metadata value.
    pub fn meta(&self, key: &str) -> Option<&Variant> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `ostree.summary.last-modified`: when it was generated, seconds since the epoch.
    pub fn last_modified(&self) -> Option<u64> {
        be_u64(self.meta(LAST_MODIFIED_KEY))
    }

    /// `ostree.summary.expires`: when it stops being valid, seconds since the epoch.
    pub fn expires(&self) -> Option<u64> {
        be_u64(self.meta(EXPIRES_KEY))
    }
}

/// Build the summary of `repo`'s local refs (`refs/heads`), stamped `now` (Unix seconds).
pub fn build(repo: &Repo, now: u64) -> Result<Summary, StoreError> {
    let mut refs = Vec::new();
    for (name, checksum) in repo.list_refs()? {
        if name.contains(':') {
            continue;
        }
        let bytes = repo.load_metadata_bytes(ObjectType::Commit, &checksum)?;
        let commit = keel_store::Commit::parse(&bytes)
            .map_err(|e| StoreError::corrupt(ObjectType::Commit, checksum, e))?;
        let mut meta = Vec::new();
        if let Some(v) = commit.version() {
            meta.push(("ostree.commit.version".to_string(), Variant::Str(v.into())));
        }
        meta.push((
            COMMIT_TIMESTAMP_KEY.to_string(),
            Variant::U64(commit.timestamp.to_be()),
        ));
        refs.push(SummaryRef {
            name,
            commit_size: bytes.len() as u64,
            checksum,
            meta,
        });
    }
    refs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let tombstones = repo.config_value("core", "tombstone-commits") == Some("true");
    let meta = vec![
        (
            MODE_KEY.to_string(),
            Variant::Str(repo.mode().config_name().into()),
        ),
        (LAST_MODIFIED_KEY.to_string(), Variant::U64(now.to_be())),
        (
            "ostree.summary.tombstone-commits".to_string(),
            Variant::Bool(tombstones),
        ),
        (
            "ostree.summary.indexed-deltas".to_string(),
            Variant::Bool(true),
        ),
    ];
    Ok(Summary { refs, meta })
}

/// The `summary.sig` bytes for `summary` signed by every key in `keys`.
pub fn sign_summary(summary: &[u8], keys: &[SigningKey]) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let sigs = keys
        .iter()
        .map(|k| k.sign(summary).to_bytes().to_vec())
        .collect();
    ser_dict(&[(ED25519_KEY.to_string(), Variant::BytesList(sigs))])
}

/// Regenerate `summary` (and `summary.sig` when `keys` is non-empty, otherwise remove it).
pub fn update(repo: &Repo, keys: &[SigningKey]) -> Result<Summary, StoreError> {
    let summary = build(repo, crate::freshness::now())?;
    let bytes = summary.to_bytes();
    let path = repo.path().join("summary");
    let sig_path = repo.path().join("summary.sig");
    let io_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    keel_utils::fsutil::write_atomic(&path, &bytes, 0o644).map_err(io_err(&path))?;
    if keys.is_empty() {
        match std::fs::remove_file(&sig_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&sig_path)(e)),
            _ => {}
        }
    } else {
        keel_utils::fsutil::write_atomic(&sig_path, &sign_summary(&bytes, keys), 0o644)
            .map_err(io_err(&sig_path))?;
    }
    Ok(summary)
}

/// Verify `summary` bytes against `summary.sig` bytes.
pub fn verify(
    summary: &[u8],
    sig: Option<&[u8]>,
    keys: &[ed25519_dalek::VerifyingKey],
) -> Result<ed25519_dalek::VerifyingKey, sign::VerifyError> {
    sign::verify(summary, sig, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u8) -> Checksum {
        Checksum([n; 32])
    }

    #[test]
    fn roundtrip_table() {
        let r = |name: &str, n: u8, meta: Vec<(String, Variant)>| SummaryRef {
            name: name.into(),
            commit_size: 100 + u64::from(n),
            checksum: c(n),
            meta,
        };
        let ts = || {
            vec![(
                "ostree.commit.timestamp".to_string(),
                Variant::U64(5u64.to_be()),
            )]
        };
        for s in [
            Summary::default(),
            Summary {
                refs: vec![r("a", 1, ts())],
                meta: vec![(MODE_KEY.into(), Variant::Str("archive-z2".into()))],
            },
            Summary {
                refs: (0..300)
                    .map(|i| r(&format!("ref{i:03}"), i as u8, ts()))
                    .collect(),
                meta: vec![],
            },
        ] {
            let bytes = s.to_bytes();
            assert_eq!(Summary::parse(&bytes).unwrap(), s);
        }
    }

    #[test]
    fn update_writes_last_modified_and_view_shows_dates() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repo::init(&d.path().join("r"), keel_store::RepoMode::Archive).unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        update(&repo, &[]).unwrap();
        let s = Summary::parse(&std::fs::read(repo.path().join("summary")).unwrap()).unwrap();
        let lm = s
            .last_modified()
            .expect("summary --update writes last-modified");
        assert!(lm >= before && lm <= before + 60, "{lm} vs {before}");
        assert_eq!(s.expires(), None);
        let shown = display_value(LAST_MODIFIED_KEY, s.meta(LAST_MODIFIED_KEY).unwrap());
        assert!(
            shown.starts_with("20") && shown.ends_with(&format!("({lm})")),
            "{shown}"
        );
        let ts = Variant::U64(1_577_836_800u64.to_be());
        assert_eq!(
            display_value(COMMIT_TIMESTAMP_KEY, &ts),
            "2020-01-01T00:00:00Z (1577836800)"
        );
        assert_eq!(display_value("other", &Variant::U64(5)), "uint64 5");
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let good = Summary {
            refs: vec![SummaryRef {
                name: "x".into(),
                commit_size: 1,
                checksum: c(9),
                meta: vec![],
            }],
            meta: vec![],
        }
        .to_bytes();
        let mut rng = keel_testsupport::rng::Rng::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut b = good.clone();
            let i = rng.index(b.len());
            b[i] ^= rng.next_u64() as u8 | 1;
            b.truncate(b.len() - rng.index(3));
            let _ = Summary::parse(&b);
        }
    }

    #[test]
    fn summary_signature_verifies_and_detects_tampering() {
        let key = SigningKey::from_bytes(&[4u8; 32]);
        let bytes = Summary::default().to_bytes();
        let sig = sign_summary(&bytes, std::slice::from_ref(&key));
        assert!(verify(&bytes, Some(&sig), &[key.verifying_key()]).is_ok());
        let mut tampered = bytes.clone();
        tampered.push(0);
        assert!(verify(&tampered, Some(&sig), &[key.verifying_key()]).is_err());
    }
}
