//! The update graph of one (stream, architecture): nodes from the release index, policy from the
//! updates metadata, and edges computed once per load. A request only picks which rollout
//! targets a client may see ([`Graph::visible_rollouts`]) and serializes ([`Graph::to_json`]).
//!
//! Edge rules (Fedora CoreOS semantics):
//! - a release that is a rollout or a barrier gets an edge from every older release back to and
//!   including the closest older barrier (so nodes older than a barrier must pass through it);
//! - other releases get no incoming edges (they are listed so that nodes running them find
//!   themselves);
//! - dead-ends have no outgoing edges;
//! - edges into a rollout are hidden from a client whose wariness is above the rollout's current
//!   level ([`crate::metadata::Rollout::level`]), and from everyone before the rollout starts.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::metadata::{ReleaseIndex, Rollout, Updates};

pub use keel_proto::cincinnati::Node;
use keel_proto::cincinnati::{self as wire, AGE_INDEX, SCHEME};

/// An edge and, for edges into a rollout, which rollout (index into [`Graph::rollouts`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Edge {
    from: usize,
    to: usize,
    rollout: Option<usize>,
}

/// Failure to build a graph from the inputs.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("release index lists version {0} twice; versions must be unique")]
    DuplicateVersion(String),
    #[error("release {version} has an empty {arch} commit checksum")]
    EmptyChecksum { version: String, arch: String },
}

/// A precomputed graph for one (stream, architecture).
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    /// Target node and ramp of every rollout, in node order.
    rollouts: Vec<(usize, Rollout)>,
}

impl Graph {
    /// Builds the graph of `arch` from a release index and updates metadata. Releases without a
    /// commit for `arch` are left out; `age_index` stays the position in the release index.
    pub fn build(index: &ReleaseIndex, updates: &Updates, arch: &str) -> Result<Graph, GraphError> {
        let policy: HashMap<&str, _> = updates
            .releases
            .iter()
            .map(|e| (e.version.as_str(), &e.metadata))
            .collect();
        let mut seen = HashSet::new();
        let mut nodes = Vec::new();
        let mut kinds = Vec::new();
        for (age, release) in index.releases.iter().enumerate() {
            if !seen.insert(release.version.as_str()) {
                return Err(GraphError::DuplicateVersion(release.version.clone()));
            }
            let Some(commit) = release.commits.iter().find(|c| c.architecture == arch) else {
                continue;
            };
            if commit.checksum.is_empty() {
                return Err(GraphError::EmptyChecksum {
                    version: release.version.clone(),
                    arch: arch.to_string(),
                });
            }
            let mut metadata = BTreeMap::new();
            let mut put = |key: &str, value: String| {
                metadata.insert(key.to_string(), value);
            };
            put(AGE_INDEX, age.to_string());
            put(SCHEME, "checksum".into());
            let meta = policy.get(release.version.as_str());
            let barrier = meta.and_then(|m| m.barrier.as_ref());
            let deadend = meta.and_then(|m| m.deadend.as_ref());
            let rollout = meta.and_then(|m| m.rollout);
            if let Some(b) = barrier {
                put(wire::BARRIER, "true".into());
                if let Some(reason) = &b.reason {
                    put(wire::BARRIER_REASON, reason.clone());
                }
            }
            if let Some(d) = deadend {
                put(wire::DEADEND, "true".into());
                put(
                    wire::DEADEND_REASON,
                    d.reason.clone().unwrap_or_else(|| "generic".into()),
                );
            }
            if let Some(r) = rollout {
                put(wire::ROLLOUT, "true".into());
                put(wire::ROLLOUT_START_EPOCH, r.start_epoch.to_string());
                put(wire::ROLLOUT_START_VALUE, r.start_percentage.to_string());
                if r.duration_minutes > 0 {
                    put(
                        wire::ROLLOUT_DURATION_MINUTES,
                        r.duration_minutes.to_string(),
                    );
                }
            }
            nodes.push(Node {
                version: release.version.clone(),
                payload: commit.checksum.clone(),
                metadata,
            });
            kinds.push((barrier.is_some(), deadend.is_some(), rollout));
        }
        let mut edges = Vec::new();
        let mut rollouts = Vec::new();
        let mut previous_barrier = 0;
        for (to, &(barrier, _, rollout)) in kinds.iter().enumerate() {
            if barrier || rollout.is_some() {
                let slot = rollout.map(|r| {
                    rollouts.push((to, r));
                    rollouts.len() - 1
                });
                let sources = (previous_barrier..to).filter(|&from| !kinds[from].1);
                edges.extend(sources.map(|from| Edge {
                    from,
                    to,
                    rollout: slot,
                }));
            }
            if barrier {
                previous_barrier = to;
            }
        }
        Ok(Graph {
            nodes,
            edges,
            rollouts,
        })
    }

