//! Fuzz entry points for every parser of untrusted bytes: Butane YAML, Ignition JSON, the
//! OSTree summary and its signatures, the objects a pull fetches (GVariant values, commits,
//! dirtrees, dirmeta, archive file objects), the graph server's Fedora CoreOS metadata, and the
//! graph responses the node's agent reads.
//! Each entry point must return on any input without a panic, and checks what the parser's
//! callers rely on (what parses serializes back to itself, an added signature verifies, a
//! built graph is valid JSON). The production crates export parsers, not fuzz entry points.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets` call these functions; the test suite runs
//! them under [`bounded::run`], a deterministic mutation loop with a time and iteration bound
//! that also bounds the cost of every single input.

pub mod bounded;
pub mod config;
pub mod mutator;
pub mod objects;
pub mod seeds;

use ed25519_dalek::SigningKey;
use keel_graph::graph::Graph;
use keel_graph::metadata::{ReleaseIndex, Updates};
use keel_remote::sign;
use keel_remote::summary::Summary;

pub use config::{fuzz_json, fuzz_yaml};
pub use objects::{fuzz_commit, fuzz_dirmeta, fuzz_dirtree, fuzz_file_object, fuzz_gvariant};

/// The fixed key that signature inputs are checked against.
pub fn test_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A repository `summary` file as a mirror serves it.
pub fn fuzz_summary(data: &[u8]) {
    let Ok(summary) = Summary::parse(data) else {
        return;
    };
    let again = Summary::parse(&summary.to_bytes());
    assert_eq!(
        again.as_ref().ok(),
        Some(&summary),
        "a parsed summary must serialize to bytes that parse to the same summary"
    );
    if let Some(first) = summary.refs.first() {
        assert!(summary.find(&first.name).is_some());
    }
    let key = test_key().verifying_key();
    assert!(keel_remote::summary::verify(data, None, &[key]).is_err());
}

/// A `summary.sig` file or a commit's detached metadata (`.commitmeta`): an `a{sv}` whose
/// `ostree.sign.ed25519` entry holds the signatures. It is parsed before any signature is
/// checked, so it is as untrusted as the mirror.
pub fn fuzz_signatures(data: &[u8]) {
    let payload = seeds::SIGNED_PAYLOAD;
    let key = test_key();
    let _ = sign::signatures(data);
    let _ = sign::verify(payload, Some(data), &[key.verifying_key()]);
    if let Ok((meta, _)) = sign::add_signature(Some(data), payload, &key) {
        assert!(
            sign::verify(payload, Some(&meta), &[key.verifying_key()]).is_ok(),
            "a signature just added must verify"
        );
    }
}

/// The graph server's inputs: one JSON document read both as a release index and as updates
/// metadata (both formats are `{"releases": [...]}` and ignore unknown keys), then the graph
/// of `x86_64` built and serialized.
pub fn fuzz_graph_metadata(data: &[u8]) {
    let (Ok(index), Ok(updates)) = (
        serde_json::from_slice::<ReleaseIndex>(data),
        serde_json::from_slice::<Updates>(data),
    ) else {
        return;
    };
    let Ok(graph) = Graph::build(&index, &updates, "x86_64") else {
        return;
    };
    for (wariness, now) in [(0.0, 0), (0.5, 1_700_000_000), (1.0, i64::MAX)] {
        let json = graph.to_json(&graph.visible_rollouts(wariness, now));
        assert!(
            serde_json::from_slice::<serde_json::Value>(&json).is_ok(),
            "the graph must serialize to JSON: {}",
            String::from_utf8_lossy(&json)
        );
    }
}

/// A graph server's response as the node's agent reads it: parsed (every edge must name a
/// node), then evaluated from every node as the booted one. A chosen target is a node the
/// booted one has an edge to, newer by `age_index`, never a failed one.
pub fn fuzz_cincinnati_graph(data: &[u8]) {
    let Ok(graph) = keel_agent::graph::parse("http://fuzz/v1/graph", data) else {
        return;
    };
    let failed: std::collections::HashSet<String> = graph
        .nodes
        .iter()
        .take(1)
        .map(|n| n.payload.clone())
        .collect();
    for node in graph.nodes.iter().take(16) {
        let Ok(e) = keel_agent::graph::evaluate(&graph, &node.payload, &failed) else {
            continue;
        };
        if let (Some(booted), Some(target)) = (&e.booted, &e.target) {
            assert!(target.age_index > booted.age_index, "{e:?}");
            assert!(!failed.contains(&target.commit), "{e:?}");
            assert!(
                graph
                    .edges
                    .iter()
                    .any(|[f, t]| graph.nodes[*f].payload == booted.commit
                        && graph.nodes[*t].payload == target.commit),
                "{e:?}"
            );
        }
    }
}
