//! Interactive sessions that postpone a reboot, read from logind's session files
//! (`/run/systemd/sessions/<id>`, `KEY=value` lines), which every systemd version writes (bookworm's
//! `loginctl` has no JSON output for sessions). A session counts when its class is `user`, it is
//! not closing, and it has a terminal (`TTY=`, e.g. an SSH login with a pty) or a graphical
//! seat (`TYPE=x11|wayland|mir`). `ssh node command` without a pty does not count.
//! `/run/keel/agent/override-interactive-check` turns the check off, as Zincati's file does.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Where logind keeps session files, relative to the root.
pub const SESSIONS_DIR: &str = "run/systemd/sessions";
/// Touch this file (relative to the root) to reboot regardless of sessions.
pub const OVERRIDE: &str = "run/keel/agent/override-interactive-check";

/// An interactive session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// User name.
    pub user: String,
    /// Terminal (`pts/0`, `tty1`) or empty.
    pub tty: String,
}

fn parse(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn interactive(kv: &BTreeMap<&str, &str>) -> bool {
    let class = kv.get("CLASS").copied().unwrap_or("user");
    let state = kv.get("STATE").copied().unwrap_or("");
    let tty = kv.get("TTY").copied().unwrap_or("");
    let kind = kv.get("TYPE").copied().unwrap_or("");
    class == "user"
        && state != "closing"
        && (!tty.is_empty() || matches!(kind, "x11" | "wayland" | "mir"))
}

/// Interactive sessions under `root`; none when the override file exists. Unreadable files
/// are skipped (a session that ends while being read).
pub fn interactive_sessions(root: &Path) -> Vec<Session> {
    if root.join(OVERRIDE).exists() {
        return Vec::new();
    }
    let Ok(dir) = fs::read_dir(root.join(SESSIONS_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<Session> = dir
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".ref"))
        .filter_map(|e| {
            let text = fs::read_to_string(e.path()).ok()?;
            let kv = parse(&text);
            interactive(&kv).then(|| Session {
                id: e.file_name().to_string_lossy().into_owned(),
                user: kv.get("USER").copied().unwrap_or("?").to_string(),
                tty: kv.get("TTY").copied().unwrap_or("").to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Tell each session's terminal that a reboot is coming (best effort).
pub fn broadcast(root: &Path, sessions: &[Session], message: &str) {
    for s in sessions.iter().filter(|s| !s.tty.is_empty()) {
        let dev = root.join("dev").join(&s.tty);
        if let Err(e) = fs::OpenOptions::new()
            .append(true)
            .open(&dev)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, format!("\r\n{message}\r\n").as_bytes())
            })
        {
            tracing::debug!("could not write to {}: {e}", dev.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_sessions_are_interactive() {
        let cases = [
            (
                "TYPE=tty\nCLASS=user\nSTATE=active\nTTY=pts/0\nREMOTE=1\nUSER=1000\n",
                true,
            ),
            ("TYPE=tty\nCLASS=user\nSTATE=online\nTTY=tty1\n", true),
            ("TYPE=wayland\nCLASS=user\nSTATE=active\n", true),
            // `ssh node command`: no pty.
            ("TYPE=tty\nCLASS=user\nSTATE=active\nREMOTE=1\n", false),
            ("TYPE=tty\nCLASS=user\nSTATE=closing\nTTY=pts/1\n", false),
            (
                "TYPE=unspecified\nCLASS=background\nSTATE=active\nTTY=pts/2\n",
                false,
            ),
            ("TYPE=x11\nCLASS=greeter\nSTATE=active\n", false),
        ];
        for (text, want) in cases {
            assert_eq!(interactive(&parse(text)), want, "{text:?}");
        }
    }

    #[test]
    fn reads_session_files_and_honours_the_override() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join(SESSIONS_DIR);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("3"), "CLASS=user\nTTY=pts/0\nUSER=core\n").unwrap();
        fs::write(d.join("4"), "CLASS=user\nREMOTE=1\n").unwrap();
        fs::write(d.join("3.ref"), "").unwrap();
        let s = interactive_sessions(t.path());
        assert_eq!(
            s,
            [Session {
                id: "3".into(),
                user: "core".into(),
                tty: "pts/0".into()
            }]
        );
        fs::create_dir_all(t.path().join("dev/pts")).unwrap();
        fs::write(t.path().join("dev/pts/0"), "").unwrap();
        broadcast(t.path(), &s, "reboot soon");
        assert!(fs::read_to_string(t.path().join("dev/pts/0"))
            .unwrap()
            .contains("reboot soon"));
        fs::create_dir_all(t.path().join("run/keel/agent")).unwrap();
        fs::write(t.path().join(OVERRIDE), "").unwrap();
        assert!(interactive_sessions(t.path()).is_empty());
    }
}
