//! Hostile mirrors against `pull` with signature checking on (a real HTTP server on
//! 127.0.0.1 serving an archive repository):
//! - replay: the newest signed summary is replaced by an older, validly signed one. The pull
//!   is refused with a message naming both commits, the ref does not move and no content
//!   object is requested; `allow_downgrade` moves it. Both ways of deciding are tried: the old
//!   commit's history cut short locally (its timestamp decides) and present in full (it is
//!   not a descendant).
//! - freeze: a summary older than the limit, past its `ostree.summary.expires`, or without
//!   `ostree.summary.last-modified` is reported as stale, expired or of unknown age.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use keel_remote::freshness::{State, DEFAULT_MAX_AGE_SECS};
use keel_remote::pull::{self, PullOptions, PullReport};
use keel_remote::source::{HttpSource, Source};
use keel_remote::summary::{self, EXPIRES_KEY};
use keel_remote::{keys, sign, PullError};
use keel_store::{Checksum, CommitOptions, Repo, RepoMode, Variant};
use keel_testsupport::http::{Action, FaultServer};
use keel_utils::progress::Progress;
use std::fs;
use std::path::Path;

const DAY: u64 = 86_400;

/// A publisher: an archive repository whose commits and summaries are signed.
struct Publisher {
    repo: Repo,
    key: SigningKey,
    dir: std::path::PathBuf,
}

impl Publisher {
    fn new(dir: &Path) -> Publisher {
        let repo = Repo::init(&dir.join("server"), RepoMode::Archive).unwrap();
        Publisher {
            repo,
            key: keys::generate().unwrap(),
            dir: dir.to_path_buf(),
        }
    }

    /// Commit version `v` at `timestamp` on [`REF`] (parent: the ref), signed.
    fn commit(&self, v: &str, timestamp: u64) -> Checksum {
        let tree = self.dir.join(format!("tree-{v}"));
        keel_testsupport::gen::bulk_tree(&tree, timestamp, 20, 20_000).unwrap();
        let opts = CommitOptions {
            branch: Some(REF.into()),
            subject: v.into(),
            timestamp: Some(timestamp),
            metadata: vec![("version".into(), Variant::Str(v.into()))],
            ..CommitOptions::default()
        };
        let c = self
            .repo
            .commit_dir(&tree, &opts, &Progress::quiet("commit"))
            .unwrap();
        sign::sign_commit(&self.repo, &c, &self.key).unwrap();
        c
    }

    /// Write a signed summary of the current refs, last modified at `last_modified` (none:
    /// without the key), with `extra` global metadata. Returns (summary, summary.sig) bytes.
    fn summary(&self, last_modified: Option<u64>, extra: &[(&str, u64)]) -> (Vec<u8>, Vec<u8>) {
        let mut s = summary::build(&self.repo, last_modified.unwrap_or(0)).unwrap();
        if last_modified.is_none() {
            s.meta.retain(|(k, _)| k != summary::LAST_MODIFIED_KEY);
        }
        for (k, v) in extra {
            s.meta.push((k.to_string(), Variant::U64(v.to_be())));
        }
        let bytes = s.to_bytes();
        let sig = summary::sign_summary(&bytes, std::slice::from_ref(&self.key));
        self.serve_summary(&(bytes.clone(), sig.clone()));
        (bytes, sig)
    }

    /// Put these summary bytes on the server (what a replaying mirror does).
    fn serve_summary(&self, (bytes, sig): &(Vec<u8>, Vec<u8>)) {
        fs::write(self.repo.path().join("summary"), bytes).unwrap();
        fs::write(self.repo.path().join("summary.sig"), sig).unwrap();
    }
}

/// Pull REF with commit and summary signatures checked; returns the source for its summary.
fn pull_signed(
    client: &Repo,
    url: &str,
    p: &Publisher,
    depth: i64,
    allow_downgrade: bool,
) -> (Result<PullReport, PullError>, HttpSource) {
    let trusted = vec![p.key.verifying_key()];
    let src = HttpSource::new(url, fast_options(), Some(trusted.clone())).unwrap();
    let mut opts = PullOptions::for_remote("origin");
    opts.commit_keys = Some(trusted);
    opts.depth = depth;
    opts.allow_downgrade = allow_downgrade;
    let r = pull::pull(
        client,
        &src,
        &[REF.to_string()],
        &opts,
        &Progress::quiet("pull"),
    );
    (r, src)
}

fn remote_ref(client: &Repo) -> Option<Checksum> {
    client.read_ref(&format!("origin:{REF}")).unwrap()
}

fn now() -> u64 {
    keel_remote::freshness::now()
}

