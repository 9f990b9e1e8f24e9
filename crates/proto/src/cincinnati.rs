//! The update graph on the wire: `{"nodes": [...], "edges": [[from, to], ...]}`, each node a
//! release with string metadata under Fedora CoreOS's key prefix, so Zincati-like clients
//! understand Keel's graph server and Keel's agent understands Fedora CoreOS's.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Prefix of every metadata key (shared with Fedora CoreOS).
pub const PREFIX: &str = "org.fedoraproject.coreos";
/// The release's position in the release index (older releases have smaller values).
pub const AGE_INDEX: &str = "org.fedoraproject.coreos.releases.age_index";
/// How `payload` names the release: `checksum` (an OSTree commit).
pub const SCHEME: &str = "org.fedoraproject.coreos.scheme";
/// `true` on a release every older one must update through.
pub const BARRIER: &str = "org.fedoraproject.coreos.updates.barrier";
/// Why the release is a barrier.
pub const BARRIER_REASON: &str = "org.fedoraproject.coreos.updates.barrier_reason";
/// `true` on a release nodes cannot update from.
pub const DEADEND: &str = "org.fedoraproject.coreos.updates.deadend";
/// Why the release is a dead end.
pub const DEADEND_REASON: &str = "org.fedoraproject.coreos.updates.deadend_reason";
/// `true` on a release being rolled out gradually.
pub const ROLLOUT: &str = "org.fedoraproject.coreos.updates.rollout";
/// When the rollout starts (seconds since the epoch).
pub const ROLLOUT_START_EPOCH: &str = "org.fedoraproject.coreos.updates.start_epoch";
/// The share of nodes offered the release at the start (0.0–1.0).
pub const ROLLOUT_START_VALUE: &str = "org.fedoraproject.coreos.updates.start_value";
/// Minutes until every node is offered it.
pub const ROLLOUT_DURATION_MINUTES: &str = "org.fedoraproject.coreos.updates.duration_minutes";

/// One release in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Release version.
    pub version: String,
    /// The OSTree commit (scheme `checksum`).
    pub payload: String,
    /// String metadata, keys under [`PREFIX`].
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A Cincinnati graph. The server serializes it borrowing its nodes; a client owns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph<'a> {
    /// Releases.
    pub nodes: Cow<'a, [Node]>,
    /// `[from, to]` indexes into `nodes`.
    pub edges: Vec<[usize; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_graph_reads_back_owned() {
        let nodes = vec![
            Node {
                version: "12.1".into(),
                payload: "aa".repeat(32),
                metadata: BTreeMap::from([(AGE_INDEX.into(), "0".into())]),
            },
            Node {
                version: "12.2".into(),
                payload: "bb".repeat(32),
                metadata: BTreeMap::from([(AGE_INDEX.into(), "1".into())]),
            },
        ];
        let sent = Graph {
            nodes: Cow::Borrowed(&nodes),
            edges: vec![[0, 1]],
        };
        let text = serde_json::to_string(&sent).unwrap();
        let got: Graph<'static> = serde_json::from_str(&text).unwrap();
        assert_eq!(got, sent);
        assert!(text.starts_with(r#"{"nodes":[{"version":"12.1","payload":"#));
    }

    #[test]
    fn metadata_keys_share_the_prefix() {
        for key in [
            AGE_INDEX,
            SCHEME,
            BARRIER,
            BARRIER_REASON,
            DEADEND,
            DEADEND_REASON,
            ROLLOUT,
            ROLLOUT_START_EPOCH,
            ROLLOUT_START_VALUE,
            ROLLOUT_DURATION_MINUTES,
        ] {
            assert!(key.starts_with(&format!("{PREFIX}.")), "{key}");
        }
    }

    #[test]
    fn missing_metadata_is_empty() {
        let n: Node = serde_json::from_str(r#"{"version":"1","payload":"x"}"#).unwrap();
        assert!(n.metadata.is_empty());
    }
}
