//! Pulls against servers that misbehave on purpose (keel_testsupport::http::FaultServer): each
//! failure ends in a clear error naming the object and URL, within bounded time and memory, and
//! moves no ref; transient failures are retried.

mod common;

use common::*;
use keel_remote::fetch::FetchOptions;
use keel_store::{ObjectType, Repo, RepoMode};
use keel_testsupport::http::{count_paths, Action, FaultServer};
use std::time::{Duration, Instant};

fn client(dir: &std::path::Path) -> Repo {
    Repo::init(&dir.join("client"), RepoMode::BareUser).unwrap()
}

#[test]
fn retries_5xx_and_resets_then_succeeds() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 30);
    let server = FaultServer::start(&fx.repo, None, |path, before, _| {
        match (
            path.ends_with(".filez") || path.ends_with(".dirtree"),
            before,
        ) {
            (true, 0) if path.len() % 2 == 0 => Action::Status(503),
            (true, 0) => Action::Close,
            _ => Action::Serve,
        }
    });
    let c = client(d.path());
    let report = pull_from(&c, &server.url, fast_options()).unwrap();
    assert_eq!(report.refs[0].1, fx.commit);
    assert_eq!(
        c.read_ref(&format!("origin:{REF}")).unwrap(),
        Some(fx.commit)
    );
    assert!(!c.is_partial(&fx.commit));
    assert_fsck_clean(&c);
    let counts = count_paths(&server.requests());
    for (t, p) in object_paths(&fx.repo) {
        if matches!(t, ObjectType::File | ObjectType::DirTree) {
            assert_eq!(counts.get(&p), Some(&2), "{p}: one failure, one retry");
        }
    }
}

#[test]
fn not_found_names_the_object_and_moves_no_ref() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 10);
    let (_, victim) = object_paths(&fx.repo)
        .into_iter()
        .find(|(t, _)| *t == ObjectType::File)
        .unwrap();
    let v = victim.clone();
    let server = FaultServer::start(&fx.repo, None, move |path, _, _| {
        if path == v {
            Action::Status(404)
        } else {
            Action::Serve
        }
    });
    let c = client(d.path());
    let err = pull_from(&c, &server.url, fast_options())
        .unwrap_err()
        .to_string();
    let checksum = victim
        .replace("objects/", "")
        .replace('/', "")
        .replace(".filez", "");
    assert!(err.contains(&format!("file object {checksum}")), "{err}");
    assert!(err.contains(&format!("{}{victim}", server.url)), "{err}");
    assert!(err.contains("404"), "{err}");
    assert_no_ref(&c);
    assert!(
        c.is_partial(&fx.commit),
        "commitpartial marks the unfinished pull"
    );
}

#[test]
fn stalled_server_times_out_in_bounded_time() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let server = FaultServer::start(&fx.repo, None, |path, _, _| {
        if path.ends_with(".dirtree") {
            Action::Stall
        } else {
            Action::Serve
        }
    });
    let c = client(d.path());
    let opts = FetchOptions {
        read_timeout: Duration::from_millis(700),
        retries: 1,
        ..fast_options()
    };
    let start = Instant::now();
    let err = pull_from(&c, &server.url, opts).unwrap_err().to_string();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        err.contains("dirtree object") && err.contains("timed out"),
        "{err}"
    );
    assert_no_ref(&c);
}

#[test]
fn wrong_body_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let server = FaultServer::start(&fx.repo, None, |path, _, _| {
        if path.ends_with(".dirtree") || path.ends_with(".filez") {
            Action::Body(b"not the object you asked for".to_vec())
        } else {
            Action::Serve
        }
    });
    let c = client(d.path());
    let err = pull_from(&c, &server.url, fast_options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is corrupt") && err.contains(&server.url),
        "{err}"
    );
    assert_no_ref(&c);
}

#[test]
fn truncated_body_is_retried_then_refused() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let server = FaultServer::start(&fx.repo, None, |path, _, _| {
        if path.ends_with(".filez") {
            Action::Truncate(60)
        } else {
            Action::Serve
        }
    });
    let c = client(d.path());
    let err = pull_from(&c, &server.url, fast_options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("file object") && err.contains("truncated"),
        "{err}"
    );
    let counts = count_paths(&server.requests());
    assert!(
        counts.values().any(|n| *n == 3),
        "first try plus two retries: {counts:?}"
    );
    assert_no_ref(&c);
}

#[test]
fn endless_metadata_body_hits_the_cap() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let server = FaultServer::start(&fx.repo, None, |path, _, _| {
        if path.ends_with(".dirtree") {
            Action::Endless {
                prefix: Vec::new(),
                repeat: vec![0u8; 64 * 1024],
            }
        } else {
            Action::Serve
        }
    });
    let c = client(d.path());
    let opts = FetchOptions {
        max_metadata_size: 1 << 20,
        ..fast_options()
    };
    let err = pull_from(&c, &server.url, opts).unwrap_err().to_string();
    assert!(err.contains("larger than the 1048576-byte limit"), "{err}");
    assert_no_ref(&c);
}

#[test]
fn endless_content_body_is_cut_at_the_declared_size() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    // The real header of one .filez, then non-final stored deflate blocks of zeros forever.
    let (_, victim) = object_paths(&fx.repo)
        .into_iter()
        .find(|(t, p)| {
            *t == ObjectType::File && std::fs::metadata(fx.repo.join(p)).unwrap().len() > 200
        })
        .unwrap();
    let raw = std::fs::read(fx.repo.join(&victim)).unwrap();
    let hlen = u32::from_be_bytes(raw[..4].try_into().unwrap()) as usize;
    let prefix = raw[..8 + hlen].to_vec();
    let mut block = vec![0x00, 0xff, 0xff, 0x00, 0x00];
    block.resize(5 + 65535, 0);
    let v = victim.clone();
    let server = FaultServer::start(&fx.repo, None, move |path, _, _| {
        if path == v {
            Action::Endless {
                prefix: prefix.clone(),
                repeat: block.clone(),
            }
        } else {
            Action::Serve
        }
    });
    let c = client(d.path());
    let err = pull_from(&c, &server.url, fast_options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("longer than the") && err.contains("header declares"),
        "{err}"
    );
    assert!(err.contains(&victim), "{err}");
    assert_no_ref(&c);
}
