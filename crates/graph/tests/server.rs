//! The graph server over real HTTP on 127.0.0.1 with the real Fedora CoreOS stable updates
//! metadata and a generated 150-release index.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use keel_graph::config::Config;
use keel_graph::server::Server;
use serde_json::Value;

const UPDATES: &str = include_str!("data/fcos-updates-stable.json");
/// Start of the 48 h ramp of 44.20260707.3.1 in the real metadata.
const RAMP_START: i64 = 1_784_728_800;
const RAMPING: &str = "44.20260707.3.1";
const P: &str = "org.fedoraproject.coreos";

/// Half-way through the ramp: rollout level 0.5.
fn half_way() -> i64 {
    RAMP_START + 24 * 3600
}

/// Versions of the updates metadata with filler versions between them, 150 in all; every
/// release has an x86_64 commit, every third filler lacks aarch64.
fn release_index() -> Value {
    let updates: Value = serde_json::from_str(UPDATES).unwrap();
    let real: Vec<String> = updates["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap().to_string())
        .collect();
    let per_gap = (150 - real.len()).div_ceil(real.len());
    let mut versions = Vec::new();
    for v in &real {
        versions.push((v.clone(), false));
        for k in 0..per_gap {
            if versions.len() + real.len() - real.iter().position(|x| x == v).unwrap() - 1 < 150 {
                versions.push((format!("{v}.{}", 10 + k), true));
            }
        }
    }
    assert_eq!(versions.len(), 150);
    let releases: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, (v, filler))| {
            let mut commits = vec![serde_json::json!({"architecture": "x86_64", "checksum": format!("{i:064x}")})];
            if !(*filler && i % 3 == 0) {
                commits.push(serde_json::json!({"architecture": "aarch64", "checksum": format!("a{i:063x}")}));
            }
            serde_json::json!({"version": v, "metadata": format!("https://example.org/{v}/release.json"), "commits": commits})
        })
        .collect();
    serde_json::json!({"note": "generated for tests", "stream": "stable", "releases": releases})
}

fn write_config(dir: &Path, reload_secs: u64) -> Config {
    std::fs::write(
        dir.join("releases.json"),
        serde_json::to_vec(&release_index()).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("updates.json"), UPDATES).unwrap();
    let text = format!(
        "reload_interval_secs = {reload_secs}\n[streams.stable]\nrelease_index = \"releases.json\"\nupdates = \"updates.json\"\narchitectures = [\"x86_64\", \"aarch64\"]\n"
    );
    std::fs::write(dir.join("graph.toml"), text).unwrap();
    Config::load(&dir.join("graph.toml")).unwrap()
}

fn start(config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::load(config).unwrap().with_clock(half_way);
    let limits = keel_graph::server::limits(&keel_httpd::HttpArgs::default()).unwrap();
    std::thread::spawn(move || server.run(listener, limits).unwrap());
    addr
}

/// One HTTP/1.1 request; returns status and body.
fn request(addr: SocketAddr, method: &str, target: &str) -> (u16, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connecting to {addr}: {e}"),
        }
    };
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

