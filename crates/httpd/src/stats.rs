//! Counters of the connection layer, rendered into each server's Prometheus text.

use keel_utils::prometheus::{Exposition, Kind};
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
        let mut out = Exposition::new();
        for (name, kind, help, value) in [
            (
                "connections_open",
                Kind::Gauge,
                "HTTP connections open now.",
                &self.open,
            ),
            (
                "connections_total",
                Kind::Counter,
                "HTTP connections accepted.",
                &self.accepted,
            ),
            (
                "connections_evicted_total",
                Kind::Counter,
                "Idle HTTP connections closed to make room at the connection cap.",
                &self.evicted,
            ),
            (
                "connections_timed_out_total",
                Kind::Counter,
                "HTTP connections closed because the head, body, idle or send deadline passed.",
                &self.timed_out,
            ),
            (
                "requests_refused_total",
                Kind::Counter,
                "Requests refused by the HTTP layer (malformed, too large, unsupported).",
                &self.refused,
            ),
        ] {
            let name = format!("{prefix}_http_{name}");
            out.single(&name, kind, help, value.load(Ordering::Relaxed));
        }
        out.into_string()
    }
}
