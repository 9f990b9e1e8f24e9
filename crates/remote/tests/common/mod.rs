//! Shared fixtures for the pull tests: a small archive repository written by keel, client
//! repositories, and a pull helper with short timeouts. Each test binary uses a subset.
#![allow(dead_code)]

use keel_remote::fetch::FetchOptions;
use keel_remote::pull::{self, PullOptions, PullReport};
use keel_remote::source::HttpSource;
use keel_remote::PullError;
use keel_store::{Checksum, CommitOptions, ObjectType, Repo, RepoMode};
use keel_utils::progress::Progress;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The ref every fixture commit is on.
pub const REF: &str = "test/ref";

/// A server-side archive repository with one commit of a small generated tree.
pub struct Fixture {
    /// Repository directory (serve this).
    pub repo: PathBuf,
    /// The commit on [`REF`].
    pub commit: Checksum,
}

/// Build the fixture under `dir`: `files` random files of up to 40 KB, a symlink, an empty file.
pub fn fixture(dir: &Path, files: usize) -> Fixture {
    let tree = dir.join("tree");
    keel_testsupport::gen::bulk_tree(&tree, 7, files, 40_000).unwrap();
    std::os::unix::fs::symlink("d000/f000000", tree.join("link")).unwrap();
    std::fs::write(tree.join("empty"), b"").unwrap();
    let path = dir.join("server");
    let repo = Repo::init(&path, RepoMode::Archive).unwrap();
    let opts = CommitOptions {
        branch: Some(REF.into()),
        subject: "fixture".into(),
        timestamp: Some(1_577_836_800),
        ..CommitOptions::default()
    };
    let commit = repo
        .commit_dir(&tree, &opts, &Progress::quiet("commit"))
        .unwrap();
    Fixture { repo: path, commit }
}

/// Relative paths (`objects/xx/….ext`) of every object of `repo`.
pub fn object_paths(repo: &Path) -> Vec<(ObjectType, String)> {
    let r = Repo::open(repo).unwrap();
    r.list_objects()
        .unwrap()
        .into_iter()
        .map(|(t, c)| {
            let p = r.object_path(t, &c);
            (t, p.strip_prefix(repo).unwrap().display().to_string())
        })
        .collect()
}

/// Fast-failing transfer settings for tests.
pub fn fast_options() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        retries: 2,
        backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    }
}

/// Pull [`REF`] from `url` into `client` as remote `origin`.
pub fn pull_from(client: &Repo, url: &str, fetch: FetchOptions) -> Result<PullReport, PullError> {
    let src = HttpSource::new(url, fetch, None)?;
    pull::pull(
        client,
        &src,
        &[REF.to_string()],
        &PullOptions::for_remote("origin"),
        &Progress::quiet("pull"),
    )
}

/// No ref moved, and the commit is marked partial when it was fetched at all.
pub fn assert_no_ref(client: &Repo) {
    assert_eq!(client.read_ref(&format!("origin:{REF}")).unwrap(), None);
}

/// `keel` fsck of `repo` finds nothing.
pub fn assert_fsck_clean(repo: &Repo) {
    let report = repo.fsck(&Progress::quiet("fsck")).unwrap();
    assert!(report.errors.is_empty(), "fsck: {:?}", report.errors);
}