    /// The nodes, in age order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Number of edges when every rollout is visible.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Which rollouts a client of `wariness` (0.0 eager … 1.0 cautious) sees at `now` (UNIX
    /// seconds): started ones whose level has reached its wariness. One flag per rollout.
    pub fn visible_rollouts(&self, wariness: f64, now: i64) -> Vec<bool> {
        self.rollouts
            .iter()
            .map(|(_, r)| now >= r.start_epoch && wariness <= r.level(now))
            .collect()
    }

    /// The edges a client sees given [`Graph::visible_rollouts`], as (from, to) node indices.
    pub fn edges(&self, visible: &[bool]) -> Vec<[usize; 2]> {
        self.edges
            .iter()
            .filter(|e| e.rollout.is_none_or(|slot| visible[slot]))
            .map(|e| [e.from, e.to])
            .collect()
    }

    /// The Cincinnati JSON document for the given visible rollouts.
    pub fn to_json(&self, visible: &[bool]) -> Vec<u8> {
        let wire = wire::Graph {
            nodes: Cow::Borrowed(&self.nodes),
            edges: self.edges(visible),
        };
        serde_json::to_vec(&wire).expect("graph nodes and edges always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Commit, Reason, Release, UpdateEntry, UpdateMetadata};

    /// Releases "0".."n-1", all with an x86_64 commit, and the given policies.
    fn graph(n: usize, policy: &[(usize, UpdateMetadata)]) -> Graph {
        let index = ReleaseIndex {
            releases: (0..n)
                .map(|i| Release {
                    version: i.to_string(),
                    commits: vec![Commit {
                        architecture: "x86_64".into(),
                        checksum: format!("c{i}"),
                    }],
                })
                .collect(),
        };
        let updates = Updates {
            releases: policy
                .iter()
                .map(|(i, m)| UpdateEntry {
                    version: i.to_string(),
                    metadata: m.clone(),
                })
                .collect(),
        };
        Graph::build(&index, &updates, "x86_64").unwrap()
    }

    fn barrier() -> UpdateMetadata {
        UpdateMetadata {
            barrier: Some(Reason::default()),
            ..Default::default()
        }
    }
    fn deadend() -> UpdateMetadata {
        UpdateMetadata {
            deadend: Some(Reason::default()),
            ..Default::default()
        }
    }
    fn rollout(start_epoch: i64, start_percentage: f64, duration_minutes: u64) -> UpdateMetadata {
        UpdateMetadata {
            rollout: Some(Rollout {
                start_epoch,
                start_percentage,
                duration_minutes,
            }),
            ..Default::default()
        }
    }
    fn done() -> UpdateMetadata {
        rollout(0, 1.0, 0)
    }

    #[test]
    fn edge_rules_table() {
        let both = UpdateMetadata {
            deadend: Some(Reason::default()),
            ..done()
        };
        let barrier_rollout = UpdateMetadata {
            barrier: Some(Reason::default()),
            ..done()
        };
        type Case = (
            &'static str,
            usize,
            Vec<(usize, UpdateMetadata)>,
            Vec<[usize; 2]>,
        );
        let cases: Vec<Case> = vec![
            ("no policy: nodes only", 3, vec![], vec![]),
            (
                "completed rollout: every older node",
                3,
                vec![(2, done())],
                vec![[0, 2], [1, 2]],
            ),
            ("middle rollout", 4, vec![(2, done())], vec![[0, 2], [1, 2]]),
            (
                "barrier then rollout: rollout only from the barrier on",
                5,
                vec![(2, barrier()), (4, done())],
                vec![[0, 2], [1, 2], [2, 4], [3, 4]],
            ),
            (
                "two barriers chain",
                5,
                vec![(1, barrier()), (3, barrier())],
                vec![[0, 1], [1, 3], [2, 3]],
            ),
            (
                "dead-end has no outgoing edges",
                4,
                vec![(1, deadend()), (3, done())],
                vec![[0, 3], [2, 3]],
            ),
            (
                "dead-end rollout target keeps incoming edges",
                3,
                vec![(1, both), (2, done())],
                vec![[0, 1], [0, 2]],
            ),
            (
                "barrier that is also a rollout",
                4,
                vec![(2, barrier_rollout), (3, done())],
                vec![[0, 2], [1, 2], [2, 3]],
            ),
            (
                "two rollouts in parallel",
                4,
                vec![(2, done()), (3, done())],
                vec![[0, 2], [1, 2], [0, 3], [1, 3], [2, 3]],
            ),
        ];
        for (name, n, policy, want) in cases {
            let g = graph(n, &policy);
            let visible = g.visible_rollouts(1.0, 10);
            let mut got = g.edges(&visible);
            let mut want = want;
            got.sort();
            want.sort();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn rollout_ramp_and_wariness_table() {
        // start at t=1000, 0.2 at start, +0.8 over 100 minutes (6000 s).
        let g = graph(3, &[(1, done()), (2, rollout(1000, 0.2, 100))]);
        let into_2 = |w: f64, now: i64| g.edges(&g.visible_rollouts(w, now)).contains(&[1, 2]);
        for (wariness, now, want) in [
            (0.0, 999, false),
            (0.0, 1000, true),
            (0.2, 1000, true),
            (0.21, 1000, false),
            (0.6, 4000, true),
            (0.61, 4000, false),
            (1.0, 6999, false),
            (1.0, 7000, true),
            (1.0, 100_000, true),
        ] {
            assert_eq!(into_2(wariness, now), want, "wariness {wariness} at {now}");
        }
        // The completed rollout stays visible to everyone.
        assert!(g.edges(&g.visible_rollouts(1.0, 0)).contains(&[0, 1]));
    }

    #[test]
    fn nodes_carry_fcos_metadata_keys() {
        let g = graph(
            3,
            &[(0, barrier()), (1, deadend()), (2, rollout(5, 0.0, 60))],
        );
        let keys = |i: usize| g.nodes()[i].metadata.clone();
        assert_eq!(keys(0)["org.fedoraproject.coreos.updates.barrier"], "true");
        assert_eq!(
            keys(1)["org.fedoraproject.coreos.updates.deadend_reason"],
            "generic"
        );
        assert_eq!(
            keys(2)["org.fedoraproject.coreos.updates.duration_minutes"],
            "60"
        );
        assert_eq!(keys(2)["org.fedoraproject.coreos.updates.start_epoch"], "5");
        assert_eq!(keys(2)["org.fedoraproject.coreos.releases.age_index"], "2");
        assert_eq!(keys(2)["org.fedoraproject.coreos.scheme"], "checksum");
        assert_eq!(g.nodes()[2].payload, "c2");
    }

    #[test]
    fn other_arch_releases_are_skipped_but_keep_age_index() {
        let index: ReleaseIndex = serde_json::from_str(
            r#"{"releases":[
            {"version":"a","commits":[{"architecture":"x86_64","checksum":"1"}]},
            {"version":"b","commits":[{"architecture":"aarch64","checksum":"2"}]},
            {"version":"c","commits":[{"architecture":"aarch64","checksum":"3"},{"architecture":"x86_64","checksum":"4"}]}]}"#,
        )
        .unwrap();
        let g = Graph::build(&index, &Updates { releases: vec![] }, "x86_64").unwrap();
        let ages: Vec<_> = g
            .nodes()
            .iter()
            .map(|n| n.metadata[AGE_INDEX].clone())
            .collect();
        assert_eq!(ages, ["0", "2"]);
        assert_eq!(g.nodes()[1].payload, "4");
    }

    #[test]
    fn duplicate_versions_are_rejected() {
        let index: ReleaseIndex =
            serde_json::from_str(r#"{"releases":[{"version":"a"},{"version":"a"}]}"#).unwrap();
        let err = Graph::build(&index, &Updates { releases: vec![] }, "x86_64").unwrap_err();
        assert!(matches!(err, GraphError::DuplicateVersion(v) if v == "a"));
    }
}