#[test]
fn replayed_older_signed_summary_moves_no_ref_unless_allowed() {
    // (depth, the part of the message that says how it was decided)
    for (depth, why) in [(0, "timestamp"), (-1, "not a descendant")] {
        let d = tempfile::tempdir().unwrap();
        let p = Publisher::new(d.path());
        let t = now() - 30 * DAY;
        p.commit("1.0", t);
        let c1 = p.commit("1.1", t + DAY);
        let old = p.summary(Some(t + DAY), &[]);
        let c2 = p.commit("2.0", t + 2 * DAY);
        p.summary(Some(now()), &[]);
        let server = FaultServer::start(p.repo.path(), None, |_, _, _| Action::Serve);
        let client = Repo::init(&d.path().join("client"), RepoMode::Archive).unwrap();

        let (r, _) = pull_signed(&client, &server.url, &p, depth, false);
        r.unwrap();
        assert_eq!(remote_ref(&client), Some(c2));
        let before_replay = server.requests().len();

        p.serve_summary(&old);
        let (r, src) = pull_signed(&client, &server.url, &p, depth, false);
        let err = r
            .expect_err("a replayed older summary must be refused")
            .to_string();
        for want in [
            c1.to_hex().as_str(),
            c2.to_hex().as_str(),
            why,
            "--allow-downgrade",
        ] {
            assert!(err.contains(want), "depth {depth}: {want:?} not in: {err}");
        }
        assert_eq!(
            remote_ref(&client),
            Some(c2),
            "depth {depth}: the ref moved back"
        );
        let fetched: Vec<String> = server.requests()[before_replay..]
            .iter()
            .filter(|r| r.ends_with(".filez") || r.ends_with(".dirtree"))
            .cloned()
            .collect();
        assert!(
            fetched.is_empty(),
            "refused pull fetched content: {fetched:?}"
        );
        let read = src.summary_read().expect("the summary was read");
        assert!(
            read.verified,
            "the replayed summary verifies: that is the attack"
        );

        let (r, _) = pull_signed(&client, &server.url, &p, depth, true);
        r.unwrap();
        assert_eq!(
            remote_ref(&client),
            Some(c1),
            "depth {depth}: --allow-downgrade"
        );
        assert_fsck_clean(&client);
    }
}

#[test]
fn first_pull_and_forward_moves_are_not_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = Publisher::new(d.path());
    let t = now() - 10 * DAY;
    let c1 = p.commit("1", t);
    p.summary(Some(t), &[]);
    let server = FaultServer::start(p.repo.path(), None, |_, _, _| Action::Serve);
    let client = Repo::init(&d.path().join("client"), RepoMode::Archive).unwrap();
    pull_signed(&client, &server.url, &p, 0, false).0.unwrap();
    assert_eq!(remote_ref(&client), Some(c1));
    // Two releases later, pulled without history: c3's parent c2 is not local, so c1 is
    // not met; the newer timestamp lets it through.
    p.commit("2", t + DAY);
    let c3 = p.commit("3", t + 2 * DAY);
    p.summary(Some(now()), &[]);
    pull_signed(&client, &server.url, &p, 0, false).0.unwrap();
    assert_eq!(remote_ref(&client), Some(c3));
}

/// Read the summary the way a pull does and judge its age now.
fn assess(url: &str, p: &Publisher) -> keel_remote::freshness::Freshness {
    let src = HttpSource::new(url, fast_options(), Some(vec![p.key.verifying_key()])).unwrap();
    src.resolve(&[REF.to_string()]).unwrap();
    let read = src.summary_read().unwrap();
    keel_remote::freshness::seen("origin", url, &read, DEFAULT_MAX_AGE_SECS, now()).assess(now())
}

#[test]
fn frozen_expired_and_undated_summaries_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let p = Publisher::new(d.path());
    p.commit("1", now() - 20 * DAY);
    let server = FaultServer::start(p.repo.path(), None, |_, _, _| Action::Serve);
    /// (name, last modified, extra metadata, expected state, text in the message)
    type Case<'a> = (&'a str, Option<u64>, Vec<(&'a str, u64)>, State, &'a str);
    let cases: Vec<Case> = vec![
        ("fresh", Some(now() - DAY), vec![], State::Fresh, "ago"),
        (
            "frozen",
            Some(now() - 8 * DAY),
            vec![],
            State::Stale,
            "8 days ago",
        ),
        (
            "expired",
            Some(now() - DAY),
            vec![(EXPIRES_KEY, now() - 60)],
            State::Expired,
            "expired at",
        ),
        (
            "not yet expired",
            Some(now() - DAY),
            vec![(EXPIRES_KEY, now() + DAY)],
            State::Fresh,
            "ago",
        ),
        ("undated", None, vec![], State::UnknownAge, "unknown"),
    ];
    for (name, lm, extra, state, text) in cases {
        p.summary(lm, &extra);
        let f = assess(&server.url, &p);
        assert_eq!(f.state, state, "{name}: {}", f.message);
        assert!(f.message.contains(text), "{name}: {}", f.message);
        assert!(f.seen.verified, "{name}");
    }
}
