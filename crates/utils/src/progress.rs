//! Progress for long work. One reporter, three renderings chosen once per command:
//! a bar on a terminal, plain lines on a pipe or log, JSON lines with `--json`.
//!
//! JSON line schema (one object per line on stderr):
//! `{"event":"progress","task":T,"done":N,"total":N|null,"bytes":N,"message":S}` and
//! `{"event":"finished","task":T,"done":N,"total":N|null,"bytes":N,"seconds":F}`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Interactive progress bar (stderr is a terminal).
    Bar,
    /// Plain text lines, at most one every few seconds.
    Lines,
    /// JSON objects, one per line.
    Json,
    /// Nothing at all.
    Quiet,
}

impl Mode {
    /// Choose the mode: `--json` wins, then a terminal gets a bar, anything else gets lines.
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

#[derive(Serialize)]
struct Event<'a> {
    event: &'a str,
    task: &'a str,
    done: u64,
    total: Option<u64>,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
}

/// A progress reporter for one task. Cheap to update from many threads.
pub struct Progress {
    mode: Mode,
    task: String,
    total: AtomicU64,
    done: AtomicU64,
    bytes: AtomicU64,
    bar: Option<ProgressBar>,
    start: Instant,
    last_line: Mutex<Instant>,
    line_interval: Duration,
}

const NO_TOTAL: u64 = u64::MAX;

impl Progress {
    /// Start a task. `total` is the number of items when known.
    pub fn new(mode: Mode, task: &str, total: Option<u64>) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} objects, {msg} ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(task.to_string());
            bar
        });
        Progress {
            mode,
            task: task.to_string(),
            total: AtomicU64::new(total.unwrap_or(NO_TOTAL)),
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            bar,
            start: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            line_interval: Duration::from_secs(2),
        }
    }

    /// A reporter that shows nothing (library callers that do not want output).
    pub fn quiet(task: &str) -> Progress {
        Progress::new(Mode::Quiet, task, None)
    }

    fn total(&self) -> Option<u64> {
        match self.total.load(Ordering::Relaxed) {
            NO_TOTAL => None,
            t => Some(t),
        }
    }

    /// Change the expected number of items.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// Record `items` more items done and `bytes` more bytes processed.
    pub fn inc(&self, items: u64, bytes: u64) {
        let done = self.done.fetch_add(items, Ordering::Relaxed) + items;
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match self.mode {
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                    bar.set_message(human_bytes(b));
                }
            }
            Mode::Lines | Mode::Json => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= self.line_interval {
                    *last = Instant::now();
                    drop(last);
                    self.emit("progress", None);
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Items done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Bytes processed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Say something about the task (a phase change, a warning).
    pub fn message(&self, msg: &str) {
        match self.mode {
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.println(msg);
                }
            }
            Mode::Lines | Mode::Json => self.emit("progress", Some(msg)),
            Mode::Quiet => {}
        }
    }

    /// Finish the task and print a summary.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.mode != Mode::Quiet {
            self.emit("finished", None);
        }
    }

    fn emit(&self, event: &str, message: Option<&str>) {
        let done = self.done();
        let bytes = self.bytes();
        let secs = self.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        match self.mode {
            Mode::Json => {
                let ev = Event {
                    event,
                    task: &self.task,
                    done,
                    total: self.total(),
                    bytes,
                    message,
                    seconds: (event == "finished").then_some(secs),
                };
                if let Ok(s) = serde_json::to_string(&ev) {
                    let _ = writeln!(err, "{s}");
                }
            }
            _ => {
                let total = self.total().map(|t| format!("/{t}")).unwrap_or_default();
                let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
                let _ = writeln!(
                    err,
                    "{}: {}{} items, {} ({}/s){}{}",
                    self.task,
                    done,
                    total,
                    human_bytes(bytes),
                    human_bytes(rate as u64),
                    if event == "finished" {
                        format!(", done in {secs:.1}s")
                    } else {
                        String::new()
                    },
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                );
            }
        }
    }
}

/// Format a byte count for people: `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_table() {
        for (n, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (5 * 1024 * 1024, "5.0 MiB"),
        ] {
            assert_eq!(human_bytes(n), want);
        }
    }

    #[test]
    fn counts_from_threads() {
        let p = Progress::quiet("t");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        p.inc(1, 10);
                    }
                });
            }
        });
        assert_eq!(p.done(), 400);
        assert_eq!(p.bytes(), 4000);
    }
}
