//! Pulls from hostile servers on 127.0.0.1 that try to keep the client waiting: a server that
//! accepts and never answers, one that sends the headers and stalls mid-body, one that drips one
//! byte every 2 s (in the body or in the headers), on the first attempt (over a connection the
//! pool reuses, where ureq applies no read timeout to the headers) and on a retry. Each pull
//! ends within a bound derived from its options, says which URL, how many attempts and which
//! rule ended them, moves no ref and stores nothing unverified; a slow server that stays above
//! the limit still completes. Before these rules a first-attempt stall took 300 s to fail and a
//! drip kept a pull going for as long as the server liked.

mod common;

use common::*;
use keel_remote::fetch::FetchOptions;
use keel_store::{ObjectType, Repo, RepoMode};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the hostile server does with one request.
#[derive(Clone, Debug)]
enum Behave {
    /// Serve the file (404 when missing), keeping the connection open for the next request.
    Serve,
    /// Answer with this status and no body.
    Status(u16),
    /// Read the request and never answer.
    Silent,
    /// Send the headers announcing the whole file and half of it, then nothing.
    StallMidBody,
    /// Send the headers, then one byte of the body every this often.
    Drip(Duration),
    /// Send a status line, then one byte of a header every this often.
    DripHeaders(Duration),
    /// Serve the file in chunks of this many bytes every this often.
    Throttle(usize, Duration),
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    /// Requests answered on the same connection before this one.
    earlier_on_connection: usize,
}

type Policy = dyn Fn(&str, usize, usize) -> Behave + Send + Sync;

