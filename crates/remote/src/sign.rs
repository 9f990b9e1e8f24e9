//! ed25519 signatures the way OSTree stores them.
//!
//! A commit's signatures live in its detached metadata (`.commitmeta`, an `a{sv}`) under the key
//! `ostree.sign.ed25519` as an `aay` of 64-byte signatures over the exact commit object bytes. A
//! summary's signatures live in `summary.sig`, an `a{sv}` with the same key, over the exact
//! `summary` bytes. Verification succeeds when any signature verifies with any trusted key.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use keel_store::gvariant::{parse_dict, ser_dict, GvError};
use keel_store::{Checksum, ObjectType, Repo, StoreError, Variant};

/// The metadata key holding ed25519 signatures.
pub const ED25519_KEY: &str = "ostree.sign.ed25519";

/// Why signed data was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// No ed25519 signature at all.
    #[error("no ed25519 signature found ({ED25519_KEY} is missing)")]
    Unsigned,
    /// Signatures exist but none verifies with a trusted key.
    #[error("none of the {count} ed25519 signature(s) verifies with the {keys} trusted key(s): signed by another key, or the data was modified")]
    NoValidSignature {
        /// Signatures present.
        count: usize,
        /// Trusted keys tried.
        keys: usize,
    },
    /// The signature container does not parse.
    #[error("malformed signature metadata: {0}")]
    Malformed(String),
}

/// The ed25519 signatures in a detached-metadata or `summary.sig` dictionary.
pub fn signatures(meta: &[u8]) -> Result<Vec<Vec<u8>>, GvError> {
    for (k, v) in parse_dict(meta)? {
        if k == ED25519_KEY {
            return match v {
                Variant::BytesList(l) => Ok(l),
                other => Err(GvError(format!(
                    "{ED25519_KEY} has type {}, expected aay",
                    other.type_str()
                ))),
            };
        }
    }
    Ok(Vec::new())
}

/// Add a signature of `data` by `key` to the dictionary `meta` (absent: empty), keeping every
/// other entry in place. Returns the new bytes and whether the signature was new.
pub fn add_signature(
    meta: Option<&[u8]>,
    data: &[u8],
    key: &SigningKey,
) -> Result<(Vec<u8>, bool), GvError> {
    let sig = key.sign(data).to_bytes().to_vec();
    let mut entries = match meta {
        Some(m) => parse_dict(m)?,
        None => Vec::new(),
    };
    let slot = entries.iter_mut().find(|(k, _)| k == ED25519_KEY);
    let added = match slot {
        Some((_, Variant::BytesList(list))) => {
            if list.contains(&sig) {
                false
            } else {
                list.push(sig);
                true
            }
        }
        Some((_, other)) => {
            return Err(GvError(format!(
                "{ED25519_KEY} has type {}, expected aay",
                other.type_str()
            )))
        }
        None => {
            entries.push((ED25519_KEY.to_string(), Variant::BytesList(vec![sig])));
            true
        }
    };
    Ok((ser_dict(&entries), added))
}

/// Check that `data` carries a signature (in `meta`) by one of `keys`; returns that key.
pub fn verify(
    data: &[u8],
    meta: Option<&[u8]>,
    keys: &[VerifyingKey],
) -> Result<VerifyingKey, VerifyError> {
    let sigs = match meta {
        Some(m) => signatures(m).map_err(|e| VerifyError::Malformed(e.0))?,
        None => Vec::new(),
    };
    if sigs.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    for sig in &sigs {
        let Ok(arr) = <[u8; 64]>::try_from(sig.as_slice()) else {
            continue;
        };
        let sig = Signature::from_bytes(&arr);
        if let Some(k) = keys.iter().find(|k| k.verify_strict(data, &sig).is_ok()) {
            return Ok(*k);
        }
    }
    Err(VerifyError::NoValidSignature {
        count: sigs.len(),
        keys: keys.len(),
    })
}

/// Sign a commit in `repo` with `key` (appends to its detached metadata). Returns false when
/// the commit already carried this signature.
pub fn sign_commit(repo: &Repo, commit: &Checksum, key: &SigningKey) -> Result<bool, StoreError> {
    let bytes = repo.load_metadata_bytes(ObjectType::Commit, commit)?;
    let meta = repo.read_detached_metadata(commit)?;
    let (new, added) = add_signature(meta.as_deref(), &bytes, key)
        .map_err(|e| StoreError::corrupt(ObjectType::CommitMeta, *commit, e))?;
    if added {
        repo.write_detached_metadata(commit, Some(&new))?;
    }
    Ok(added)
}

/// A commit whose signature check failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitVerifyError {
    /// Reading the commit failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signatures do not verify.
    #[error("commit {commit}: {source}")]
    Bad {
        /// The commit.
        commit: Checksum,
        /// Why.
        source: VerifyError,
    },
}

/// Verify a commit in `repo` against trusted `keys`.
pub fn verify_commit(
    repo: &Repo,
    commit: &Checksum,
    keys: &[VerifyingKey],
) -> Result<VerifyingKey, CommitVerifyError> {
    let bytes = repo.load_metadata_bytes(ObjectType::Commit, commit)?;
    let meta = repo.read_detached_metadata(commit)?;
    verify(&bytes, meta.as_deref(), keys).map_err(|source| CommitVerifyError::Bad {
        commit: *commit,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_table() {
        let good = SigningKey::from_bytes(&[1u8; 32]);
        let other = SigningKey::from_bytes(&[2u8; 32]);
        let data = b"commit bytes";
        let (signed, _) = add_signature(None, data, &good).unwrap();
        let (by_other, _) = add_signature(None, data, &other).unwrap();
        let (both, _) = add_signature(Some(&by_other), data, &good).unwrap();
        let unrelated = ser_dict(&[("x".into(), Variant::Str("y".into()))]);
        let wrong_type = ser_dict(&[(ED25519_KEY.into(), Variant::Str("y".into()))]);
        let trusted = [good.verifying_key()];
        let no_valid = Err(VerifyError::NoValidSignature { count: 1, keys: 1 });
        type Case<'a> = (
            &'a str,
            &'a [u8],
            Option<&'a [u8]>,
            Result<VerifyingKey, VerifyError>,
        );
        let cases: Vec<Case> = vec![
            ("signed", data, Some(&signed), Ok(good.verifying_key())),
            ("one of two", data, Some(&both), Ok(good.verifying_key())),
            ("other key", data, Some(&by_other), no_valid.clone()),
            ("tampered", b"commit bytez", Some(&signed), no_valid),
            ("no metadata", data, None, Err(VerifyError::Unsigned)),
            ("no key", data, Some(&unrelated), Err(VerifyError::Unsigned)),
        ];
        for (name, d, meta, want) in cases {
            assert_eq!(verify(d, meta, &trusted), want, "{name}");
        }
        assert!(matches!(
            verify(data, Some(&wrong_type), &trusted),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn adding_keeps_other_entries_and_skips_duplicates() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let start = ser_dict(&[("keep".into(), Variant::Str("me".into()))]);
        let (once, added) = add_signature(Some(&start), b"d", &key).unwrap();
        assert!(added);
        let (twice, added) = add_signature(Some(&once), b"d", &key).unwrap();
        assert!(!added);
        assert_eq!(once, twice);
        let entries = parse_dict(&once).unwrap();
        assert_eq!(entries[0], ("keep".into(), Variant::Str("me".into())));
        let sigs = signatures(&once).unwrap();
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].len(), 64);
    }
}
