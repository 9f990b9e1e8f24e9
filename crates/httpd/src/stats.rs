//! Counters of the connection layer, rendered into each server's Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Connection-layer counters shared by the accept loop and every connection.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) open: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) refused: AtomicU64,
}

impl Stats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for a new one at the connection cap.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Connections closed because a deadline passed (head, body, idle or send).
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, metric names starting with `prefix` (e.g. `keel_graph`).
    pub fn render(&self, prefix: &str) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "connections_open",
                "gauge",
                "HTTP connections open now.",
                &self.open,
            ),
            (
                "connections_total",
                "counter",
                "HTTP connections accepted.",
                &self.accepted,
            ),
            (
                "connections_evicted_total",
                "counter",
                "Idle HTTP connections closed to make room at the connection cap.",
                &self.evicted,
            ),
            (
                "connections_timed_out_total",
                "counter",
                "HTTP connections closed because the head, body, idle or send deadline passed.",
                &self.timed_out,
            ),
            (
                "requests_refused_total",
                "counter",
                "Requests refused by the HTTP layer (malformed, too large, unsupported).",
                &self.refused,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {prefix}_http_{name} {help}\n# TYPE {prefix}_http_{name} {kind}\n{prefix}_http_{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}
