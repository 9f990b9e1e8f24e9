//! Snapshot files for tests: compare produced text with a committed file, or (with
//! `KEEL_UPDATE_SNAPSHOTS=1` in the environment) write the file so the change can be reviewed
//! in the diff.

use std::path::Path;

/// The environment variable that turns comparison into (re)writing.
pub const UPDATE_ENV: &str = "KEEL_UPDATE_SNAPSHOTS";

/// Compares `got` with the snapshot at `path`. `Err` describes the difference (a missing file
/// counts as empty). When updating, writes the file and returns `Ok`.
pub fn check(path: &Path, got: &str) -> Result<(), String> {
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if want == got {
        return Ok(());
    }
    if std::env::var_os(UPDATE_ENV).is_some() {
        return std::fs::write(path, got).map_err(|e| format!("writing {}: {e}", path.display()));
    }
    Err(format!(
        "{} differs (set {UPDATE_ENV}=1 to rewrite, then review):\n--- want\n{want}--- got\n{got}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.txt");
        std::fs::write(&p, "a\n").unwrap();
        assert!(check(&p, "a\n").is_ok());
        let e = check(&p, "b\n").unwrap_err();
        assert!(e.contains("--- want\na\n--- got\nb\n"), "{e}");
        assert!(check(&dir.path().join("missing"), "x").is_err());
    }
}
