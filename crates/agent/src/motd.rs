//! The dead-end login message, like Zincati's: `/run/motd.d/85-keel-deadend.motd` says why the
//! booted release will not update further; it is removed once the release is no longer a
//! dead-end. Written atomically; rewritten only when the text changes.

use keel_utils::fsutil::write_atomic;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The fragment, relative to the root.
pub const MOTD: &str = "run/motd.d/85-keel-deadend.motd";

/// The message for a dead-end reason.
pub fn text(reason: &str) -> String {
    format!("This release is a dead-end and will not further auto-update: {reason}\n")
}

/// Write (`Some(reason)`) or remove (`None`) the fragment under `root`.
pub fn set(root: &Path, reason: Option<&str>) -> io::Result<()> {
    let p: PathBuf = root.join(MOTD);
    match reason {
        Some(r) => {
            let want = text(r);
            if fs::read_to_string(&p).ok().as_deref() == Some(want.as_str()) {
                return Ok(());
            }
            fs::create_dir_all(p.parent().expect("has a parent"))?;
            write_atomic(&p, want.as_bytes(), 0o644)
        }
        None => match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_removed() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(MOTD);
        for (reason, want) in [
            (
                Some("https://example/why"),
                Some(text("https://example/why")),
            ),
            (
                Some("https://example/why"),
                Some(text("https://example/why")),
            ),
            (Some("other"), Some(text("other"))),
            (None, None),
            (None, None),
        ] {
            set(t.path(), reason).unwrap();
            assert_eq!(fs::read_to_string(&p).ok(), want, "{reason:?}");
        }
    }
}
