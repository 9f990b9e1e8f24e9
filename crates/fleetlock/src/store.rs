//! FleetLock operations on etcd: read the group's semaphore, drop expired holders, apply the
//! operation, write back with a compare-and-swap on the key's mod_revision; retry on conflict.
//! A group left without holders has its key deleted (with the same compare-and-swap), so etcd
//! holds keys only for groups with a slot taken.

use std::sync::RwLock;
use std::time::Duration;

use crate::etcd::{Etcd, EtcdError};
use crate::limits::{valid_group, Limits};
use crate::metrics::Metrics;
use crate::semaphore::{self, Document, LockOutcome, Semaphore};

/// How often a compare-and-swap is retried when other writers keep winning.
const MAX_ATTEMPTS: u32 = 64;

/// Failure of a lock operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("group {group}: all {slots} slots are held (holders: {holders})")]
    Full {
        group: String,
        slots: u64,
        holders: usize,
    },
    #[error("group {group}: the semaphore kept changing under concurrent writers; retry later")]
    Conflict { group: String },
    #[error("etcd key {key} does not hold a semaphore ({message}); fix or delete the key")]
    Corrupt { key: String, message: String },
}

/// Current time in UNIX seconds; replaceable in tests.
pub type Clock = fn() -> i64;

/// The system clock.
pub fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Lock state in etcd plus the limits and metrics that go with it.
pub struct Store {
    etcd: Etcd,
    limits: RwLock<Limits>,
    pub metrics: Metrics,
    clock: Clock,
}

impl Store {
    pub fn new(etcd: Etcd, limits: Limits, clock: Clock) -> Store {
        Store {
            etcd,
            limits: RwLock::new(limits),
            metrics: Metrics::default(),
            clock,
        }
    }

    /// Replaces the limits (slot counts apply from the next operation on each group).
    pub fn set_limits(&self, limits: Limits) {
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    fn limits(&self) -> Limits {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Read-modify-CAS loop. `op` returns its result and whether it changed the semaphore.
    fn update<R>(
        &self,
        group: &str,
        op: impl Fn(&mut Semaphore) -> (R, bool),
    ) -> Result<R, StoreError> {
        let key = semaphore::key(group);
        for attempt in 0..MAX_ATTEMPTS {
            let limits = self.limits();
            let current = self.etcd.get(&key)?;
            let (mut sem, revision) = match &current {
                Some(v) => {
                    let doc: Document =
                        serde_json::from_slice(&v.value).map_err(|e| StoreError::Corrupt {
                            key: String::from_utf8_lossy(&key).into(),
                            message: e.to_string(),
                        })?;
                    (doc.semaphore, v.mod_revision)
                }
                None => (Semaphore::new(limits.slots(group)), 0),
            };
            let slots = limits.slots(group);
            // An absent key is only created by an operation that changes it (no keys for idle groups).
            let mut changed = current.is_some() && sem.total_slots != slots;
            sem.total_slots = slots;
            let expired = sem.expire((self.clock)(), limits.lock_ttl_secs);
            changed |= !expired.is_empty();
            let (result, op_changed) = op(&mut sem);
            changed |= op_changed;
            // Keys of groups without holders are removed, also ones left by older versions.
            let remove = current.is_some() && sem.holders.is_empty();
            let write = match current {
                None => changed && !sem.holders.is_empty(),
                Some(_) => changed || remove,
            };
            if !write {
                self.metrics.observe_group(group, &sem);
                return Ok(result);
            }
            let written = if remove {
                self.etcd.compare_and_delete(&key, revision)?
            } else {
                let doc = serde_json::to_vec(&Document {
                    semaphore: sem.clone(),
                })
                .map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&key).into(),
                    message: e.to_string(),
                })?;
                self.etcd.compare_and_put(&key, revision, &doc)?
            };
            if written {
                for id in &expired {
                    tracing::warn!(
                        "group {group}: lock of {id} expired after {} s; slot freed",
                        limits.lock_ttl_secs
                    );
                }
                self.metrics.expired(group, expired.len());
                self.metrics.observe_group(group, &sem);
                return Ok(result);
            }
            self.metrics.conflict();
            std::thread::sleep(Duration::from_millis(1 + u64::from(attempt % 8) * 2));
        }
        Err(StoreError::Conflict {
            group: group.into(),
        })
    }

    /// Takes (or confirms) a slot for `id` in `group`.
    pub fn pre_reboot(&self, group: &str, id: &str) -> Result<(), StoreError> {
        let now = (self.clock)();
        let outcome = self.update(group, |sem| {
            let outcome = sem.lock(id, now);
            let changed = outcome == LockOutcome::Taken;
            ((outcome, sem.total_slots), changed)
        })?;
        match outcome {
            (LockOutcome::Taken, _) => {
                tracing::info!("group {group}: slot taken by {id}");
                self.metrics.acquired(group);
                Ok(())
            }
            (LockOutcome::AlreadyHeld, _) => Ok(()),
            (LockOutcome::Full { holders }, slots) => Err(StoreError::Full {
                group: group.into(),
                slots,
                holders,
            }),
        }
    }

    /// Releases `id`'s slot in `group` if it holds one.
    pub fn steady_state(&self, group: &str, id: &str) -> Result<(), StoreError> {
        if self.update(group, |sem| {
            let released = sem.unlock(id);
            (released, released)
        })? {
            tracing::info!("group {group}: slot released by {id}");
        }
        Ok(())
    }

    /// Drops expired holders of every group in etcd, removes keys of groups left without
    /// holders and refreshes the holder gauges. A key that is not a semaphore of a valid group
    /// (or a group whose update fails) is reported and skipped: the other groups are still
    /// swept. Returns the keys skipped.
    pub fn sweep(&self) -> Result<Vec<String>, StoreError> {
        let prefix = semaphore::PREFIX.as_bytes();
        let mut skipped = Vec::new();
        for (key, _) in self.etcd.get_prefix(prefix)? {
            let name = String::from_utf8_lossy(&key).into_owned();
            let result = match semaphore::group_of_key(&key).filter(|g| valid_group(g)) {
                Some(group) => self.update(&group, |_| ((), false)),
                None => Err(StoreError::Corrupt {
                    key: name.clone(),
                    message: "not the key of a group's semaphore".into(),
                }),
            };
            if let Err(e) = result {
                tracing::warn!("expiry sweep skipped etcd key {name}: {e}");
                skipped.push(name);
            }
        }
        self.metrics.skipped_keys(skipped.len());
        Ok(skipped)
    }
}