struct Hostile {
    url: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Hostile {
    /// Serve `root` over keep-alive connections with `policy(path, earlier requests for path,
    /// earlier requests on this connection)`.
    fn start(
        root: &Path,
        policy: impl Fn(&str, usize, usize) -> Behave + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let policy: Arc<Policy> = Arc::new(policy);
        let (s, l, root) = (stop.clone(), log.clone(), root.to_path_buf());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, l, p, r) = (s.clone(), l.clone(), policy.clone(), root.clone());
                        std::thread::spawn(move || serve(stream, &r, &*p, &l, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Hostile { url, stop, log }
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|s| s.path == path).count()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn hold(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve(
    stream: TcpStream,
    root: &Path,
    policy: &Policy,
    log: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    let mut earlier = 0;
    loop {
        let mut line = String::new();
        if !matches!(reader.read_line(&mut line), Ok(1..)) {
            return;
        }
        loop {
            let mut h = String::new();
            if !matches!(reader.read_line(&mut h), Ok(1..)) {
                return;
            }
            if h.trim_end().is_empty() {
                break;
            }
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .trim_start_matches('/')
            .to_string();
        let before = {
            let mut log = log.lock().unwrap();
            let before = log.iter().filter(|s| s.path == path).count();
            log.push(Seen {
                path: path.clone(),
                earlier_on_connection: earlier,
            });
            before
        };
        let on_connection = earlier;
        earlier += 1;
        let data = std::fs::read(root.join(&path)).ok();
        let head = |len: usize| format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        let done = match (policy(&path, before, on_connection), data) {
            (Behave::Serve, Some(d)) => out
                .write_all(head(d.len()).as_bytes())
                .and_then(|()| out.write_all(&d)),
            (Behave::Serve, None) => {
                out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            }
            (Behave::Status(code), _) => {
                out.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
            }
            (Behave::Silent, _) => return hold(stop),
            (Behave::StallMidBody, d) => {
                let d = d.unwrap_or_default();
                let _ = out.write_all(head(d.len()).as_bytes());
                let _ = out.write_all(&d[..d.len() / 2]);
                return hold(stop);
            }
            (Behave::Drip(gap), d) => {
                let d = d.unwrap_or_default();
                let mut r = out.write_all(head(d.len()).as_bytes());
                for b in d.iter().cycle() {
                    if r.is_err() || stop.load(Ordering::SeqCst) {
                        return;
                    }
                    r = out.write_all(&[*b]);
                    std::thread::sleep(gap);
                }
                return;
            }
            (Behave::DripHeaders(gap), _) => {
                let mut r = out.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ");
                while r.is_ok() && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(gap);
                    r = out.write_all(b"a");
                }
                return;
            }
            (Behave::Throttle(chunk, every), d) => {
                let d = d.unwrap_or_default();
                let mut r = out.write_all(head(d.len()).as_bytes());
                for part in d.chunks(chunk) {
                    std::thread::sleep(every);
                    r = r.and_then(|()| out.write_all(part));
                }
                r
            }
        };
        if done.is_err() {
            return;
        }
    }
}

fn client(dir: &Path) -> Repo {
    Repo::init(&dir.join("client"), RepoMode::BareUser).unwrap()
}

/// Short limits; one transfer at a time, so the pooled connection is reused for the victim.
fn limits(no_progress_ms: u64, low_speed_ms: u64, retries: u32) -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(no_progress_ms),
        low_speed_limit: 1000,
        low_speed_time: Duration::from_millis(low_speed_ms),
        retries,
        backoff: Duration::from_millis(10),
        parallel: 1,
        ..FetchOptions::default()
    }
}

/// The longest a pull may take when every attempt at one object is stuck: a stalled attempt
/// ends by the no-progress rule, a drip (one byte per `gap`) when the low-speed window closes
/// and the next byte arrives; backoff in between; `slack` for the rest of the pull.
fn bound(o: &FetchOptions, gap: Duration, slack: Duration) -> Duration {
    let attempt = if gap.is_zero() {
        o.read_timeout
    } else {
        o.low_speed_time + gap
    };
    let backoff: Duration = (0..o.retries).map(|n| o.backoff * (1 << n)).sum();
    attempt * (o.retries + 1) + backoff + slack
}

/// The largest `.filez` of the fixture (so a half body is a real mid-body stall).
fn largest_file(repo: &Path) -> String {
    object_paths(repo)
        .into_iter()
        .filter(|(t, _)| *t == ObjectType::File)
        .map(|(_, p)| p)
        .max_by_key(|p| std::fs::metadata(repo.join(p)).unwrap().len())
        .unwrap()
}

fn first_dirtree(repo: &Path) -> String {
    object_paths(repo)
        .into_iter()
        .find(|(t, _)| *t == ObjectType::DirTree)
        .unwrap()
        .1
}

/// What every failed pull must show: bounded time, the URL, the attempts and the rule, no ref
/// moved, the victim not stored, and nothing stored that does not verify.
fn assert_refused(c: &Repo, err: &str, took: Duration, limit: Duration, url: &str, rule: &str) {
    eprintln!("failed after {took:?} (bound {limit:?}): {err}");
    assert!(took < limit, "took {took:?}, bound {limit:?}: {err}");
    assert!(err.contains(url), "names the URL {url}: {err}");
    assert!(err.contains(rule), "names the rule {rule:?}: {err}");
    assert_no_ref(c);
    assert_fsck_clean(c);
}

fn victim_checksum(rel: &str) -> keel_store::Checksum {
    let name = rel.trim_start_matches("objects/").replace('/', "");
    name.split('.').next().unwrap().parse().unwrap()
}

#[test]
fn silent_server_fails_within_the_timeout_on_every_attempt() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 3);
    let server = Hostile::start(&fx.repo, |_, _, _| Behave::Silent);
    let c = client(d.path());
    let o = limits(1000, 4000, 2);
    let start = Instant::now();
    let err = pull_from(&c, &server.url, o.clone())
        .unwrap_err()
        .to_string();
    let took = start.elapsed();
    let url = format!("{}summary.sig", server.url);
    let limit = o.read_timeout * 3 + Duration::from_secs(2);
    assert_refused(&c, &err, took, limit, &url, "no progress for 1 s");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(
        took >= o.read_timeout * 3,
        "each attempt waited its timeout: {took:?}"
    );
    assert_eq!(server.count("summary.sig"), 3);
}

