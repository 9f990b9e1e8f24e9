//! Fetching a stream's two documents and building its graphs (one per architecture).
//!
//! A source is untrusted in its size and its timing: a URL may stream without end, a path may
//! be a FIFO or sit on a hung network filesystem. So every read is capped at
//! `max_source_bytes`, only regular files are read, and each read runs on a thread of its own
//! that the reload loop waits for at most `source_timeout_secs`: a hung read is abandoned (and
//! not started again while it hangs), and the last good graph keeps being served.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use keel_http::{Client, HttpOptions};
use sha2::{Digest, Sha256};

use crate::config::{Config, Source, StreamConfig};
use crate::graph::Graph;
use crate::metadata::{ReleaseIndex, Updates};

/// Reads sources within a size and a time limit.
#[derive(Clone)]
pub struct Fetcher {
    client: Client,
    max_bytes: u64,
    timeout: Duration,
    /// Sources being read now; one still here at the next read is a read that hangs.
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Fetcher {
    /// A fetcher with the limits of `config`.
    pub fn new(config: &Config) -> anyhow::Result<Fetcher> {
        let timeout = Duration::from_secs(config.source_timeout_secs);
        let client = Client::new(&HttpOptions {
            response_header_timeout: Some(timeout),
            request_timeout: Some(timeout),
            user_agent: Some(concat!("keel-graph/", env!("CARGO_PKG_VERSION")).into()),
            ..Default::default()
        })?;
        Ok(Fetcher {
            client,
            max_bytes: config.max_source_bytes,
            timeout,
            in_flight: Arc::default(),
        })
    }

    /// A fetcher with the same limits for one stream's reload loop: its reads run one after
    /// the other, so a read of the same source still running is one that hangs (two streams
    /// may share a source and read it at the same time).
    pub fn for_stream(&self) -> Fetcher {
        Fetcher {
            in_flight: Arc::default(),
            ..self.clone()
        }
    }

    /// Reads a file or GETs a URL (blocking, at most the timeout).
    pub fn fetch(&self, source: &Source) -> anyhow::Result<Vec<u8>> {
        let name = source.to_string();
        if !self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone())
        {
            bail!(
                "{name}: an earlier read has been hanging for over {} s and is still not \
                 done; check the file system or server behind it",
                self.timeout.as_secs()
            );
        }
        let (tx, rx) = mpsc::channel();
        let (me, source) = (self.clone(), source.clone());
        std::thread::Builder::new()
            .name("graph-source".into())
            .spawn(move || {
                let result = me.fetch_now(&source);
                me.in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&source.to_string());
                let _ = tx.send(result);
            })
            .context("starting a thread to read a source")?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(_) => bail!(
                "{name}: no complete answer within {} s (source_timeout_secs); a FIFO, a hung \
                 network filesystem or a stalled server?",
                self.timeout.as_secs()
            ),
        }
    }

    fn fetch_now(&self, source: &Source) -> anyhow::Result<Vec<u8>> {
        let reader: Box<dyn Read> = match source {
            Source::File(path) => {
                let meta = std::fs::metadata(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                if !meta.is_file() {
                    bail!(
                        "{} is not a regular file (a FIFO, device or directory); point the \
                         source at a file",
                        path.display()
                    );
                }
                Box::new(
                    std::fs::File::open(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
            }
            Source::Url(url) => {
                let accept = [("Accept".into(), "application/json".into())];
                self.client.open(url, &accept)?
            }
        };
        let mut data = Vec::new();
        reader
            .take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut data)
            .with_context(|| format!("reading {source}"))?;
        if data.len() as u64 > self.max_bytes {
            bail!(
                "{source} is larger than {} bytes (max_source_bytes)",
                self.max_bytes
            );
        }
        Ok(data)
    }

    /// Fetches the documents of `stream` (blocking). Returns their combined digest and contents.
    pub fn fetch_stream(
        &self,
        stream: &StreamConfig,
    ) -> anyhow::Result<([u8; 32], Vec<u8>, Vec<u8>)> {
        let index = self.fetch(&stream.release_index)?;
        let updates = self.fetch(&stream.updates)?;
        let mut h = Sha256::new();
        h.update((index.len() as u64).to_be_bytes());
        h.update(&index);
        h.update(&updates);
        Ok((h.finalize().into(), index, updates))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher(timeout: Duration, max_bytes: u64) -> Fetcher {
        Fetcher {
            // The client would wait far longer than the fetcher: the fetcher's own limit acts.
            client: Client::new(&HttpOptions {
                response_header_timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            })
            .unwrap(),
            max_bytes,
            timeout,
            in_flight: Arc::default(),
        }
    }

    #[test]
    fn a_hung_read_is_abandoned_and_not_started_again_while_it_hangs() {
        // Connections wait in the backlog and are never answered.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let source = Source::Url(format!("http://{}/r.json", listener.local_addr().unwrap()));
        let fetcher = fetcher(Duration::from_secs(1), 1024);
        let started = Instant::now();
        let err = fetcher.fetch(&source).unwrap_err().to_string();
        assert!(err.contains("no complete answer within 1 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let err = fetcher.fetch(&source).unwrap_err().to_string();
        assert!(err.contains("earlier read"), "{err}");
        // Once the hung read ends, the source is read again.
        drop(listener);
        let deadline = Instant::now() + Duration::from_secs(10);
        while fetcher
            .fetch(&source)
            .unwrap_err()
            .to_string()
            .contains("earlier read")
        {
            assert!(Instant::now() < deadline, "the hung read never ended");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn files_are_read_up_to_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let fetcher = fetcher(Duration::from_secs(5), 4);
        std::fs::write(&path, b"1234").unwrap();
        assert_eq!(fetcher.fetch(&Source::File(path.clone())).unwrap(), b"1234");
        std::fs::write(&path, b"12345").unwrap();
        let err = fetcher.fetch(&Source::File(path)).unwrap_err().to_string();
        assert!(err.contains("larger than 4 bytes"), "{err}");
        let err = fetcher
            .fetch(&Source::File(dir.path().to_path_buf()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
