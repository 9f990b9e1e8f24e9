//! The agent's state as other programs see it: `/run/keel/agent/state.json`, rewritten
//! atomically on every change and shown by `keel agent status` and `keel status`. The record is
//! [`keel_proto::agent::AgentState`]; this module reads and writes the file.

use keel_utils::fsutil::write_atomic;
use std::io;
use std::path::Path;

pub use keel_proto::agent::{AgentState, Phase};

/// The state file, relative to the root.
pub const STATE_FILE: &str = keel_proto::node::AGENT_STATE_FILE;

/// Write `state` under `root`.
pub fn save(state: &AgentState, root: &Path) -> io::Result<()> {
    let p = root.join(STATE_FILE);
    std::fs::create_dir_all(p.parent().expect("has a parent"))?;
    let json = serde_json::to_vec_pretty(state).expect("state serializes");
    write_atomic(&p, &json, 0o644)
}

/// Read it from under `root`; `None` when the agent has not run since boot.
pub fn load(root: &Path) -> io::Result<Option<AgentState>> {
    match std::fs::read(root.join(STATE_FILE)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_proto::agent::Release;

    #[test]
    fn round_trips_through_the_file() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(load(t.path()).unwrap(), None);
        let mut s = AgentState::new("periodic", 10);
        s.phase = Phase::Staged;
        s.target = Some(Release {
            version: "2".into(),
            commit: "c2".into(),
            age_index: 1,
        });
        save(&s, t.path()).unwrap();
        assert_eq!(load(t.path()).unwrap(), Some(s));
        let text = std::fs::read_to_string(t.path().join(STATE_FILE)).unwrap();
        assert!(text.contains("\"phase\": \"staged\""), "{text}");
    }
}
