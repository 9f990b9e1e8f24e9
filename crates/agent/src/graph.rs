//! The Cincinnati client side: the graph request (the parameters Zincati sends), the response,
//! and the choice of the update target.
//!
//! The booted node is found by its payload (the OSTree commit). Targets are the ends of edges
//! leaving it; releases recorded as failed (`keel-failed.json`: boot counting rolled the node
//! back from them) are never chosen; the newest remaining one by `age_index` (then version,
//! then payload) wins, and only if it is newer than the booted release (no downgrades). A
//! booted release marked `deadend` has no edges; its reason is reported for the login message.

use keel_http::{Client, HttpError};
use std::collections::HashSet;

pub use keel_proto::cincinnati::{Node, AGE_INDEX, DEADEND, DEADEND_REASON, SCHEME};

/// A Cincinnati graph as the agent holds it (owning its nodes).
pub type Graph = keel_proto::cincinnati::Graph<'static>;

/// Why the graph could not be used. `kind()` is a bounded label for metrics.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The request failed.
    #[error("update graph request failed: {0}")]
    Request(#[from] HttpError),
    /// The body is not a Cincinnati graph.
    #[error("update graph from {url} is not valid Cincinnati JSON: {message}")]
    Decode { url: String, message: String },
    /// An edge names a node that does not exist, or a node lacks required metadata.
    #[error("update graph node {index}: {message}")]
    Node { index: usize, message: String },
}

impl GraphError {
    /// A bounded error kind (Zincati's labels where they exist).
    pub fn kind(&self) -> String {
        match self {
            GraphError::Request(HttpError::Status { code, .. }) => format!("generic_http_{code}"),
            GraphError::Request(_) => "client_failed_request".into(),
            GraphError::Decode { .. } => "client_failed_json_decoding".into(),
            GraphError::Node { .. } => "client_failed_node_parsing".into(),
        }
    }
}

/// A release the agent may go to (the type is part of the agent state contract).
pub use keel_proto::agent::Release;

/// The request parameters, as Zincati sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `x86_64`, `aarch64`, ...
    pub basearch: String,
    /// The stream.
    pub stream: String,
    /// App-specific node id.
    pub node_uuid: String,
    /// Explicit wariness, else the server hashes `node_uuid`.
    pub rollout_wariness: Option<f64>,
    /// The identity group.
    pub group: String,
    /// Booted version and commit (informational for the server).
    pub os_version: Option<String>,
    /// Booted commit.
    pub os_checksum: String,
    /// `ignition.platform.id` from the kernel command line.
    pub platform: Option<String>,
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Query {
    /// The request URL under `base_url`.
    pub fn url(&self, base_url: &str) -> String {
        let mut params = vec![
            ("basearch", self.basearch.clone()),
            ("stream", self.stream.clone()),
            ("node_uuid", self.node_uuid.clone()),
            ("group", self.group.clone()),
            ("os_checksum", self.os_checksum.clone()),
        ];
        if let Some(w) = self.rollout_wariness {
            params.push(("rollout_wariness", format!("{w:.06}")));
        }
        if let Some(v) = &self.os_version {
            params.push(("os_version", v.clone()));
        }
        if let Some(p) = &self.platform {
            params.push(("platform", p.clone()));
        }
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        format!(
            "{}/v1/graph?{}",
            base_url.trim_end_matches('/'),
            q.join("&")
        )
    }
}

/// GET the graph.
pub fn fetch(http: &Client, base_url: &str, q: &Query) -> Result<Graph, GraphError> {
    let url = q.url(base_url);
    let body = http.get(&url, &[("Accept".into(), "application/json".into())])?;
    parse(&url, &body)
}

/// A graph response (`body`, from `url`): Cincinnati JSON whose edges all name nodes.
pub fn parse(url: &str, body: &[u8]) -> Result<Graph, GraphError> {
    let g: Graph = serde_json::from_slice(body).map_err(|e| GraphError::Decode {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    for e in &g.edges {
        if let Some(i) = e.iter().find(|i| **i >= g.nodes.len()) {
            return Err(GraphError::Node {
                index: *i,
                message: format!("edge {e:?} points past the {} nodes", g.nodes.len()),
            });
        }
    }
    Ok(g)
}

/// What the graph says about the booted release.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// The booted release, if the graph lists it.
    pub booted: Option<Release>,
    /// The booted release is a dead-end; the reason.
    pub deadend: Option<String>,
    /// The release to update to.
    pub target: Option<Release>,
    /// Reachable releases left out because they failed before.
    pub skipped_failed: Vec<Release>,
}

fn release(g: &Graph, i: usize) -> Result<Release, GraphError> {
    let n = &g.nodes[i];
    let age_index = n
        .metadata
        .get(AGE_INDEX)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| GraphError::Node {
            index: i,
            message: format!("release {} has no numeric {AGE_INDEX}", n.version),
        })?;
    Ok(Release {
        version: n.version.clone(),
        commit: n.payload.clone(),
        age_index,
    })
}

