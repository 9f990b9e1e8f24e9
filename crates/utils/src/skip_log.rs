//! Skipped tests, recorded where the test runner can count them. A test that cannot run here
//! (not root, a tool or kernel feature missing, an oracle not installed, no VM image) reports
//! `<test>: <reason>` through [`record`] and returns: the line `SKIP: <test>: <reason>` goes
//! straight to the process's stderr, past the test harness's capture, and is appended to the
//! file named by [`SKIP_LOG_ENV`] when it is set. `scripts/test.sh` sets it, lists every skip
//! in its summary and, in CI (`CI=true`), fails unless each one is allowed by
//! `scripts/ci-allowed-skips`. Tests call it through `keel_testsupport::skip`; the VM test
//! entry point (`keel_vm::testmain`, library code) calls it directly.

use std::io::Write;
use std::path::Path;

/// The environment variable naming the file that collects skip lines.
pub const SKIP_LOG_ENV: &str = "KEEL_SKIP_LOG";

/// Reports that a test, or part of it, did not run: `what` is `<test>: <reason>`, with the
/// package or setting that would make it run. Fails when the skip log cannot be written.
pub fn record(what: &str) -> std::io::Result<()> {
    let log = std::env::var_os(SKIP_LOG_ENV);
    record_to(log.as_deref().map(Path::new), what)
}

/// [`record`] with the log given: one line to stderr and, with a log, the same line appended
/// to it in one write (tests of several processes and threads share the file).
pub fn record_to(log: Option<&Path>, what: &str) -> std::io::Result<()> {
    let line = format!("SKIP: {}\n", what.replace('\n', " "));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(log) = log {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?
            .write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_from_many_threads_each_land_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skips");
        std::thread::scope(|s| {
            for i in 0..8 {
                let log = &log;
                s.spawn(move || {
                    record_to(Some(log), &format!("t{i}: reason\nsecond line")).unwrap()
                });
            }
        });
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        let want: Vec<String> = (0..8)
            .map(|i| format!("SKIP: t{i}: reason second line"))
            .collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn without_a_log_a_skip_only_prints() {
        assert!(record_to(None, "t: reason").is_ok());
    }

    #[test]
    fn a_log_that_cannot_be_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("missing-dir/skips");
        assert!(record_to(Some(&log), "t: reason").is_err());
    }
}
