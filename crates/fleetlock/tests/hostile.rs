//! Hostile input against the real `keel fleetlock serve` process on a real etcd, run with a
//! low open-file limit (256): idle connection floods, slowloris heads and bodies, requests the
//! HTTP stack must refuse with `{kind, value}` JSON, lock TTLs that would free every slot at
//! once, keys of empty groups, and corrupt keys under the prefix.
//!
//! Needs the `keel` binary of this build (`cargo build -p keel`) and etcd (etcd-server).

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Cluster;
use keel_agent::fleetlock::FleetLockClient;
use keel_fleetlock::etcd::Etcd;
use keel_fleetlock::semaphore;
use keel_testsupport::attack::{
    count_closed, exchange, get, idle_connections, keel_binary, listening_address, sigterm,
    spawn_limited, SlowClients,
};
use keel_testsupport::process::KillOnDrop;

const NOFILE: u64 = 256;

/// A running FleetLock server.
struct FleetLock {
    addr: SocketAddr,
    child: KillOnDrop,
    dir: tempfile::TempDir,
}

impl FleetLock {
    fn start(cluster: &Cluster, flags: &[&str]) -> FleetLock {
        let dir = tempfile::tempdir().unwrap();
        let endpoints = cluster.endpoints.join(",");
        let mut args = vec![
            "-v",
            "fleetlock",
            "serve",
            "--etcd",
            &endpoints,
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(flags);
        let log = dir.path().join("server.log");
        let child = spawn_limited(&args, NOFILE, &log);
        let addr = listening_address(&log, Duration::from_secs(20));
        FleetLock { addr, child, dir }
    }

    fn client(&self, id: &str, group: &str) -> FleetLockClient {
        FleetLockClient::new(&format!("http://{}", self.addr), id, group).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        String::from_utf8(get(self.addr, "/metrics", Duration::from_secs(5)).body).unwrap()
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }
}

/// Runs `keel fleetlock serve` with `args` that must be refused; returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = std::process::Command::new(keel_binary())
        .args(["fleetlock", "serve", "--etcd", "127.0.0.1:1"])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A lock TTL of 0 or of 2^63 and more (which became negative) freed every slot at each
/// operation, so every caller got one. Refused on the command line and in the limits file.
#[test]
fn lock_ttl_zero_or_beyond_i64_is_refused() {
    for ttl in ["0", "9223372036854775808", "18446744073709551615"] {
        let err = refused(&["--lock-ttl-secs", ttl]);
        assert!(
            err.contains("--lock-ttl-secs") && err.contains("out of range"),
            "{ttl}: {err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("limits.toml");
    for ttl in ["0", "9223372036854775808"] {
        std::fs::write(&file, format!("lock_ttl_secs = {ttl}\n")).unwrap();
        let err = refused(&["--limits", file.to_str().unwrap()]);
        assert!(
            err.contains("limits.toml") && err.contains("lock_ttl_secs"),
            "{ttl}: {err}"
        );
    }
}

/// A limits file changed to TTL 0 while running is refused and the previous limits stay:
/// the second node still waits for the slot.
#[test]
fn live_limits_with_ttl_zero_keep_the_previous_limits() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("limits.toml");
    std::fs::write(&file, "lock_ttl_secs = 3600\n").unwrap();
    let server = FleetLock::start(
        &cluster,
        &["--limits", file.to_str().unwrap(), "--sweep-secs", "1"],
    );
    let (a, b) = (server.client("a", "ttl"), server.client("b", "ttl"));
    a.pre_reboot().unwrap();
    std::fs::write(&file, "lock_ttl_secs = 0\n").unwrap();
    bump_mtime(&file);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("keeping the previous limits") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..3 {
        assert_eq!(b.pre_reboot().unwrap_err().kind(), "slots_full");
        std::thread::sleep(Duration::from_millis(500));
    }
    a.steady_state().unwrap();
    b.pre_reboot().unwrap();
}

/// Released and expired groups leave no key behind, and keys of empty groups written before
/// (or by another tool) are removed by the sweep.
#[test]
fn keys_of_empty_groups_are_removed() {
    let cluster = Cluster::start(1);
    let etcd = Etcd::new(&cluster.endpoints, Duration::from_secs(5)).unwrap();
    let stale = semaphore::key("stale");
    let empty = br#"{"semaphore":{"total_slots":1,"holders":[]}}"#;
    assert!(etcd.compare_and_put(&stale, 0, empty).unwrap());
    let server = FleetLock::start(&cluster, &["--sweep-secs", "1"]);
    let node = server.client("node", "workers");
    node.pre_reboot().unwrap();
    assert!(etcd.get(&semaphore::key("workers")).unwrap().is_some());
    node.steady_state().unwrap();
    assert!(etcd.get(&semaphore::key("workers")).unwrap().is_none());
    let deadline = Instant::now() + Duration::from_secs(10);
    while etcd.get(&stale).unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "stale key kept: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = etcd.get_prefix(semaphore::PREFIX.as_bytes()).unwrap();
    assert!(all.is_empty(), "{all:?}");
}

/// Corrupt keys under the prefix (sorted before a group with an expired lock) are reported and
/// left alone; the sweep still frees the expired slot. Before, the first corrupt key ended
/// every sweep.
#[test]
fn corrupt_keys_are_reported_and_skipped_and_others_still_expire() {
    let cluster = Cluster::start(1);
    let etcd = Etcd::new(&cluster.endpoints, Duration::from_secs(5)).unwrap();
    let corrupt: Vec<(Vec<u8>, &[u8])> = vec![
        (semaphore::key("aaa"), b"not json"),
        (
            semaphore::key("abc"),
            br#"{"semaphore":{"total_slots":"x"}}"#,
        ),
        (
            format!("{}a b/v1/semaphore", semaphore::PREFIX).into_bytes(),
            br#"{"semaphore":{"total_slots":1,"holders":["x"]}}"#,
        ),
        (format!("{}junk", semaphore::PREFIX).into_bytes(), b"x"),
    ];
    for (key, value) in &corrupt {
        assert!(etcd.compare_and_put(key, 0, value).unwrap());
    }
    let server = FleetLock::start(&cluster, &["--sweep-secs", "1", "--lock-ttl-secs", "2"]);
    let (vanished, waiting) = (
        server.client("vanished", "b"),
        server.client("waiting", "b"),
    );
    vanished.pre_reboot().unwrap();
    assert_eq!(waiting.pre_reboot().unwrap_err().kind(), "slots_full");
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.metric("keel_fleetlock_locks_expired_total{group=\"b\"}") < 1.0 {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    waiting.pre_reboot().unwrap();
    assert_eq!(
        server.metric("keel_fleetlock_sweep_skipped_keys"),
        corrupt.len() as f64
    );
    let log = server.log();
    assert!(
        log.contains("skipped") && log.contains("keel.fleetlock/groups/junk"),
        "{log}"
    );
    for (key, value) in &corrupt {
        assert_eq!(etcd.get(key).unwrap().unwrap().value, *value);
    }
}

/// 1,100 idle connections from one client, slowloris heads and bodies: a node still gets its
/// slot within seconds, the slow connections are closed at their deadlines, and SIGTERM stops
/// the server promptly.
#[test]
fn idle_flood_and_slow_clients_do_not_stop_the_server() {
    let cluster = Cluster::start(1);
    let mut server = FleetLock::start(
        &cluster,
        &["--header-timeout-secs", "2", "--body-timeout-secs", "2"],
    );
    let addr = server.addr;
    let flood = idle_connections(addr, 1100);
    let started = Instant::now();
    server.client("node-1", "default").pre_reboot().unwrap();
    let answered = started.elapsed();
    eprintln!("slot granted after 1,100 idle connections in {answered:?}");
    assert!(answered < Duration::from_secs(5));
    assert!(server.metric("keel_fleetlock_http_connections_open") <= (NOFILE - 64) as f64);
    std::thread::sleep(Duration::from_millis(300));
    assert!(count_closed(&flood) >= 900, "the idle flood was not closed");
    drop(flood);

    let slow = SlowClients::start(
        addr,
        10,
        b"POST /v1/pre-reboot HTTP/1.1\r\n",
        b"POST /v1/pre-reboot HTTP/1.1\r\nfleet-lock-protocol: true\r\nContent-Length: 60\r\n\r\n{",
    );
    server.client("node-1", "default").steady_state().unwrap();
    slow.assert_cut_within(Duration::from_secs(4));
    let took = sigterm(&mut server.child, Duration::from_secs(5));
    eprintln!("exited {took:?} after SIGTERM");
}

/// Every refusal, the HTTP layer's own included, is `{kind, value}` JSON.
#[test]
fn every_refusal_is_kind_value_json() {
    let cluster = Cluster::start(1);
    let server = FleetLock::start(&cluster, &[]);
    let body = r#"{"client_params":{"id":"a","group":"g"}}"#;
    let cases: Vec<(String, u16, &str)> = vec![
        ("GARBAGE\r\n\r\n".into(), 400, "bad_request"),
        (
            format!("POST /v1/pre-reboot HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
            400,
            "missing_header",
        ),
        (
            "POST /v1/pre-reboot HTTP/1.1\r\nfleet-lock-protocol: true\r\nContent-Length: 2\r\n\r\n[]".into(),
            400,
            "invalid_client_params",
        ),
        ("GET /v1/pre-reboot HTTP/1.1\r\n\r\n".into(), 405, "method_not_allowed"),
        ("PUT /v1/steady-state HTTP/1.1\r\n\r\n".into(), 405, "method_not_allowed"),
        ("GET /v2 HTTP/1.1\r\n\r\n".into(), 404, "not_found"),
        (
            "POST /v1/pre-reboot HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n".into(),
            413,
            "body_too_large",
        ),
        (
            format!("POST /v1/pre-reboot?{} HTTP/1.1\r\n\r\n", "a".repeat(9000)),
            414,
            "uri_too_long",
        ),
        (
            format!(
                "POST /v1/pre-reboot HTTP/1.1\r\n{}\r\n",
                (0..100).map(|i| format!("X-{i}: y\r\n")).collect::<String>()
            ),
            431,
            "headers_too_large",
        ),
    ];
    for (raw, status, kind) in &cases {
        exchange(server.addr, raw.as_bytes(), Duration::from_secs(5)).assert_refusal(*status, kind);
    }
    // A chunked body is understood (as curl and Go clients may send it).
    let chunked = format!(
        "POST /v1/pre-reboot HTTP/1.1\r\nfleet-lock-protocol: true\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let answer = exchange(server.addr, chunked.as_bytes(), Duration::from_secs(5));
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    server.client("a", "g").steady_state().unwrap();
}

fn bump_mtime(file: &Path) {
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(later)
        .unwrap();
}
