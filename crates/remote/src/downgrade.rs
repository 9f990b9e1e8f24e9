//! Refusing to go back in time: is a commit offered for a ref (or for a node) newer than the one
//! it would replace?
//!
//! A mirror or a man-in-the-middle cannot forge signatures, but it can serve an older summary
//! and older commits that were validly signed when they were published. Moving a ref to such a
//! commit, or deploying it, is a downgrade nobody asked for. [`check`] decides, from what the
//! local repository holds:
//!
//! 1. The candidate's parent chain is walked as far as its commit objects are present locally
//!    (a pull with `--depth N` has just stored N of them; each parent checksum is signed, by
//!    hash, through the candidate). Meeting the current commit proves a descendant: forward.
//!    Reaching a root commit without meeting it proves the candidate is *not* a descendant:
//!    refused, whatever its dates say.
//! 2. When the chain is cut (a parent is not in the repository, or [`MAX_WALK`] commits were
//!    walked), descent is unknown and the commits' own signed metadata decides: a candidate
//!    whose timestamp is older, or whose `version` sorts lower, is refused.
//!
//! Only silent moves are refused: callers pass `allow_downgrade` when the user asked for the
//! commit (`--allow-downgrade`, `keel deploy COMMIT|VERSION`).

use keel_store::{Checksum, Commit, ObjectType, Repo, StoreError};
use std::cmp::Ordering;

/// Longest parent chain walked before falling back to timestamps and versions.
pub const MAX_WALK: usize = 10_000;

/// Why a candidate is not newer than the current commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backwards {
    /// Its full history is present and does not contain the current commit.
    NotDescendant,
    /// Its history is not all present, and its timestamp is older.
    OlderTimestamp {
        /// The candidate's timestamp.
        candidate: u64,
        /// The current commit's timestamp.
        current: u64,
    },
    /// Its history is not all present, and its version sorts lower.
    LowerVersion {
        /// The candidate's version.
        candidate: String,
        /// The current commit's version.
        current: String,
    },
}

impl std::fmt::Display for Backwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backwards::NotDescendant => write!(
                f,
                "it is not a descendant of the current commit (its whole history is present \
                 and does not contain it)"
            ),
            Backwards::OlderTimestamp { candidate, current } => write!(
                f,
                "its timestamp {} is older than the current commit's {}",
                crate::freshness::format_time(*candidate),
                crate::freshness::format_time(*current)
            ),
            Backwards::LowerVersion { candidate, current } => write!(
                f,
                "its version {candidate} is lower than the current commit's {current}"
            ),
        }
    }
}

/// How a candidate relates to the current commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The same commit.
    Same,
    /// The current commit is in the candidate's history, `steps` parents back.
    Descendant {
        /// Parents walked.
        steps: usize,
    },
    /// Descent is unknown (history not present); the timestamp and version are not older.
    NotOlder,
    /// A move backwards.
    Backwards(Backwards),
}

/// Where `candidate` (checksum `c`, already verified) stands against `current`, using the
/// commits present in `repo`.
pub fn check(
    repo: &Repo,
    current: &Checksum,
    c: &Checksum,
    candidate: &Commit,
) -> Result<Verdict, StoreError> {
    if c == current {
        return Ok(Verdict::Same);
    }
    let mut next = candidate.parent;
    let mut steps = 0;
    while let Some(p) = next {
        steps += 1;
        if p == *current {
            return Ok(Verdict::Descendant { steps });
        }
        if steps >= MAX_WALK || !repo.has_object(ObjectType::Commit, &p) {
            return by_metadata(repo, current, candidate);
        }
        next = repo.read_commit(&p)?.parent;
    }
    Ok(Verdict::Backwards(Backwards::NotDescendant))
}

