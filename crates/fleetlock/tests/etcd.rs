//! FleetLock over a real etcd (Debian's etcd-server) on 127.0.0.1: slot limits under 200
//! concurrent clients, protocol errors, live slot changes, a 3-member cluster losing a member,
//! and expiry of a vanished node's lock.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Cluster;
use keel_agent::fleetlock::{FleetLockClient, FleetLockError};
use keel_fleetlock::etcd::Etcd;
use keel_fleetlock::limits::{Limits, LimitsFile};
use keel_fleetlock::semaphore::{self, Document};
use keel_fleetlock::server::Server;
use keel_fleetlock::store::{system_clock, Store};
use keel_http::{Client, HttpOptions};

/// Starts a FleetLock server on a free port; returns its base URL and store.
fn serve(
    endpoints: &[String],
    limits: Limits,
    limits_file: Option<LimitsFile>,
    sweep: Duration,
) -> (String, Arc<Store>) {
    let etcd = Etcd::new(endpoints, Duration::from_secs(5)).unwrap();
    let store = Arc::new(Store::new(etcd, limits, system_clock));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = Server {
        store: store.clone(),
        limits_file,
        sweep_interval: sweep,
    };
    let limits = keel_fleetlock::server::limits(&keel_httpd::HttpArgs::default()).unwrap();
    std::thread::spawn(move || server.run(listener, limits).unwrap());
    (format!("http://{addr}/"), store)
}

fn limits(default_slots: u64, ttl: i64, groups: &[(&str, u64)]) -> Limits {
    Limits {
        default_slots,
        lock_ttl_secs: ttl,
        groups: groups.iter().map(|(g, n)| (g.to_string(), *n)).collect(),
    }
}