/// The scenarios of one stuck object: what the server does on the first attempt, and on the
/// retries; the rule the error must name.
struct Case {
    name: &'static str,
    first: Behave,
    retry: Behave,
    victim_is_tree: bool,
    opts: FetchOptions,
    gap: Duration,
    rule: &'static str,
}

fn stuck_object_is_refused(case: Case) {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 6);
    let victim = if case.victim_is_tree {
        first_dirtree(&fx.repo)
    } else {
        largest_file(&fx.repo)
    };
    let (v, first, retry) = (victim.clone(), case.first.clone(), case.retry.clone());
    let server = Hostile::start(&fx.repo, move |path, before, _| match (path == v, before) {
        (true, 0) => first.clone(),
        (true, _) => retry.clone(),
        _ => Behave::Serve,
    });
    let c = client(d.path());
    let start = Instant::now();
    let err = pull_from(&c, &server.url, case.opts.clone())
        .unwrap_err()
        .to_string();
    let took = start.elapsed();
    let limit = bound(&case.opts, case.gap, Duration::from_secs(3));
    let url = format!("{}{victim}", server.url);
    let name = case.name;
    assert_refused(&c, &err, took, limit, &url, case.rule);
    let attempts = case.opts.retries + 1;
    assert!(
        err.contains(&format!("gave up after {attempts} attempts")),
        "{name}: {err}"
    );
    assert_eq!(server.count(&victim), attempts as usize, "{name}");
    let t = if case.victim_is_tree {
        ObjectType::DirTree
    } else {
        ObjectType::File
    };
    assert!(
        !c.has_object(t, &victim_checksum(&victim)),
        "{name}: the stuck object was not stored"
    );
    let first = server
        .requests()
        .into_iter()
        .find(|s| s.path == victim)
        .unwrap();
    assert!(
        first.earlier_on_connection > 0,
        "{name}: the first attempt went over a reused connection: {first:?}"
    );
}

#[test]
fn headers_then_stall_mid_body_fails_in_bound() {
    stuck_object_is_refused(Case {
        name: "stall mid-body on every attempt",
        first: Behave::StallMidBody,
        retry: Behave::StallMidBody,
        victim_is_tree: false,
        opts: limits(1000, 4000, 2),
        gap: Duration::ZERO,
        rule: "no progress for 1 s (timed out reading the body)",
    });
}

#[test]
fn silent_answer_on_a_reused_connection_fails_in_bound() {
    stuck_object_is_refused(Case {
        name: "no answer, first attempt over a pooled connection",
        first: Behave::Silent,
        retry: Behave::Silent,
        victim_is_tree: true,
        opts: limits(1000, 4000, 2),
        gap: Duration::ZERO,
        rule: "no progress for 1 s (timed out waiting for the response headers)",
    });
}

#[test]
fn silent_answer_on_a_retry_fails_in_bound() {
    stuck_object_is_refused(Case {
        name: "503, then no answer on the retries (fresh connections)",
        first: Behave::Status(503),
        retry: Behave::Silent,
        victim_is_tree: false,
        opts: limits(1000, 4000, 2),
        gap: Duration::ZERO,
        rule: "no progress for 1 s (timed out waiting for the response headers)",
    });
}

#[test]
fn stall_on_a_retry_fails_in_bound() {
    stuck_object_is_refused(Case {
        name: "503, then a stall mid-body on the retries",
        first: Behave::Status(503),
        retry: Behave::StallMidBody,
        victim_is_tree: false,
        opts: limits(1000, 4000, 2),
        gap: Duration::ZERO,
        rule: "no progress for 1 s",
    });
}

#[test]
fn drip_feed_body_fails_by_the_low_speed_rule() {
    let gap = Duration::from_secs(2);
    stuck_object_is_refused(Case {
        name: "one byte every 2 s on every attempt",
        first: Behave::Drip(gap),
        retry: Behave::Drip(gap),
        victim_is_tree: false,
        opts: limits(3000, 4000, 1),
        gap,
        rule: "below 1000 bytes/s over 4 s",
    });
}

