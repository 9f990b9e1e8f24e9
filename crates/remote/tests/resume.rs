//! A pull interrupted by a dying server keeps every object it verified; the next pull fetches
//! only the rest (counted in the second server's request log) and then moves the ref.

mod common;

use common::*;
use keel_store::{ObjectType, Repo, RepoMode};
use keel_testsupport::http::{Action, FaultServer};
use std::collections::HashSet;

#[test]
fn interrupted_pull_resumes_without_refetching_stored_objects() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 150);
    let all: Vec<(ObjectType, String)> = object_paths(&fx.repo);
    let client = Repo::init(&d.path().join("client"), RepoMode::BareUser).unwrap();

    let dying = FaultServer::start(&fx.repo, Some(60), |_, _, _| Action::Serve);
    let err = pull_from(&client, &dying.url, fast_options())
        .unwrap_err()
        .to_string();
    assert!(dying.is_dead(), "the server died part way");
    assert!(err.contains("GET"), "{err}");
    assert_no_ref(&client);
    assert!(client.is_partial(&fx.commit));

    let stored: HashSet<String> = client
        .list_objects()
        .unwrap()
        .into_iter()
        .map(|(t, c)| {
            let hex = c.to_hex();
            format!("objects/{}/{}.{}", &hex[..2], &hex[2..], t.extension(true))
        })
        .collect();
    assert!(
        stored.len() > 10 && stored.len() < all.len(),
        "{} of {} objects kept after the failure",
        stored.len(),
        all.len()
    );

    let server = FaultServer::start(&fx.repo, None, |_, _, _| Action::Serve);
    pull_from(&client, &server.url, fast_options()).unwrap();
    let objects: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|p| p.starts_with("objects/") && !p.ends_with(".commitmeta"))
        .collect();
    let refetched: Vec<&String> = objects.iter().filter(|p| stored.contains(*p)).collect();
    assert!(
        refetched.is_empty(),
        "refetched stored objects: {refetched:?}"
    );
    assert_eq!(
        objects.len(),
        all.len() - stored.len(),
        "GETs of the second run"
    );
    assert_eq!(
        client.read_ref(&format!("origin:{REF}")).unwrap(),
        Some(fx.commit)
    );
    assert!(!client.is_partial(&fx.commit));
    assert_fsck_clean(&client);
}
