//! Fetching a stream's two documents and building its graphs (one per architecture).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use keel_utils::http::{Client, HttpOptions};
use sha2::{Digest, Sha256};

use crate::config::{Source, StreamConfig};
use crate::graph::Graph;
use crate::metadata::{ReleaseIndex, Updates};

/// Reads a file or GETs a URL.
pub fn fetch(source: &Source, client: &Client) -> anyhow::Result<Vec<u8>> {
    match source {
        Source::File(path) => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        }
        Source::Url(url) => Ok(client.get(url, &[("Accept".into(), "application/json".into())])?),
    }
}

/// The HTTP client used for URL sources.
pub fn http_client() -> anyhow::Result<Client> {
    Ok(Client::new(&HttpOptions {
        response_header_timeout: Some(Duration::from_secs(30)),
        request_timeout: Some(Duration::from_secs(120)),
        user_agent: Some(concat!("keel-graph/", env!("CARGO_PKG_VERSION")).into()),
        ..Default::default()
    })?)
}

/// A graph and its serialized answers, cached per set of visible rollouts (there are at most
/// rollouts + 1 distinct sets, so the cache stays tiny).
pub struct ArchGraph {
    pub graph: Graph,
    cache: RwLock<HashMap<Vec<bool>, Bytes>>,
}

impl ArchGraph {
    fn new(graph: Graph) -> ArchGraph {
        ArchGraph {
            graph,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The JSON answer for a client of `wariness` at `now`.
    pub fn answer(&self, wariness: f64, now: i64) -> Bytes {
        let visible = self.graph.visible_rollouts(wariness, now);
        if let Some(body) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&visible)
        {
            return body.clone();
        }
        let body = Bytes::from(self.graph.to_json(&visible));
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(visible, body.clone());
        body
    }
}

/// All graphs of one stream, built from one version of its inputs.
pub struct LoadedStream {
    /// SHA-256 over both inputs, to skip rebuilding when nothing changed.
    pub inputs: [u8; 32],
    pub arches: HashMap<String, ArchGraph>,
    pub build_time: Duration,
}

/// Fetches the documents of `stream` (blocking). Returns their combined digest and contents.
pub fn fetch_stream(
    stream: &StreamConfig,
    client: &Client,
) -> anyhow::Result<([u8; 32], Vec<u8>, Vec<u8>)> {
    let index = fetch(&stream.release_index, client)?;
    let updates = fetch(&stream.updates, client)?;
    let mut h = Sha256::new();
    h.update((index.len() as u64).to_be_bytes());
    h.update(&index);
    h.update(&updates);
    Ok((h.finalize().into(), index, updates))
}

/// Parses both documents and builds every configured architecture's graph.
pub fn build_stream(
    stream: &StreamConfig,
    inputs: [u8; 32],
    index: &[u8],
    updates: &[u8],
) -> anyhow::Result<LoadedStream> {
    let started = Instant::now();
    let index: ReleaseIndex = serde_json::from_slice(index).with_context(|| {
        format!(
            "release index {} is not a Fedora CoreOS release index",
            stream.release_index
        )
    })?;
    let updates: Updates = serde_json::from_slice(updates).with_context(|| {
        format!(
            "updates metadata {} is not Fedora CoreOS updates metadata",
            stream.updates
        )
    })?;
    let mut arches = HashMap::new();
    for arch in &stream.architectures {
        let graph = Graph::build(&index, &updates, arch).with_context(|| {
            format!(
                "stream {} ({}, {})",
                stream.name, stream.release_index, arch
            )
        })?;
        arches.insert(arch.clone(), ArchGraph::new(graph));
    }
    Ok(LoadedStream {
        inputs,
        arches,
        build_time: started.elapsed(),
    })
}
