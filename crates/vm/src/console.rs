//! The serial console log of a running VM, and waiting for a line in it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A console log file that QEMU appends to. Reads track an offset so each boot's wait looks
/// only at output produced after a mark.
#[derive(Debug, Clone)]
pub struct ConsoleLog {
    path: PathBuf,
}

/// How much of the console a failed wait shows.
const TAIL_LINES: usize = 30;

/// Waiting for console output failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// None of the patterns appeared in time.
    #[error("none of {patterns:?} appeared on the serial console within {secs} s; the console log is {log}; its last lines:\n{tail}")]
    Timeout {
        patterns: Vec<String>,
        secs: u64,
        log: String,
        tail: String,
    },
    /// The VM exited while we were waiting.
    #[error("the VM exited before any of {patterns:?} appeared; the console log is {log}; its last lines:\n{tail}")]
    Exited {
        patterns: Vec<String>,
        log: String,
        tail: String,
    },
}

impl ConsoleLog {
    /// Follow the log at `path` (it need not exist yet).
    pub fn new(path: &Path) -> Self {
        ConsoleLog {
            path: path.to_path_buf(),
        }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current length: output after this offset belongs to whatever happens next.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Text written since `from` (lossy UTF-8).
    pub fn since(&self, from: u64) -> String {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// The last `n` lines written since `from`, without escape sequences, each indented: what a
    /// failure report shows of the guest.
    pub fn tail(&self, from: u64, n: usize) -> String {
        let text = self.since(from);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| format!("    | {}", strip_control(l)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Wait until one of `patterns` occurs after offset `from`; returns the index of the pattern
    /// and the full line holding it. `alive` is polled so a dead VM ends the wait early.
    pub fn wait_for(
        &self,
        from: u64,
        patterns: &[&str],
        timeout: Duration,
        mut alive: impl FnMut() -> bool,
    ) -> Result<(usize, String), ConsoleError> {
        let start = Instant::now();
        loop {
            let text = self.since(from);
            if let Some(hit) = find_first(&text, patterns) {
                return Ok(hit);
            }
            let names = || patterns.iter().map(|p| p.to_string()).collect();
            if !alive() {
                // The last output may have landed between the read and the exit.
                if let Some(hit) = find_first(&self.since(from), patterns) {
                    return Ok(hit);
                }
                return Err(ConsoleError::Exited {
                    patterns: names(),
                    log: self.path.display().to_string(),
                    tail: self.tail(from, TAIL_LINES),
                });
            }
            if start.elapsed() >= timeout {
                return Err(ConsoleError::Timeout {
                    patterns: names(),
                    secs: timeout.as_secs(),
                    log: self.path.display().to_string(),
                    tail: self.tail(from, TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The earliest line (in output order) containing any pattern: (pattern index, line).
fn find_first(text: &str, patterns: &[&str]) -> Option<(usize, String)> {
    text.lines().find_map(|line| {
        patterns
            .iter()
            .position(|p| line.contains(p))
            .map(|i| (i, strip_control(line)))
    })
}

/// Remove ANSI escape sequences and carriage returns from a console line.
pub fn strip_control(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for n in chars.by_ref() {
                        if n.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_table() {
        let text = "a\r\nignition: failed\nlogin: \nIgnition finished\n";
        for (pats, want) in [
            (vec!["login:"], Some((0, "login: "))),
            (
                vec!["Ignition finished", "failed"],
                Some((1, "ignition: failed")),
            ),
            (vec!["nothing"], None),
        ] {
            let got = find_first(text, &pats);
            assert_eq!(
                got.as_ref().map(|(i, l)| (*i, l.as_str())),
                want,
                "{pats:?}"
            );
        }
    }

    #[test]
    fn strips_ansi() {
        for (raw, want) in [
            ("\u{1b}[0;32m  OK  \u{1b}[0m] Reached", "  OK  ] Reached"),
            ("plain\r", "plain"),
            ("\u{1b}[?25l", ""),
        ] {
            assert_eq!(strip_control(raw), want);
        }
    }

    #[test]
    fn waits_after_mark_and_reports_timeout_and_exit() {
        let dir = tempfile::tempdir().unwrap();
        let log = ConsoleLog::new(&dir.path().join("console.log"));
        std::fs::write(log.path(), "old boot: login:\n").unwrap();
        let mark = log.mark();
        let path = log.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str("new boot: login:\n");
            std::fs::write(&path, text).unwrap();
        });
        let (_, line) = log
            .wait_for(mark, &["login:"], Duration::from_secs(5), || true)
            .unwrap();
        assert_eq!(line, "new boot: login:");
        writer.join().unwrap();
        let end = log.mark();
        let err = log
            .wait_for(end, &["never"], Duration::from_millis(300), || true)
            .unwrap_err();
        assert!(matches!(err, ConsoleError::Timeout { .. }), "{err}");
        let err = log
            .wait_for(end, &["never"], Duration::from_secs(5), || false)
            .unwrap_err();
        assert!(matches!(err, ConsoleError::Exited { .. }), "{err}");
    }

    #[test]
    fn a_failed_wait_shows_the_last_lines_since_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, "old boot\n").unwrap();
        let log = ConsoleLog::new(&path);
        let mark = log.mark();
        let lines: String = (1..=40)
            .map(|i| format!("\u{1b}[0;1mline {i}\r\n"))
            .collect();
        std::fs::write(&path, format!("old boot\n{lines}")).unwrap();
        let tail = log.tail(mark, 3);
        assert_eq!(tail, "    | line 38\n    | line 39\n    | line 40");
        let err = log
            .wait_for(mark, &["never"], Duration::from_millis(10), || true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("| line 40") && err.contains("| line 11"),
            "{err}"
        );
        assert!(
            !err.contains("| line 10\n") && !err.contains("old boot"),
            "{err}"
        );
    }
}
