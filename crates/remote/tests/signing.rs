//! A remote with trusted ed25519 keys accepts only commits and summaries signed by them, and
//! refuses an unsigned commit, a commit signed by another key, a tampered commit and a tampered
//! or unsigned summary, each with a clear error and without writing a ref. (Debian's ostree
//! 2022.7 has no ed25519 support, so the format description in the reference and these tests
//! are the oracle.)

mod common;

use common::*;
use ed25519_dalek::{SigningKey, VerifyingKey};
use keel_remote::pull::{self, PullOptions};
use keel_remote::source::HttpSource;
use keel_remote::{keys, sign, summary};
use keel_store::{Commit, ObjectType, Repo, RepoMode};
use keel_testsupport::http::{Action, FaultServer};
use keel_utils::progress::Progress;
use std::path::Path;

fn key() -> SigningKey {
    keys::generate().unwrap()
}

/// Pull REF verifying commits with `commit_keys` and the summary with `summary_keys`.
fn pull_verified(
    dir: &Path,
    server_repo: &Path,
    commit_keys: &[VerifyingKey],
    summary_keys: Option<&[VerifyingKey]>,
) -> (Repo, Result<(), String>) {
    let client = Repo::init(
        &dir.join(format!("client-{}", rand_suffix())),
        RepoMode::Archive,
    )
    .unwrap();
    let server = FaultServer::start(server_repo, None, |_, _, _| Action::Serve);
    let src =
        HttpSource::new(&server.url, fast_options(), summary_keys.map(<[_]>::to_vec)).unwrap();
    let mut opts = PullOptions::for_remote("origin");
    opts.commit_keys = Some(commit_keys.to_vec());
    let r = pull::pull(
        &client,
        &src,
        &[REF.to_string()],
        &opts,
        &Progress::quiet("pull"),
    )
    .map(|_| ())
    .map_err(|e| e.to_string());
    (client, r)
}

fn rand_suffix() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn assert_refused(client: &Repo, r: Result<(), String>, want: &[&str]) {
    let err = r.expect_err("pull must be refused");
    for w in want {
        assert!(err.contains(w), "error {err:?} lacks {w:?}");
    }
    assert_no_ref(client);
}

#[test]
fn signed_commit_and_summary_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 5);
    let k = key();
    let server = Repo::open(&fx.repo).unwrap();
    assert!(sign::sign_commit(&server, &fx.commit, &k).unwrap());
    assert!(
        !sign::sign_commit(&server, &fx.commit, &k).unwrap(),
        "no duplicate signature"
    );
    summary::update(&server, std::slice::from_ref(&k)).unwrap();
    let trusted = [k.verifying_key()];
    let (client, r) = pull_verified(d.path(), &fx.repo, &trusted, Some(&trusted));
    r.unwrap();
    assert_eq!(
        client.read_ref(&format!("origin:{REF}")).unwrap(),
        Some(fx.commit)
    );
    // The signature travels with the commit and still verifies in the client.
    sign::verify_commit(&client, &fx.commit, &trusted).unwrap();
}

#[test]
fn unsigned_and_foreign_commits_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let (mine, theirs) = (key(), key());
    let (client, r) = pull_verified(d.path(), &fx.repo, &[mine.verifying_key()], None);
    assert_refused(&client, r, &["refusing commit", "no ed25519 signature"]);

    sign::sign_commit(&Repo::open(&fx.repo).unwrap(), &fx.commit, &theirs).unwrap();
    let (client, r) = pull_verified(d.path(), &fx.repo, &[mine.verifying_key()], None);
    assert_refused(
        &client,
        r,
        &[
            "refusing commit",
            &fx.commit.to_hex(),
            "none of the 1 ed25519 signature(s) verifies",
        ],
    );
}

#[test]
fn tampered_commits_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let k = key();
    let server = Repo::open(&fx.repo).unwrap();
    sign::sign_commit(&server, &fx.commit, &k).unwrap();
    let trusted = [k.verifying_key()];

    // A forged commit under the ref, carrying the genuine signature of the original.
    let bytes = server
        .load_metadata_bytes(ObjectType::Commit, &fx.commit)
        .unwrap();
    let mut forged = Commit::parse(&bytes).unwrap();
    forged.subject = "evil".into();
    let forged_id = server
        .write_metadata_object(ObjectType::Commit, &forged.to_bytes())
        .unwrap();
    let meta = server.read_detached_metadata(&fx.commit).unwrap();
    server
        .write_detached_metadata(&forged_id, meta.as_deref())
        .unwrap();
    server.set_ref(REF, Some(&forged_id)).unwrap();
    let (client, r) = pull_verified(d.path(), &fx.repo, &trusted, None);
    assert_refused(
        &client,
        r,
        &["refusing commit", &forged_id.to_hex(), "verifies"],
    );

    // The original commit's bytes altered in place: its checksum no longer matches.
    server.set_ref(REF, Some(&fx.commit)).unwrap();
    let path = server.object_path(ObjectType::Commit, &fx.commit);
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.windows(7).position(|w| w == b"fixture").unwrap();
    raw[at] = b'F';
    std::fs::write(&path, &raw).unwrap();
    let (client, r) = pull_verified(d.path(), &fx.repo, &trusted, None);
    assert_refused(&client, r, &["commit object", "is corrupt", "hash to"]);
    assert!(!client.has_object(ObjectType::Commit, &fx.commit));
}

#[test]
fn tampered_or_unsigned_summaries_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let (k, other) = (key(), key());
    let server = Repo::open(&fx.repo).unwrap();
    sign::sign_commit(&server, &fx.commit, &k).unwrap();
    let trusted = [k.verifying_key()];

    summary::update(&server, std::slice::from_ref(&other)).unwrap();
    let (client, r) = pull_verified(d.path(), &fx.repo, &trusted, Some(&trusted));
    assert_refused(&client, r, &["refusing summary", "verifies"]);

    summary::update(&server, std::slice::from_ref(&k)).unwrap();
    let p = fx.repo.join("summary");
    let mut raw = std::fs::read(&p).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    std::fs::write(&p, &raw).unwrap();
    let (client, r) = pull_verified(d.path(), &fx.repo, &trusted, Some(&trusted));
    assert_refused(&client, r, &["refusing summary", "modified"]);

    summary::update(&server, &[]).unwrap();
    assert!(
        !fx.repo.join("summary.sig").exists(),
        "an unsigned update drops summary.sig"
    );
    let (client, r) = pull_verified(d.path(), &fx.repo, &trusted, Some(&trusted));
    assert_refused(&client, r, &["refusing summary", "no ed25519 signature"]);

    std::fs::remove_file(&p).unwrap();
    let (client, r) = pull_verified(d.path(), &fx.repo, &trusted, Some(&trusted));
    assert_refused(
        &client,
        r,
        &["sign-verify-summary is set but the server has no summary"],
    );
}