fn by_metadata(repo: &Repo, current: &Checksum, candidate: &Commit) -> Result<Verdict, StoreError> {
    if !repo.has_object(ObjectType::Commit, current) {
        // Nothing to compare with (a ref to a commit that is gone): not a move we can judge.
        tracing::warn!("commit {current} is not in the repository; not checking for a downgrade");
        return Ok(Verdict::NotOlder);
    }
    let cur = repo.read_commit(current)?;
    if candidate.timestamp < cur.timestamp {
        return Ok(Verdict::Backwards(Backwards::OlderTimestamp {
            candidate: candidate.timestamp,
            current: cur.timestamp,
        }));
    }
    if let (Some(a), Some(b)) = (candidate.version(), cur.version()) {
        if compare_versions(a, b) == Ordering::Less {
            return Ok(Verdict::Backwards(Backwards::LowerVersion {
                candidate: a.to_string(),
                current: b.to_string(),
            }));
        }
    }
    Ok(Verdict::NotOlder)
}

/// Compare versions dot-separated part by part, numerically where both parts are numbers
/// (`13.20261207.3.10` > `13.20261207.3.9`), as text otherwise; a version with more parts sorts
/// after its prefix.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut pa = a.split('.');
    let mut pb = b.split('.');
    loop {
        match (pa.next(), pb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// A commit described for messages: `CHECKSUM (version V, TIMESTAMP)`.
pub fn describe(repo: &Repo, c: &Checksum) -> String {
    match repo.read_commit(c) {
        Ok(commit) => describe_commit(c, &commit),
        Err(_) => c.to_hex(),
    }
}

/// [`describe`] for a commit already parsed.
pub fn describe_commit(c: &Checksum, commit: &Commit) -> String {
    format!(
        "{c} (version {}, {})",
        commit.version().unwrap_or("none"),
        crate::freshness::format_time(commit.timestamp)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_store::{CommitOptions, RepoMode, Variant};
    use keel_utils::progress::Progress;

    #[test]
    fn versions_compare_part_by_part() {
        for (a, b, want) in [
            ("13.20261207.3.10", "13.20261207.3.9", Ordering::Greater),
            ("13.20261207.3.0", "13.20261208.3.0", Ordering::Less),
            ("13.20261207.3.0", "13.20261207.3.0", Ordering::Equal),
            ("2", "10", Ordering::Less),
            ("1.0", "1.0.1", Ordering::Less),
            ("1.b", "1.a", Ordering::Greater),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
    }

    fn commit(repo: &Repo, dir: &std::path::Path, v: &str, ts: u64, parent: bool) -> Checksum {
        let t = dir.join(format!("t{v}"));
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("f"), v).unwrap();
        let opts = CommitOptions {
            branch: Some("r".into()),
            subject: v.into(),
            timestamp: Some(ts),
            metadata: vec![("version".into(), Variant::Str(v.into()))],
            parent: if parent {
                keel_store::ParentSpec::Auto
            } else {
                keel_store::ParentSpec::None
            },
            ..Default::default()
        };
        repo.commit_dir(&t, &opts, &Progress::quiet("c")).unwrap()
    }

    #[test]
    fn chain_then_metadata_decide() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repo::init(&d.path().join("r"), RepoMode::Archive).unwrap();
        let c1 = commit(&repo, d.path(), "1", 100, true);
        let c2 = commit(&repo, d.path(), "2", 200, true);
        let c3 = commit(&repo, d.path(), "3", 300, true);
        let unrelated = commit(&repo, d.path(), "9", 900, false);
        let v = |cur: &Checksum, cand: &Checksum| {
            check(&repo, cur, cand, &repo.read_commit(cand).unwrap()).unwrap()
        };
        assert_eq!(v(&c2, &c2), Verdict::Same);
        assert_eq!(v(&c1, &c3), Verdict::Descendant { steps: 2 });
        assert_eq!(v(&c3, &c1), Verdict::Backwards(Backwards::NotDescendant));
        assert_eq!(
            v(&c3, &unrelated),
            Verdict::Backwards(Backwards::NotDescendant),
            "a newer timestamp does not make an unrelated history a descendant"
        );
        // Cut the chain: c2's parent c1 is gone, so c3 -> c2 -> ? decides by metadata.
        let p = repo.object_path(ObjectType::Commit, &c1);
        std::fs::remove_file(p).unwrap();
        let older = commit(&repo, d.path(), "0", 50, false);
        assert_eq!(v(&older, &c3), Verdict::NotOlder);
        assert_eq!(
            v(&c3, &c2),
            Verdict::Backwards(Backwards::OlderTimestamp {
                candidate: 200,
                current: 300
            })
        );
    }
}