fn refused_kind(r: Result<(), FleetLockError>) -> String {
    match r {
        Err(FleetLockError::Refused { kind, .. }) => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn metrics(base: &str) -> String {
    let http = Client::new(&HttpOptions::default()).unwrap();
    String::from_utf8(http.get(&format!("{base}metrics"), &[]).unwrap()).unwrap()
}

#[test]
fn two_hundred_clients_never_exceed_group_slots() {
    let cluster = Cluster::start(1);
    let slots: Vec<(String, u64)> = (0..5)
        .map(|g| (format!("group-{g}"), g as u64 + 1))
        .collect();
    let groups: Vec<(&str, u64)> = slots.iter().map(|(g, n)| (g.as_str(), *n)).collect();
    let (base, _) = serve(
        &cluster.endpoints,
        limits(1, 3600, &groups),
        None,
        Duration::from_secs(5),
    );

    let holding: Arc<Vec<AtomicUsize>> = Arc::new((0..5).map(|_| AtomicUsize::new(0)).collect());
    let peak: Arc<Vec<AtomicUsize>> = Arc::new((0..5).map(|_| AtomicUsize::new(0)).collect());
    let started = Instant::now();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (base, holding, peak) = (base.clone(), holding.clone(), peak.clone());
            let (group, max) = slots[i % 5].clone();
            std::thread::spawn(move || {
                let g = i % 5;
                let client = FleetLockClient::new(&base, &format!("node-{i:03}"), &group).unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match client.pre_reboot() {
                        Ok(()) => break,
                        Err(e) => {
                            assert_eq!(e.kind(), "slots_full", "node-{i}: {e}");
                            assert!(Instant::now() < deadline, "node-{i} never got a slot");
                            std::thread::sleep(Duration::from_millis(5 + (i % 7) as u64 * 3));
                        }
                    }
                }
                let now = holding[g].fetch_add(1, Ordering::SeqCst) + 1;
                assert!(
                    now as u64 <= max,
                    "{group}: {now} concurrent holders > {max} slots"
                );
                peak[g].fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                holding[g].fetch_sub(1, Ordering::SeqCst);
                client.steady_state().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let peaks: Vec<usize> = peak.iter().map(|p| p.load(Ordering::SeqCst)).collect();
    eprintln!(
        "200 clients done in {:?}; peak holders per group {peaks:?}",
        started.elapsed()
    );
    assert!(peaks
        .iter()
        .zip(&slots)
        .all(|(p, (_, s))| *p >= 1 && *p as u64 <= *s));
    assert!(
        peaks[1..].iter().any(|p| *p > 1),
        "groups with several slots should be used concurrently: {peaks:?}"
    );

    // Every slot was released: no group keeps a key in etcd.
    let etcd = Etcd::new(&cluster.endpoints, Duration::from_secs(5)).unwrap();
    for (group, _) in &slots {
        let stored = etcd.get(&semaphore::key(group)).unwrap();
        assert!(stored.is_none(), "{group}: {stored:?}");
    }
    let text = metrics(&base);
    for (group, n) in &slots {
        assert!(
            text.contains(&format!("keel_fleetlock_slots{{group=\"{group}\"}} {n}")),
            "{text}"
        );
    }
    assert!(
        text.contains("keel_fleetlock_locks_acquired_total{group=\"group-0\"} 40"),
        "{text}"
    );
    assert!(
        text.contains("keel_fleetlock_requests_total{api=\"steady_state\",status=\"200\"} 200"),
        "{text}"
    );
}

#[test]
fn protocol_rules_and_live_slot_changes() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("limits.toml");
    std::fs::write(&file, "[groups]\nlive = 1\n").unwrap();
    let defaults = limits(1, 3600, &[]);
    let mut limits_file = LimitsFile::new(&file, defaults.clone());
    let initial = limits_file.reload_if_changed().unwrap().unwrap();
    let (base, _) = serve(
        &cluster.endpoints,
        initial,
        Some(limits_file),
        Duration::from_millis(300),
    );

    let http = Client::new(&HttpOptions::default()).unwrap();
    let body = br#"{"client_params":{"id":"a","group":"live"}}"#;
    let json_header = ("Content-Type".to_string(), "application/json".to_string());
    let protocol = ("fleet-lock-protocol".to_string(), "true".to_string());
    for (headers, body, status, kind) in [
        (vec![json_header.clone()], &body[..], 400, "missing_header"),
        (
            vec![("fleet-lock-protocol".into(), "false".into())],
            &body[..],
            400,
            "missing_header",
        ),
        (
            vec![protocol.clone()],
            &b"{}"[..],
            400,
            "invalid_client_params",
        ),
        (
            vec![protocol.clone()],
            &br#"{"client_params":{"id":"","group":"live"}}"#[..],
            400,
            "invalid_client_params",
        ),
        (
            vec![protocol.clone()],
            &br#"{"client_params":{"id":"a","group":"a/b"}}"#[..],
            400,
            "invalid_client_params",
        ),
    ] {
        let (got, answer) = http
            .post(&format!("{base}v1/pre-reboot"), &headers, body)
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(
            (got, answer["kind"].as_str().unwrap()),
            (status, kind),
            "{answer}"
        );
        assert!(answer["value"].as_str().is_some_and(|v| !v.is_empty()));
    }

    let a = FleetLockClient::new(&base, "a", "live").unwrap();
    let b = FleetLockClient::new(&base, "b", "live").unwrap();
    b.steady_state().expect("unlocking without a lock succeeds");
    a.pre_reboot().unwrap();
    a.pre_reboot()
        .expect("locking again while holding succeeds");
    assert_eq!(refused_kind(b.pre_reboot()), "slots_full");

    // Two slots from now on: b gets in while a still holds its slot.
    std::fs::write(&file, "[groups]\nlive = 2\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.pre_reboot().is_err() {
        assert!(Instant::now() < deadline, "new slot count not applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(metrics(&base).contains("keel_fleetlock_slots{group=\"live\"} 2"));
    a.steady_state().unwrap();
    b.steady_state().unwrap();
}

#[test]
fn three_member_cluster_survives_a_dead_member_and_expiry_frees_slots() {
    let mut cluster = Cluster::start(3);
    // Fail-over is checked through a server whose locks never expire during the test, so a
    // slow fail-over on a loaded machine cannot free `a`'s slot behind the test's back.
    let (base, _) = serve(
        &cluster.endpoints,
        limits(1, 3600, &[]),
        None,
        Duration::from_millis(500),
    );
    let a = FleetLockClient::new(&base, "a", "default").unwrap();
    let b = FleetLockClient::new(&base, "b", "default").unwrap();
    a.pre_reboot().unwrap();

    // Kill the member the server talks to first (dropping it kills and reaps it); the server
    // must fail over to the others.
    drop(cluster.members.remove(0));
    assert_eq!(refused_kind(b.pre_reboot()), "slots_full");
    a.steady_state().unwrap();
    b.pre_reboot().unwrap();
    b.steady_state().unwrap();

    // A node takes a slot and never comes back: a server with a short TTL (on the same,
    // degraded cluster) frees it by its sweep.
    let ttl = 2;
    let (base, _) = serve(
        &cluster.endpoints,
        limits(1, ttl, &[]),
        None,
        Duration::from_millis(500),
    );
    let vanished = FleetLockClient::new(&base, "vanished", "expiry").unwrap();
    let waiting = FleetLockClient::new(&base, "waiting", "expiry").unwrap();
    vanished.pre_reboot().unwrap();
    assert_eq!(refused_kind(waiting.pre_reboot()), "slots_full");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    loop {
        let text = metrics(&base);
        if text.contains("keel_fleetlock_locks_expired_total{group=\"expiry\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "lock never expired:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() >= Duration::from_secs(ttl as u64 - 1));
    waiting
        .pre_reboot()
        .expect("the expired slot is free again");
    let holders: BTreeMap<String, i64> = {
        let etcd = Etcd::new(&cluster.endpoints[1..], Duration::from_secs(5)).unwrap();
        let doc: Document =
            serde_json::from_slice(&etcd.get(&semaphore::key("expiry")).unwrap().unwrap().value)
                .unwrap();
        doc.semaphore.acquired
    };
    assert_eq!(holders.keys().collect::<Vec<_>>(), ["waiting"]);
}
