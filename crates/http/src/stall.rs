//! Transfers that cannot hang: a bound on the wait for response headers, a no-progress timeout
//! for every read, and libcurl's low-speed rule (`CURLOPT_LOW_SPEED_LIMIT`/`_TIME`).
//!
//! ureq 2 applies its read timeout to the body of every response, but not to the response
//! headers of a connection reused from its pool, and its whole-request deadline replaces the
//! per-read timeout. So requests are made without a deadline, with the agent's read timeout set
//! to [`SpeedLimits::no_progress`]; [`within`] bounds the wait for the headers by running the
//! request on a helper thread; and [`Guarded`] checks every body read against the rules.
//!
//! Helper threads are reused. One given up while a server keeps a reused connection silent
//! cannot be stopped (ureq does not hand out its socket): it waits until the server answers
//! or closes. Callers then stop reusing connections to that server (fresh connections time out
//! on every read), and at most [`MAX_STUCK`] such helpers may exist before new requests are
//! refused.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// ostree's default `--low-speed-limit-bytes` (libcurl's `CURLOPT_LOW_SPEED_LIMIT`).
pub const DEFAULT_LOW_SPEED_LIMIT: u64 = 1000;
/// ostree's default `--low-speed-time-seconds` (libcurl's `CURLOPT_LOW_SPEED_TIME`).
pub const DEFAULT_LOW_SPEED_TIME: Duration = Duration::from_secs(30);
/// Default longest wait for the response headers or for any byte of a body.
pub const DEFAULT_NO_PROGRESS: Duration = Duration::from_secs(30);

/// When a transfer is given up as stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeedLimits {
    /// Longest wait for the response headers, and for any byte of the body.
    pub no_progress: Duration,
    /// Slowest acceptable average speed in bytes/s over [`Self::low_speed_time`] (0: no limit).
    pub low_speed_limit: u64,
    /// The window the average speed is measured over (zero: no limit).
    pub low_speed_time: Duration,
}

impl Default for SpeedLimits {
    fn default() -> SpeedLimits {
        SpeedLimits {
            no_progress: DEFAULT_NO_PROGRESS,
            low_speed_limit: DEFAULT_LOW_SPEED_LIMIT,
            low_speed_time: DEFAULT_LOW_SPEED_TIME,
        }
    }
}

/// The rule that ended a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stalled {
    /// The response headers did not arrive in time.
    #[error("no progress for {} (timed out waiting for the response headers)", secs(*.0))]
    Headers(Duration),
    /// A read waited this long without receiving a byte.
    #[error("no progress for {} (timed out reading the body)", secs(*.0))]
    NoProgress(Duration),
    /// Fewer than `limit × window` bytes arrived during one window.
    #[error("below {limit} bytes/s over {} ({got} bytes arrived in that window)", secs(*.window))]
    TooSlow {
        /// The limit in bytes/s.
        limit: u64,
        /// The window.
        window: Duration,
        /// Bytes received during the window.
        got: u64,
    },
    /// The whole request took longer than its limit.
    #[error("the request took longer than {}", secs(*.0))]
    Total(Duration),
    /// No helper thread could be started for the request.
    #[error("cannot start a thread for the request: {0}")]
    NoThread(String),
    /// Too many earlier requests are still stuck on servers that stopped answering.
    #[error("{0} earlier requests still wait on servers that stopped answering; not starting another until some end (limit {MAX_STUCK})")]
    TooManyStuck(usize),
}

/// "30 s", "2.5 s" or "700 ms".
fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Requests given up by [`within`] whose helper thread still waits on the server, at most.
/// Each holds a thread and a socket until the server answers or closes; past this many, new
/// requests are refused rather than running the process out of file descriptors.
pub const MAX_STUCK: usize = 64;

/// Requests given up whose helper is still waiting.
static STUCK: AtomicUsize = AtomicUsize::new(0);

