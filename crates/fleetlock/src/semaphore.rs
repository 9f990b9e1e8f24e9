//! The per-group semaphore stored in etcd (one key per group, Airlock's layout plus acquisition
//! times): `{"semaphore": {"total_slots": N, "holders": ["id", ...], "acquired": {"id": unix_secs}}}`.
//! Pure state transitions; [`crate::store`] wraps them in compare-and-swap transactions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The etcd key of a group's semaphore.
pub fn key(group: &str) -> Vec<u8> {
    format!("{PREFIX}{group}/v1/semaphore").into_bytes()
}

/// Prefix of every semaphore key.
pub const PREFIX: &str = "keel.fleetlock/groups/";

/// The group name inside a semaphore key.
pub fn group_of_key(key: &[u8]) -> Option<String> {
    let key = std::str::from_utf8(key).ok()?;
    key.strip_prefix(PREFIX)?
        .strip_suffix("/v1/semaphore")
        .map(str::to_string)
}

/// Stored document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub semaphore: Semaphore,
}

/// A counting semaphore with owners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Semaphore {
    pub total_slots: u64,
    #[serde(default)]
    pub holders: Vec<String>,
    /// Acquisition time (UNIX seconds) of each holder.
    #[serde(default)]
    pub acquired: BTreeMap<String, i64>,
}

/// Outcome of a lock attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum LockOutcome {
    /// Newly taken; the semaphore must be written.
    Taken,
    /// The id already held a slot (recursive lock).
    AlreadyHeld,
    /// Every slot is taken by others.
    Full { holders: usize },
}

impl Semaphore {
    pub fn new(total_slots: u64) -> Semaphore {
        Semaphore {
            total_slots,
            holders: Vec::new(),
            acquired: BTreeMap::new(),
        }
    }

    /// Drops holders that acquired their slot `ttl_secs` or more before `now`; returns them.
    /// A holder without a recorded time (written by another tool) counts as acquired at 0.
    pub fn expire(&mut self, now: i64, ttl_secs: i64) -> Vec<String> {
        let acquired = &self.acquired;
        let (gone, kept): (Vec<String>, Vec<String>) = self
            .holders
            .drain(..)
            .partition(|id| now.saturating_sub(acquired.get(id).copied().unwrap_or(0)) >= ttl_secs);
        self.holders = kept;
        for id in &gone {
            self.acquired.remove(id);
        }
        gone
    }

    /// Takes a slot for `id` at `now` if one is free (or `id` already holds one).
    pub fn lock(&mut self, id: &str, now: i64) -> LockOutcome {
        if self.holders.iter().any(|h| h == id) {
            return LockOutcome::AlreadyHeld;
        }
        if self.holders.len() as u64 >= self.total_slots {
            return LockOutcome::Full {
                holders: self.holders.len(),
            };
        }
        let at = self
            .holders
            .binary_search_by(|h| h.as_str().cmp(id))
            .unwrap_or_else(|i| i);
        self.holders.insert(at, id.to_string());
        self.acquired.insert(id.to_string(), now);
        LockOutcome::Taken
    }

    /// Releases `id`'s slot; returns whether it held one.
    pub fn unlock(&mut self, id: &str) -> bool {
        let before = self.holders.len();
        self.holders.retain(|h| h != id);
        self.acquired.remove(id);
        before != self.holders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_unlock_table() {
        let mut s = Semaphore::new(2);
        for (op, id, want) in [
            ("lock", "b", "Taken"),
            ("lock", "b", "AlreadyHeld"),
            ("lock", "a", "Taken"),
            ("lock", "c", "Full { holders: 2 }"),
            ("unlock", "z", "false"),
            ("unlock", "b", "true"),
            ("lock", "c", "Taken"),
        ] {
            let got = match op {
                "lock" => format!("{:?}", s.lock(id, 100)),
                _ => s.unlock(id).to_string(),
            };
            assert_eq!(got, want, "{op} {id}");
        }
        assert_eq!(s.holders, ["a", "c"]);
        assert_eq!(s.acquired.len(), 2);
    }

    #[test]
    fn slots_shrunk_below_holders_keep_holders_but_refuse_new() {
        let mut s = Semaphore::new(3);
        s.lock("a", 0);
        s.lock("b", 0);
        s.total_slots = 1;
        assert_eq!(s.lock("a", 1), LockOutcome::AlreadyHeld);
        assert_eq!(s.lock("c", 1), LockOutcome::Full { holders: 2 });
    }

    #[test]
    fn expiry_table() {
        let mut s = Semaphore::new(5);
        s.lock("old", 100);
        s.lock("new", 190);
        s.holders.push("foreign".into());
        assert_eq!(s.expire(199, 100), vec!["foreign".to_string()]);
        assert_eq!(s.expire(200, 100), vec!["old".to_string()]);
        assert_eq!(s.holders, ["new"]);
        assert!(!s.acquired.contains_key("old"));
        // Times from a hostile document neither overflow nor keep a holder forever.
        s.acquired.insert("new".into(), i64::MIN);
        assert_eq!(s.expire(i64::MAX, 100), vec!["new".to_string()]);
    }

    #[test]
    fn key_round_trip_and_document_format() {
        assert_eq!(group_of_key(&key("workers")).as_deref(), Some("workers"));
        assert_eq!(group_of_key(b"other/key"), None);
        let doc: Document =
            serde_json::from_str(r#"{"semaphore":{"total_slots":1,"holders":["x"]}}"#).unwrap();
        assert_eq!(doc.semaphore.holders, ["x"]);
        assert!(doc.semaphore.acquired.is_empty());
    }
}