#[test]
fn drip_feed_on_a_retry_fails_by_the_low_speed_rule() {
    let gap = Duration::from_secs(2);
    stuck_object_is_refused(Case {
        name: "503, then one byte every 2 s",
        first: Behave::Status(503),
        retry: Behave::Drip(gap),
        victim_is_tree: true,
        opts: limits(3000, 4000, 1),
        gap,
        rule: "below 1000 bytes/s over 4 s",
    });
}

#[test]
fn drip_feed_headers_fail_within_the_timeout() {
    let gap = Duration::from_millis(500);
    stuck_object_is_refused(Case {
        name: "a header that never ends",
        first: Behave::DripHeaders(gap),
        retry: Behave::DripHeaders(gap),
        victim_is_tree: false,
        opts: limits(2000, 4000, 1),
        gap: Duration::ZERO,
        rule: "timed out waiting for the response headers",
    });
}

#[test]
fn stuck_first_attempt_is_cut_and_the_retry_completes() {
    for (name, first) in [
        ("silent", Behave::Silent),
        ("mid-body stall", Behave::StallMidBody),
        ("drip", Behave::Drip(Duration::from_secs(2))),
    ] {
        let d = tempfile::tempdir().unwrap();
        let fx = fixture(d.path(), 6);
        let victim = largest_file(&fx.repo);
        let v = victim.clone();
        let server = Hostile::start(&fx.repo, move |path, before, _| {
            if path == v && before == 0 {
                first.clone()
            } else {
                Behave::Serve
            }
        });
        let c = client(d.path());
        let o = limits(1000, 3000, 2);
        let start = Instant::now();
        let report = pull_from(&c, &server.url, o.clone()).unwrap();
        let took = start.elapsed();
        assert!(
            took < o.low_speed_time + Duration::from_secs(5),
            "{name}: took {took:?}"
        );
        assert_eq!(report.refs[0].1, fx.commit, "{name}");
        assert_eq!(
            c.read_ref(&format!("origin:{REF}")).unwrap(),
            Some(fx.commit)
        );
        assert_eq!(
            server.count(&victim),
            2,
            "{name}: one stuck attempt, one retry"
        );
        assert_fsck_clean(&c);
    }
}

#[test]
fn slow_server_above_the_limit_completes() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 6);
    let victim = largest_file(&fx.repo);
    let size = std::fs::metadata(fx.repo.join(&victim)).unwrap().len() as usize;
    // About 6 s at 2,000-4,000 bytes/s: longer than the 3 s window, above 1,000 bytes/s.
    let chunk = (size / 24).max(1);
    let v = victim.clone();
    let server = Hostile::start(&fx.repo, move |path, _, _| {
        if path == v {
            Behave::Throttle(chunk, Duration::from_millis(250))
        } else {
            Behave::Serve
        }
    });
    let c = client(d.path());
    let o = limits(1000, 3000, 0);
    let start = Instant::now();
    let report = pull_from(&c, &server.url, o.clone()).unwrap();
    let took = start.elapsed();
    assert!(
        took > o.low_speed_time,
        "the transfer outlasted a window: {took:?}"
    );
    assert_eq!(report.refs[0].1, fx.commit);
    assert_eq!(server.count(&victim), 1, "no retry was needed");
    assert_fsck_clean(&c);
}

#[test]
fn server_silent_on_every_reused_connection_costs_one_timeout() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture(d.path(), 20);
    let server = Hostile::start(&fx.repo, |_, _, earlier_on_connection| {
        if earlier_on_connection > 0 {
            Behave::Silent
        } else {
            Behave::Serve
        }
    });
    let c = client(d.path());
    let o = limits(1000, 4000, 2);
    let start = Instant::now();
    let report = pull_from(&c, &server.url, o.clone()).unwrap();
    let took = start.elapsed();
    assert_eq!(report.refs[0].1, fx.commit);
    assert_fsck_clean(&c);
    let silent = server
        .requests()
        .iter()
        .filter(|s| s.earlier_on_connection > 0)
        .count();
    assert_eq!(
        silent, 1,
        "after one silent reused connection every request uses a fresh one"
    );
    assert!(
        took < o.read_timeout + Duration::from_secs(5),
        "took {took:?}"
    );
}
