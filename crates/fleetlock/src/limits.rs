//! Slot counts per group and lock expiry, from command-line defaults and an optional TOML file
//! that is re-read whenever it changes (so slot counts can be changed while the server runs):
//!
//! ```toml
//! default_slots = 1        # groups not listed below
//! lock_ttl_secs = 3600     # a slot not released within this time is freed
//! [groups]
//! workers = 3
//! controllers = 1
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde::Deserialize;

/// Longest lock TTL: the times are signed 64-bit UNIX seconds.
pub const MAX_LOCK_TTL_SECS: u64 = i64::MAX as u64;

/// Why a lock TTL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "lock TTL {0} s is out of range: use 1 to {MAX_LOCK_TTL_SECS} seconds (0 would free every \
     slot at once, so every node would get one)"
)]
pub struct InvalidTtl(pub u64);

/// The lock TTL as stored, when `secs` is within 1..=2^63-1.
pub fn lock_ttl(secs: u64) -> Result<i64, InvalidTtl> {
    match i64::try_from(secs) {
        Ok(ttl) if ttl > 0 => Ok(ttl),
        _ => Err(InvalidTtl(secs)),
    }
}

/// Effective limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub default_slots: u64,
    pub lock_ttl_secs: i64,
    pub groups: BTreeMap<String, u64>,
}

impl Limits {
    /// Slots of `group`.
    pub fn slots(&self, group: &str) -> u64 {
        self.groups
            .get(group)
            .copied()
            .unwrap_or(self.default_slots)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    default_slots: Option<u64>,
    lock_ttl_secs: Option<u64>,
    #[serde(default)]
    groups: BTreeMap<String, u64>,
}

/// Whether `group` is a valid FleetLock group name (`^[a-zA-Z0-9.-]+$`).
pub fn valid_group(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= 253
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Parses a limits file's text over the command-line `defaults`.
pub fn parse(text: &str, defaults: &Limits) -> anyhow::Result<Limits> {
    let raw: RawLimits = toml::from_str(text)?;
    if let Some(bad) = raw.groups.keys().find(|g| !valid_group(g)) {
        anyhow::bail!(
            "group name {bad:?} in [groups] is invalid: use letters, digits, '.' and '-'"
        );
    }
    Ok(Limits {
        default_slots: raw.default_slots.unwrap_or(defaults.default_slots),
        lock_ttl_secs: match raw.lock_ttl_secs {
            Some(secs) => lock_ttl(secs).context("lock_ttl_secs")?,
            None => defaults.lock_ttl_secs,
        },
        groups: raw.groups,
    })
}

/// A limits file and the version of it last applied.
pub struct LimitsFile {
    path: PathBuf,
    defaults: Limits,
    seen: Option<SystemTime>,
}

impl LimitsFile {
    pub fn new(path: &Path, defaults: Limits) -> LimitsFile {
        LimitsFile {
            path: path.to_path_buf(),
            defaults,
            seen: None,
        }
    }

    /// New limits when the file changed since the last call (first call: always).
    pub fn reload_if_changed(&mut self) -> anyhow::Result<Option<Limits>> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading limits file {}", self.path.display()))?;
        if self.seen == Some(modified) {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading limits file {}", self.path.display()))?;
        let limits = parse(&text, &self.defaults)
            .with_context(|| format!("in limits file {}", self.path.display()))?;
        self.seen = Some(modified);
        Ok(Some(limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let defaults = Limits {
            default_slots: 1,
            lock_ttl_secs: 3600,
            groups: BTreeMap::new(),
        };
        let l = parse("lock_ttl_secs = 60\n[groups]\nworkers = 3", &defaults).unwrap();
        assert_eq!(
            (l.slots("workers"), l.slots("other"), l.lock_ttl_secs),
            (3, 1, 60)
        );
        let l = parse("default_slots = 2", &defaults).unwrap();
        assert_eq!((l.slots("x"), l.lock_ttl_secs), (2, 3600));
        for (text, needle) in [
            ("[groups]\n\"a b\" = 1", "invalid"),
            ("slots = 1", "unknown field"),
            ("default_slots = -1", "default_slots"),
            ("lock_ttl_secs = 0", "out of range"),
            ("lock_ttl_secs = 9223372036854775808", "out of range"),
            ("lock_ttl_secs = 18446744073709551615", "out of range"),
            ("lock_ttl_secs = -1", "lock_ttl_secs"),
        ] {
            let err = format!("{:#}", parse(text, &defaults).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn ttl_range() {
        assert_eq!(lock_ttl(1).unwrap(), 1);
        assert_eq!(lock_ttl(MAX_LOCK_TTL_SECS).unwrap(), i64::MAX);
        for bad in [0, MAX_LOCK_TTL_SECS + 1, u64::MAX] {
            assert!(lock_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_names() {
        for (g, ok) in [
            ("default", true),
            ("web-1.eu", true),
            ("", false),
            ("a b", false),
            ("a/b", false),
            ("ü", false),
        ] {
            assert_eq!(valid_group(g), ok, "{g}");
        }
    }
}
