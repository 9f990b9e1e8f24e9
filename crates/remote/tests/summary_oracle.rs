//! `summary` bytes: keel's summary of a repository equals the one `ostree summary -u` (2022.7)
//! writes for it, byte for byte (given ostree's last-modified time), and keel parses it.

use keel_remote::summary::{self, Summary, LAST_MODIFIED_KEY};
use keel_store::{Repo, Variant};
use std::process::Command;

fn ostree(args: &[&str]) {
    let mut c = Command::new("ostree");
    c.args(args);
    keel_utils::cmd::run(&mut c).unwrap();
}

#[test]
fn summary_matches_ostree_byte_for_byte() {
    if !keel_utils::cmd::have("ostree") {
        keel_testsupport::skip(
            "summary_matches_ostree_byte_for_byte: `ostree` is not installed (apt-get install ostree)",
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/a"), "a\n").unwrap();
    let repo = d.path().join("repo");
    let r = format!("--repo={}", repo.display());
    let t = format!("--tree=dir={}", tree.display());
    ostree(&["init", &r, "--mode=archive"]);
    ostree(&[
        "commit",
        &r,
        "-b",
        "zeta/x86_64",
        "-s",
        "z",
        "--add-metadata-string=version=1.2",
        &t,
    ]);
    ostree(&["commit", &r, "-b", "alpha", "-s", "a", &t]);
    ostree(&[
        "commit",
        &r,
        "-b",
        "mid/ref",
        "-s",
        "m",
        "--timestamp=2020-01-01T00:00:00Z",
        &t,
    ]);
    ostree(&["summary", &r, "-u"]);
    let theirs = std::fs::read(repo.join("summary")).unwrap();
    let parsed = Summary::parse(&theirs).unwrap();
    let names: Vec<&str> = parsed.refs.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mid/ref", "zeta/x86_64"]);
    let Some(Variant::U64(be)) = parsed.meta(LAST_MODIFIED_KEY) else {
        panic!("no last-modified in {parsed:?}");
    };
    let ours = summary::build(&Repo::open(&repo).unwrap(), u64::from_be(*be)).unwrap();
    assert_eq!(ours, parsed);
    assert_eq!(ours.to_bytes(), theirs);
}