const WAITING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// Runs `request` (which sends a request and waits for the response headers) on a helper
/// thread and waits at most `limit` for it. On timeout the helper is left to finish on its own:
/// it drops whatever it receives, so the connection is closed, never returned to a pool.
pub fn within<T: Send + 'static>(
    limit: Duration,
    request: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stalled> {
    let stuck = STUCK.load(Ordering::Acquire);
    if stuck >= MAX_STUCK {
        return Err(Stalled::TooManyStuck(stuck));
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let state = Arc::new(AtomicU8::new(WAITING));
    let job_state = state.clone();
    run_on_helper(Box::new(move || {
        let _ = tx.send(request());
        if job_state.swap(DONE, Ordering::AcqRel) == ABANDONED {
            STUCK.fetch_sub(1, Ordering::AcqRel);
        }
    }))?;
    match rx.recv_timeout(limit) {
        Ok(answer) => Ok(answer),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Counted before the helper can see ABANDONED, so its decrement never comes first.
            STUCK.fetch_add(1, Ordering::AcqRel);
            let abandoned = state
                .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if abandoned {
                return Err(Stalled::Headers(limit));
            }
            // The answer came just as the wait ended.
            STUCK.fetch_sub(1, Ordering::AcqRel);
            rx.try_recv().map_err(|_| Stalled::Headers(limit))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Stalled::NoThread(
            "the request thread ended without an answer".into(),
        )),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Idle helper threads, each waiting on its own channel. Starting a thread per request costs
/// about 100 µs, which a pull of 16,000 objects would feel; a helper that finishes a job puts
/// itself back here (one stuck on a silent server is simply not back).
static IDLE: Mutex<Vec<mpsc::Sender<Job>>> = Mutex::new(Vec::new());

/// Helpers kept idle at most; more exit when their job is done.
const MAX_IDLE: usize = 64;

fn run_on_helper(job: Job) -> Result<(), Stalled> {
    let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let job = match idle {
        Some(helper) => match helper.send(job) {
            Ok(()) => return Ok(()),
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let (tx, rx) = mpsc::channel::<Job>();
    tx.send(job)
        .map_err(|_| Stalled::NoThread("helper channel closed".into()))?;
    std::thread::Builder::new()
        .name("keel-http".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
                let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() >= MAX_IDLE {
                    return;
                }
                idle.push(tx.clone());
            }
        })
        .map_err(|e| Stalled::NoThread(e.to_string()))?;
    Ok(())
}

/// A response body checked against [`SpeedLimits`] (and an optional deadline) on every read.
/// The underlying reader must time out by itself after `no_progress` (a socket read timeout);
/// a timed-out read is reported as [`Stalled::NoProgress`].
pub struct Guarded<R> {
    inner: R,
    limits: SpeedLimits,
    deadline: Option<(Instant, Duration)>,
    window_start: Instant,
    window_bytes: u64,
    stalled: Option<Stalled>,
}

impl<R: Read> Guarded<R> {
    /// Guard `inner`; the first low-speed window starts now. `total` bounds the whole request
    /// started at `started`.
    pub fn new(
        inner: R,
        limits: SpeedLimits,
        started: Instant,
        total: Option<Duration>,
    ) -> Guarded<R> {
        Guarded {
            inner,
            limits,
            deadline: total.map(|t| (started + t, t)),
            window_start: Instant::now(),
            window_bytes: 0,
            stalled: None,
        }
    }

    fn stop(&mut self, why: Stalled) -> io::Error {
        let e = io::Error::new(io::ErrorKind::TimedOut, why.to_string());
        self.stalled = Some(why);
        e
    }

    /// Ends the transfer if the deadline passed or the window just closed below the limit.
    fn check(&mut self, now: Instant) -> io::Result<()> {
        if let Some((at, total)) = self.deadline {
            if now >= at {
                return Err(self.stop(Stalled::Total(total)));
            }
        }
        let window = self.limits.low_speed_time;
        let limit = self.limits.low_speed_limit;
        if limit == 0 || window.is_zero() || now.duration_since(self.window_start) < window {
            return Ok(());
        }
        let needed = (limit as f64 * window.as_secs_f64()) as u64;
        if self.window_bytes < needed {
            let got = self.window_bytes;
            return Err(self.stop(Stalled::TooSlow { limit, window, got }));
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(s) = &self.stalled {
            return Err(io::Error::new(io::ErrorKind::TimedOut, s.to_string()));
        }
        self.check(Instant::now())?;
        match self.inner.read(buf) {
            Ok(n) => {
                // A window that closed during this read is judged at the next one.
                self.window_bytes += n as u64;
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                let now = Instant::now();
                self.check(now)?;
                Err(self.stop(Stalled::NoProgress(self.limits.no_progress)))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `chunk` bytes per read, sleeping `gap` before each; at the end, either times
    /// out forever (`stall`) or ends the body.
    struct Trickle {
        gap: Duration,
        chunk: usize,
        left: usize,
        stall: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.gap);
            if self.left == 0 && self.stall {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "timed out"));
            }
            let n = self.chunk.min(self.left).min(buf.len());
            self.left -= n;
            Ok(n)
        }
    }

    fn limits(no_progress_ms: u64, limit: u64, window_ms: u64) -> SpeedLimits {
        SpeedLimits {
            no_progress: Duration::from_millis(no_progress_ms),
            low_speed_limit: limit,
            low_speed_time: Duration::from_millis(window_ms),
        }
    }

    fn drain(mut g: Guarded<Trickle>) -> (Option<Stalled>, usize) {
        let mut buf = [0u8; 64];
        let mut got = 0;
        while let Ok(n @ 1..) = g.read(&mut buf) {
            got += n;
        }
        (g.stalled.clone(), got)
    }

    #[test]
    fn rules_table() {
        let now = Instant::now;
        // (source, limits, total, expected rule)
        let cases: Vec<(Trickle, SpeedLimits, Option<u64>, Option<&str>)> = vec![
            // A drip of 1 byte per 20 ms is far below 1000 B/s over 200 ms.
            (
                Trickle {
                    gap: Duration::from_millis(20),
                    chunk: 1,
                    left: 1000,
                    stall: false,
                },
                limits(1000, 1000, 200),
                None,
                Some("below 1000 bytes/s over 200 ms"),
            ),
            // 64 bytes per 10 ms = 6400 B/s is above 1000 B/s: completes.
            (
                Trickle {
                    gap: Duration::from_millis(10),
                    chunk: 64,
                    left: 2000,
                    stall: false,
                },
                limits(1000, 1000, 100),
                None,
                None,
            ),
            // The source stops sending: the read timeout is reported as no progress.
            (
                Trickle {
                    gap: Duration::from_millis(5),
                    chunk: 64,
                    left: 64,
                    stall: true,
                },
                limits(50, 0, 0),
                None,
                Some("no progress for 50 ms"),
            ),
            // A healthy stream cut by the whole-request limit.
            (
                Trickle {
                    gap: Duration::from_millis(10),
                    chunk: 64,
                    left: 100_000,
                    stall: false,
                },
                limits(1000, 0, 0),
                Some(100),
                Some("the request took longer than 100 ms"),
            ),
        ];
        for (i, (src, lim, total, want)) in cases.into_iter().enumerate() {
            let size = src.left;
            let g = Guarded::new(src, lim, now(), total.map(Duration::from_millis));
            let (stalled, got) = drain(g);
            match (stalled, want) {
                (None, None) => assert_eq!(got, size, "case {i}"),
                (Some(s), Some(w)) => assert!(s.to_string().contains(w), "case {i}: {s}"),
                (s, w) => panic!("case {i}: got {s:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn within_gives_up_on_a_silent_request() {
        let start = Instant::now();
        let r = within(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(2));
        });
        assert_eq!(r, Err(Stalled::Headers(Duration::from_millis(100))));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(within(Duration::from_secs(5), || 7), Ok(7));
    }
}
