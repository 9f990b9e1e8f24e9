//! The crate layers ARCHITECTURE.md's code map describes, checked on the resolved dependency
//! graph (`cargo metadata`): the contracts crate is the ground floor, the deployment engine
//! does not touch the network, and what runs on a node does not link the fleet servers (axum,
//! tokio, the etcd client).

// The test runs cargo and reads its JSON output.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

/// Normal (non-dev, non-build) dependencies of every package, by package name.
fn normal_deps() -> HashMap<String, Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The host's graph only: packages of other platforms need not be downloaded.
    let rustc = Command::new("rustc").arg("-vV").output().unwrap();
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| names[d["pkg"].as_str().unwrap()].to_string())
                .collect();
            (names[n["id"].as_str().unwrap()].to_string(), deps)
        })
        .collect()
}

/// Every package `name` links, itself excluded.
fn closure(deps: &HashMap<String, Vec<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        for d in deps.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn crates_follow_their_layers() {
    let deps = normal_deps();
    let keel_crates = |set: &BTreeSet<String>| -> Vec<String> {
        set.iter()
            .filter(|n| n.starts_with("keel-"))
            .cloned()
            .collect()
    };
    for ground in ["keel-proto", "keel-utils"] {
        let linked = closure(&deps, ground);
        assert!(
            keel_crates(&linked).is_empty(),
            "{ground} is a ground-floor crate but links {:?}",
            keel_crates(&linked)
        );
    }
    let agent = closure(&deps, "keel-agent");
    for server_side in [
        "axum",
        "tokio",
        "hyper",
        "keel-fleetlock",
        "keel-graph",
        "keel-httpd",
    ] {
        assert!(
            !agent.contains(server_side),
            "the node's agent links {server_side}"
        );
    }
    // The deployment engine is offline: fetching is keel-update's job.
    let engine = closure(&deps, "keel-deploy");
    for network in ["keel-remote", "keel-update", "ureq", "rustls"] {
        assert!(
            !engine.contains(network),
            "the offline deployment engine keel-deploy links {network}"
        );
    }
    let proto = closure(&deps, "keel-proto");
    assert!(
        proto
            .iter()
            .all(|p| p.starts_with("serde") || !p.contains("http")),
        "keel-proto links {proto:?}"
    );
}
