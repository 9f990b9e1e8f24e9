//! Prometheus metrics of the FleetLock server (text exposition format).

use keel_utils::prometheus::{Exposition, KeyedFamily, Kind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::semaphore::Semaphore;

#[derive(Default, Clone)]
struct GroupStats {
    slots: u64,
    holders: usize,
    acquired: u64,
    expired: u64,
}

/// Counters and gauges.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    groups: Mutex<BTreeMap<String, GroupStats>>,
    conflicts: AtomicU64,
    skipped_keys: AtomicU64,
}

impl Metrics {
    /// Counts an answered request of `api` (`pre_reboot`, `steady_state`, ...).
    pub fn request(&self, api: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((api, status))
            .or_default() += 1;
    }

    fn group<R>(&self, group: &str, f: impl FnOnce(&mut GroupStats) -> R) -> R {
        f(self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(group.to_string())
            .or_default())
    }

    /// Records the semaphore as last seen.
    pub fn observe_group(&self, group: &str, sem: &Semaphore) {
        self.group(group, |g| {
            g.slots = sem.total_slots;
            g.holders = sem.holders.len();
        });
    }

    pub fn acquired(&self, group: &str) {
        self.group(group, |g| g.acquired += 1);
    }

    pub fn expired(&self, group: &str, n: usize) {
        if n > 0 {
            self.group(group, |g| g.expired += n as u64);
        }
    }

    /// Records how many keys the last expiry sweep skipped (corrupt or failing).
    pub fn skipped_keys(&self, n: usize) {
        self.skipped_keys.store(n as u64, Ordering::Relaxed);
    }

    pub fn conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = Exposition::new();
        out.family(
            "keel_fleetlock_requests_total",
            Kind::Counter,
            "FleetLock requests answered, by API and HTTP status.",
        );
        for ((api, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.sample(
                "keel_fleetlock_requests_total",
                &[("api", api), ("status", &status.to_string())],
                n,
            );
        }
        out.single(
            "keel_fleetlock_etcd_conflicts_total",
            Kind::Counter,
            "Compare-and-swap writes lost to a concurrent writer (retried).",
            self.conflicts.load(Ordering::Relaxed),
        );
        out.single(
            "keel_fleetlock_sweep_skipped_keys",
            Kind::Gauge,
            "etcd keys under the prefix the last expiry sweep skipped (corrupt; see the log).",
            self.skipped_keys.load(Ordering::Relaxed),
        );
        let groups = self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let families: [KeyedFamily<GroupStats, u64>; 4] = [
            (
                "keel_fleetlock_slots",
                Kind::Gauge,
                "Slots of a group.",
                |g| g.slots,
            ),
            (
                "keel_fleetlock_holders",
                Kind::Gauge,
                "Slots held in a group (last seen).",
                |g| g.holders as u64,
            ),
            (
                "keel_fleetlock_locks_acquired_total",
                Kind::Counter,
                "Slots taken in a group.",
                |g| g.acquired,
            ),
            (
                "keel_fleetlock_locks_expired_total",
                Kind::Counter,
                "Slots freed because their holder exceeded the lock TTL.",
                |g| g.expired,
            ),
        ];
        out.keyed("group", groups.iter(), &families);
        out.into_string()
    }
}