/// Find the booted commit and choose the target, skipping `failed` commits.
pub fn evaluate(
    g: &Graph,
    booted_commit: &str,
    failed: &HashSet<String>,
) -> Result<Evaluation, GraphError> {
    let Some(b) = g.nodes.iter().position(|n| n.payload == booted_commit) else {
        return Ok(Evaluation::default());
    };
    let booted = release(g, b)?;
    let node = &g.nodes[b];
    let deadend = (node.metadata.get(DEADEND).map(String::as_str) == Some("true")).then(|| {
        node.metadata
            .get(DEADEND_REASON)
            .cloned()
            .unwrap_or_else(|| "(unknown reason)".into())
    });
    let mut candidates = Vec::new();
    let mut skipped_failed = Vec::new();
    for [from, to] in &g.edges {
        if *from != b {
            continue;
        }
        let scheme = g.nodes[*to].metadata.get(SCHEME).map(String::as_str);
        if scheme.is_some_and(|s| s != "checksum") {
            continue;
        }
        let r = release(g, *to)?;
        if failed.contains(&r.commit) {
            skipped_failed.push(r);
        } else {
            candidates.push(r);
        }
    }
    let target = candidates
        .into_iter()
        .filter(|r| r.age_index > booted.age_index && r.commit != booted.commit)
        .max_by(|a, b| {
            (a.age_index, &a.version, &a.commit).cmp(&(b.age_index, &b.version, &b.commit))
        });
    Ok(Evaluation {
        booted: Some(booted),
        deadend,
        target,
        skipped_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node(version: &str, age: u64, extra: &[(&str, &str)]) -> Node {
        let mut metadata = BTreeMap::from([
            (AGE_INDEX.to_string(), age.to_string()),
            (SCHEME.to_string(), "checksum".to_string()),
        ]);
        metadata.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Node {
            version: version.into(),
            payload: format!("c{version}"),
            metadata,
        }
    }

    #[test]
    fn chooses_the_newest_reachable_release_that_did_not_fail() {
        let dead = [(DEADEND, "true"), (DEADEND_REASON, "https://example/why")];
        let nodes = vec![
            node("1", 0, &[]),
            node("2", 1, &[]),
            node("3", 2, &[]),
            node("4", 3, &dead),
            node("5", 4, &[(SCHEME, "oci")]),
            node("6", 5, &[(DEADEND, "true")]),
        ];
        // (edges, booted, failed, target, dead-end reason, skipped)
        type Case = (
            &'static [[usize; 2]],
            &'static str,
            &'static [&'static str],
            Option<&'static str>,
            Option<&'static str>,
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            (&[[0, 1], [0, 2], [1, 2]], "c1", &[], Some("3"), None, &[]),
            (&[[0, 1], [0, 2], [1, 2]], "c2", &[], Some("3"), None, &[]),
            (&[[0, 1], [0, 2], [1, 2]], "c3", &[], None, None, &[]),
            // The newest failed before: take the next one, never the failed one.
            (&[[0, 1], [0, 2]], "c1", &["c3"], Some("2"), None, &["3"]),
            (&[[0, 2]], "c1", &["c3"], None, None, &["3"]),
            // No downgrades even when an edge says so.
            (&[[2, 0], [2, 1]], "c3", &[], None, None, &[]),
            // Dead-ends: no outgoing edges, the reason is reported.
            (
                &[[0, 3], [1, 3]],
                "c4",
                &[],
                None,
                Some("https://example/why"),
                &[],
            ),
            (&[], "c6", &[], None, Some("(unknown reason)"), &[]),
            // Not a checksum payload: ignored.
            (&[[0, 4]], "c1", &[], None, None, &[]),
            // Not in the graph at all.
            (&[[0, 1]], "cX", &[], None, None, &[]),
        ];
        for (edges, booted, failed, target, deadend, skipped) in cases {
            let g = Graph {
                nodes: nodes.clone().into(),
                edges: edges.to_vec(),
            };
            let failed: HashSet<String> = failed.iter().map(|s| s.to_string()).collect();
            let e = evaluate(&g, booted, &failed).unwrap();
            assert_eq!(
                e.target.map(|r| r.version).as_deref(),
                *target,
                "{edges:?} from {booted}"
            );
            assert_eq!(e.deadend.as_deref(), *deadend, "{edges:?} from {booted}");
            let s: Vec<String> = e.skipped_failed.into_iter().map(|r| r.version).collect();
            assert_eq!(s, *skipped, "{edges:?} from {booted}");
            assert_eq!(e.booted.is_some(), *booted != "cX");
        }
    }

    #[test]
    fn a_node_without_age_index_is_an_error() {
        let mut bad = node("2", 1, &[]);
        bad.metadata.remove(AGE_INDEX);
        let g = Graph {
            nodes: vec![node("1", 0, &[]), bad].into(),
            edges: vec![[0, 1]],
        };
        let e = evaluate(&g, "c1", &HashSet::new()).unwrap_err();
        assert_eq!(e.kind(), "client_failed_node_parsing");
        assert!(e.to_string().contains(AGE_INDEX), "{e}");
    }

    #[test]
    fn query_url_carries_zincatis_parameters() {
        let mut q = Query {
            basearch: "x86_64".into(),
            stream: "stable".into(),
            node_uuid: "0123456789abcdef0123456789abcdef".into(),
            rollout_wariness: Some(0.25),
            group: "workers".into(),
            os_version: Some("12.20261125.3.0".into()),
            os_checksum: "abc".into(),
            platform: Some("qemu".into()),
        };
        assert_eq!(
            q.url("http://h:1/"),
            "http://h:1/v1/graph?basearch=x86_64&stream=stable&node_uuid=0123456789abcdef0123456789abcdef\
             &group=workers&os_checksum=abc&rollout_wariness=0.250000&os_version=12.20261125.3.0&platform=qemu"
        );
        q.rollout_wariness = None;
        q.os_version = None;
        q.platform = Some("a b&c".into());
        assert!(
            q.url("http://h")
                .ends_with("&os_checksum=abc&platform=a%20b%26c"),
            "{}",
            q.url("http://h")
        );
    }
}