fn graph(addr: SocketAddr, query: &str) -> Value {
    let (status, body) = request(addr, "GET", &format!("/v1/graph?{query}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn flag(node: &Value, key: &str) -> bool {
    node["metadata"].get(format!("{P}.updates.{key}")).is_some()
}

/// Checks the edges against the rules written as predicates, independent of the builder.
fn check_rules(g: &Value, ramp_visible: bool) {
    let nodes = g["nodes"].as_array().unwrap();
    let edges: Vec<(usize, usize)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_u64().unwrap() as usize,
                e[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let barrier = |i: usize| flag(&nodes[i], "barrier");
    let target = |i: usize| {
        barrier(i)
            || (flag(&nodes[i], "rollout") && (ramp_visible || nodes[i]["version"] != RAMPING))
    };
    for &(from, to) in &edges {
        assert!(from < to, "edge {from}->{to} goes backwards");
        assert!(
            target(to),
            "edge into {} which is no visible barrier/rollout",
            nodes[to]["version"]
        );
        assert!(!flag(&nodes[from], "deadend"), "edge out of a dead-end");
        assert!(
            !(from + 1..to).any(barrier),
            "edge {from}->{to} jumps over a barrier"
        );
    }
    for to in (0..nodes.len()).filter(|&i| target(i)) {
        let previous_barrier = (0..to).rev().find(|&i| barrier(i)).unwrap_or(0);
        for from in (previous_barrier..to).filter(|&i| !flag(&nodes[i], "deadend")) {
            assert!(edges.contains(&(from, to)), "missing edge {from}->{to}");
        }
    }
    let ages: Vec<u64> = nodes
        .iter()
        .map(|n| {
            n["metadata"][format!("{P}.releases.age_index")]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        ages.windows(2).all(|w| w[0] < w[1]),
        "age_index must increase"
    );
    assert!(nodes
        .iter()
        .all(|n| n["metadata"][format!("{P}.scheme")] == "checksum"));
}

#[test]
fn real_stable_metadata_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(write_config(dir.path(), 1));

    let eager = graph(addr, "basearch=x86_64&stream=stable&rollout_wariness=0.4");
    let cautious = graph(
        addr,
        "basearch=x86_64&stream=stable&rollout_wariness=0.600000",
    );
    assert_eq!(eager["nodes"].as_array().unwrap().len(), 150);
    check_rules(&eager, true);
    check_rules(&cautious, false);
    let into_ramp = |g: &Value| {
        let idx = g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .position(|n| n["version"] == RAMPING)
            .unwrap();
        g["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e[1] == idx)
            .count()
    };
    // 43.20260413.3.2 is the last barrier; the completed and the ramping rollout follow it.
    assert!(into_ramp(&eager) > 0);
    assert_eq!(into_ramp(&cautious), 0);
    assert_eq!(
        eager["edges"].as_array().unwrap().len(),
        cautious["edges"].as_array().unwrap().len() + into_ramp(&eager)
    );

    let arm = graph(
        addr,
        "basearch=aarch64&stream=stable&node_uuid=0123456789abcdef0123456789abcdef",
    );
    assert!(arm["nodes"].as_array().unwrap().len() < 150);
    let w = keel_graph::query::wariness_of_uuid("0123456789abcdef0123456789abcdef");
    check_rules(&arm, w <= 0.5);
    assert!(arm["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["payload"].as_str().unwrap().starts_with('a')));

    for (target, status, kind) in [
        (
            "/v1/graph?basearch=x86_64&stream=testing",
            404,
            "unknown_stream",
        ),
        (
            "/v1/graph?basearch=s390x&stream=stable",
            404,
            "unknown_basearch",
        ),
        ("/v1/graph?stream=stable", 400, "missing_parameter"),
        (
            "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=2",
            400,
            "invalid_parameter",
        ),
        ("/v2/graph", 404, "not_found"),
    ] {
        let (got, body) = request(addr, "GET", target);
        assert_eq!(got, status, "{target}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["kind"], kind, "{target}");
        assert!(body["value"].as_str().is_some_and(|v| !v.is_empty()));
    }
    assert_eq!(request(addr, "POST", "/v1/graph").0, 405);

    // Reload: a new dead-end on the newest barrier takes away its outgoing edges.
    let mut updates: Value = serde_json::from_str(UPDATES).unwrap();
    let last_barrier = "43.20260413.3.2";
    for r in updates["releases"].as_array_mut().unwrap() {
        if r["version"] == last_barrier {
            r["metadata"]["deadend"] = serde_json::json!({"reason": "https://example.org/stuck"});
        }
    }
    std::fs::write(
        dir.path().join("updates.json"),
        serde_json::to_vec(&updates).unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let g = graph(addr, "basearch=x86_64&stream=stable&rollout_wariness=0.4");
        let nodes = g["nodes"].as_array().unwrap();
        let idx = nodes
            .iter()
            .position(|n| n["version"] == last_barrier)
            .unwrap();
        if nodes[idx]["metadata"][format!("{P}.updates.deadend_reason")]
            == "https://example.org/stuck"
        {
            assert!(g["edges"].as_array().unwrap().iter().all(|e| e[0] != idx));
            check_rules(&g, true);
            break;
        }
        assert!(Instant::now() < deadline, "reload did not happen");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A broken file is counted as a reload error and the last good graph stays.
    std::fs::write(dir.path().join("updates.json"), b"{not json").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = request(addr, "GET", "/metrics");
        let text = String::from_utf8(body).unwrap();
        if text.contains("keel_graph_reload_errors_total{stream=\"stable\"} 1") {
            assert!(
                text.contains("keel_graph_loads_total{stream=\"stable\"} 2"),
                "{text}"
            );
            assert!(
                text.contains("keel_graph_nodes{stream=\"stable\",basearch=\"x86_64\"} 150"),
                "{text}"
            );
            assert!(text.lines().any(|l| l
                .starts_with("keel_graph_requests_total{status=\"404\"}")
                && !l.ends_with(" 0")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload error not counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        graph(addr, "basearch=x86_64&stream=stable")["nodes"]
            .as_array()
            .unwrap()
            .len(),
        150
    );
}

/// Random query strings never crash the server: every answer is 200 with a graph, or 4xx with
/// a `{kind, value}` body.
#[test]
fn randomized_queries_get_graph_or_kind_value() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(write_config(dir.path(), 60));
    let keys = [
        "basearch",
        "stream",
        "rollout_wariness",
        "node_uuid",
        "os_version",
        "group",
        "platform",
        "oci",
        "",
        "%ZZ",
        "b%00",
    ];
    let values = [
        "x86_64",
        "aarch64",
        "s390x",
        "stable",
        "next",
        "0.5",
        "1e-3",
        "-1",
        "NaN",
        "inf",
        "",
        "%FF%FE",
        "%00",
        "a+b",
        "%2e%2e%2f",
        "0123456789abcdef",
        "=",
        "&&",
    ];
    let mut rng = fastrand::Rng::with_seed(0x6b65656c);
    let mut seen = [0usize; 3];
    for _ in 0..400 {
        let n = rng.usize(0..6);
        let mut parts: Vec<String> = (0..n)
            .map(|_| {
                let mut v = values[rng.usize(..values.len())].to_string();
                if rng.u8(..4) == 0 {
                    for _ in 0..rng.usize(1..8) {
                        // Characters a request target may carry in its query.
                        let allowed = b"abcXYZ019-._~!$&'()*+,;=:@/?%";
                        v.push(char::from(allowed[rng.usize(..allowed.len())]));
                    }
                }
                format!("{}={v}", keys[rng.usize(..keys.len())])
            })
            .collect();
        if rng.bool() {
            parts.push(format!(
                "basearch={}",
                ["x86_64", "aarch64", "s390x"][rng.usize(..3)]
            ));
            parts.push(format!(
                "stream={}",
                ["stable", "stable", "next"][rng.usize(..3)]
            ));
        }
        rng.shuffle(&mut parts);
        let target = format!("/v1/graph?{}", parts.join("&"));
        let (status, body) = request(addr, "GET", &target);
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{target}: {e}"));
        match status {
            200 => {
                assert!(body["nodes"].is_array(), "{target}");
                seen[0] += 1;
            }
            400 | 404 => {
                assert!(
                    body["kind"].is_string() && body["value"].is_string(),
                    "{target}: {body}"
                );
                seen[if status == 400 { 1 } else { 2 }] += 1;
            }
            other => panic!("{target}: unexpected status {other}"),
        }
    }
    assert!(
        seen.iter().all(|&n| n > 0),
        "each outcome should occur: {seen:?}"
    );
}
