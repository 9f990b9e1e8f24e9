//! Prometheus counters and gauges of the graph server, rendered in the text exposition format.

use keel_utils::prometheus::{Exposition, KeyedFamily, Kind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// HTTP statuses the server answers with; requests are counted per status.
const STATUSES: [u16; 5] = [200, 400, 404, 405, 500];

/// Per-stream figures, updated on (re)load.
#[derive(Default)]
struct StreamStats {
    reloads: u64,
    reload_errors: u64,
    last_build_seconds: f64,
    /// (arch, nodes, edges)
    sizes: Vec<(String, usize, usize)>,
}

/// All metrics of one server.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; STATUSES.len()],
    streams: Mutex<BTreeMap<String, StreamStats>>,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, status: u16) {
        let slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a successful (re)build of `stream`.
    pub fn loaded(&self, stream: &str, build_time: Duration, sizes: Vec<(String, usize, usize)>) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let s = streams.entry(stream.to_string()).or_default();
        s.reloads += 1;
        s.last_build_seconds = build_time.as_secs_f64();
        s.sizes = sizes;
    }

    /// Records a failed reload of `stream` (the previous graph stays in service).
    pub fn reload_failed(&self, stream: &str) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.entry(stream.to_string()).or_default().reload_errors += 1;
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Exposition::new();
        out.family(
            "keel_graph_requests_total",
            Kind::Counter,
            "Requests answered, by HTTP status.",
        );
        for (status, count) in STATUSES.iter().zip(&self.requests) {
            out.sample(
                "keel_graph_requests_total",
                &[("status", &status.to_string())],
                count.load(Ordering::Relaxed),
            );
        }
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let families: [KeyedFamily<StreamStats, f64>; 3] = [
            (
                "keel_graph_loads_total",
                Kind::Counter,
                "Successful graph (re)builds of a stream.",
                |s| s.reloads as f64,
            ),
            (
                "keel_graph_reload_errors_total",
                Kind::Counter,
                "Failed reloads of a stream (the old graph stays).",
                |s| s.reload_errors as f64,
            ),
            (
                "keel_graph_build_seconds",
                Kind::Gauge,
                "Time the last graph build of a stream took.",
                |s| s.last_build_seconds,
            ),
        ];
        out.keyed("stream", streams.iter(), &families);
        for (name, help, pick) in [
            (
                "keel_graph_nodes",
                "Nodes in the graph of a stream and architecture.",
                0,
            ),
            (
                "keel_graph_edges",
                "Edges (all rollouts visible) of a stream and architecture.",
                1,
            ),
        ] {
            out.family(name, Kind::Gauge, help);
            for (stream, s) in streams.iter() {
                for (arch, nodes, edges) in &s.sizes {
                    let v = if pick == 0 { nodes } else { edges };
                    out.sample(name, &[("stream", stream), ("basearch", arch)], v);
                }
            }
        }
        out.into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.request(200);
        m.request(200);
        m.request(404);
        m.request(418);
        m.loaded(
            "stable",
            Duration::from_millis(5),
            vec![("x86_64".into(), 3, 2)],
        );
        m.reload_failed("stable");
        let text = m.render();
        for line in [
            "keel_graph_requests_total{status=\"200\"} 2",
            "keel_graph_requests_total{status=\"404\"} 1",
            "keel_graph_requests_total{status=\"500\"} 1",
            "keel_graph_loads_total{stream=\"stable\"} 1",
            "keel_graph_reload_errors_total{stream=\"stable\"} 1",
            "keel_graph_build_seconds{stream=\"stable\"} 0.005",
            "keel_graph_nodes{stream=\"stable\",basearch=\"x86_64\"} 3",
            "keel_graph_edges{stream=\"stable\",basearch=\"x86_64\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    /// Label values were written unescaped; a stream name with a quote broke the exposition.
    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.reload_failed("odd \"name\"\\x");
        let text = m.render();
        let want = "keel_graph_reload_errors_total{stream=\"odd \\\"name\\\"\\\\x\"} 1";
        assert!(text.lines().any(|l| l == want), "missing {want} in\n{text}");
    }
}
