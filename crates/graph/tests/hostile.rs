//! Hostile clients and hostile metadata sources against the real `keel graph serve` process,
//! run with a low open-file limit (256): idle connection floods, slowloris heads and bodies,
//! requests the HTTP stack must refuse with `{kind, value}` JSON, a metadata URL that streams
//! without end or stalls, and a FIFO where a metadata file should be.
//!
//! Needs the `keel` binary of this build: `cargo build -p keel` first.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_testsupport::attack::{
    count_closed, exchange, get, idle_connections, listening_address, read_answer, rss_kib,
    sigterm, spawn_limited, Answer, SlowClients,
};
use keel_testsupport::http::{Action, FaultServer};
use keel_testsupport::process::KillOnDrop;

const NOFILE: u64 = 256;
const GRAPH: &str = "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=0.5";

/// A release index of `n` x86_64 releases.
fn releases(n: usize) -> String {
    let releases: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"version": format!("1.{i}"),
                "commits": [{"architecture": "x86_64", "checksum": format!("{i:064x}")}]})
        })
        .collect();
    serde_json::json!({ "releases": releases }).to_string()
}

/// A running graph server and its files.
struct Graph {
    addr: SocketAddr,
    child: KillOnDrop,
    dir: tempfile::TempDir,
}

impl Graph {
    /// Writes a 3-release stream (sources given as TOML values, or the local files when None)
    /// and starts `keel graph serve` with `flags`.
    fn start(index: Option<&str>, extra_config: &str, flags: &[&str]) -> Graph {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("releases.json"), releases(3)).unwrap();
        std::fs::write(dir.path().join("updates.json"), r#"{"releases": []}"#).unwrap();
        let config = dir.path().join("graph.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nreload_interval_secs = 1\n{extra_config}\n\
                 [streams.stable]\nrelease_index = {:?}\nupdates = \"updates.json\"\n\
                 architectures = [\"x86_64\"]\n",
                index.unwrap_or("releases.json")
            ),
        )
        .unwrap();
        let mut args = vec!["-v", "graph", "serve", "--config", config.to_str().unwrap()];
        args.extend_from_slice(flags);
        let log = dir.path().join("server.log");
        let child = spawn_limited(&args, NOFILE, &log);
        let addr = listening_address(&log, Duration::from_secs(20));
        Graph { addr, child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The graph's node count, asserting a 200 within `limit`.
    fn nodes(&self, limit: Duration) -> usize {
        let answer = get(self.addr, GRAPH, limit);
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let graph: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        graph["nodes"].as_array().unwrap().len()
    }

    fn metric(&self, name: &str) -> f64 {
        let text =
            String::from_utf8(get(self.addr, "/metrics", Duration::from_secs(5)).body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    /// Waits until metric `name` reaches `at_least`.
    fn wait_metric(&self, name: &str, at_least: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.metric(name) < at_least {
            assert!(
                Instant::now() < deadline,
                "{name} stayed below {at_least}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// 1,100 idle connections from one client (more than the server's 256 file descriptors):
/// before, the server stopped answering until the client let go.
#[test]
fn idle_flood_beyond_the_file_limit_still_answers() {
    let graph = Graph::start(None, "", &[]);
    let flood = idle_connections(graph.addr, 1100);
    let started = Instant::now();
    assert_eq!(graph.nodes(Duration::from_secs(5)), 3);
    let answered = started.elapsed();
    eprintln!("answered after 1,100 idle connections in {answered:?}");
    assert!(answered < Duration::from_secs(5));
    let open = graph.metric("keel_graph_http_connections_open");
    let evicted = graph.metric("keel_graph_http_connections_evicted_total");
    assert!(open <= (NOFILE - 64) as f64, "{open} connections open");
    assert!(evicted >= 1100.0 - open, "only {evicted} evicted");
    std::thread::sleep(Duration::from_millis(300));
    assert!(count_closed(&flood) >= 900, "the idle flood was not closed");
    drop(flood);
    assert_eq!(graph.nodes(Duration::from_secs(2)), 3);
}

/// Slowloris heads and bodies, and idle kept-alive connections, are closed at their deadlines
/// while other clients are served.
#[test]
fn slow_heads_slow_bodies_and_idle_keepalive_are_closed() {
    let graph = Graph::start(
        None,
        "",
        &[
            "--header-timeout-secs",
            "2",
            "--body-timeout-secs",
            "2",
            "--idle-timeout-secs",
            "2",
        ],
    );
    let addr = graph.addr;
    let slow = SlowClients::start(
        addr,
        20,
        b"GET /v1/graph HTTP/1.1\r\n",
        b"POST /v1/graph HTTP/1.1\r\nContent-Length: 4000\r\n\r\n",
    );
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert_eq!(graph.nodes(Duration::from_secs(2)), 3);
    assert!(started.elapsed() < Duration::from_secs(1));
    slow.assert_cut_within(Duration::from_secs(4));
    assert!(graph.metric("keel_graph_http_connections_timed_out_total") >= 20.0);

    // A kept-alive connection is closed after the idle timeout.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(
        read_answer(&mut stream, Duration::from_secs(5))
            .unwrap()
            .status,
        200
    );
    let idle = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut stream, &mut byte).unwrap_or(0), 0);
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "idle connection closed after {waited:?}"
    );
}

/// Every refusal, the HTTP layer's own included, is `{kind, value}` JSON.
#[test]
fn every_refusal_is_kind_value_json() {
    let graph = Graph::start(None, "", &[]);
    let long_target = format!("/v1/graph?x={}", "a".repeat(9000));
    let many_headers: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "y".repeat(20_000));
    let cases: Vec<(String, u16, &str)> = vec![
        ("GARBAGE\r\n\r\n".into(), 400, "bad_request"),
        (
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n".into(),
            400,
            "bad_request",
        ),
        (
            "POST /v1/graph HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(),
            400,
            "bad_request",
        ),
        ("GET /nowhere HTTP/1.1\r\n\r\n".into(), 404, "not_found"),
        (
            "POST /v1/graph HTTP/1.1\r\n\r\n".into(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE /metrics HTTP/1.1\r\n\r\n".into(),
            405,
            "method_not_allowed",
        ),
        (
            "POST /v1/graph HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n".into(),
            413,
            "body_too_large",
        ),
        (
            format!("GET {long_target} HTTP/1.1\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000)),
            414,
            "uri_too_long",
        ),
        (
            format!("GET {GRAPH} HTTP/1.1\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            format!("GET {GRAPH} HTTP/1.1\r\n{big_header}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "POST /v1/graph HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
            501,
            "unsupported_transfer_encoding",
        ),
    ];
    for (raw, status, kind) in &cases {
        let answer: Answer = exchange(graph.addr, raw.as_bytes(), Duration::from_secs(5));
        answer.assert_refusal(*status, kind);
    }
    assert!(graph.metric("keel_graph_http_requests_refused_total") >= 8.0);
    assert_eq!(graph.nodes(Duration::from_secs(2)), 3);
}

/// Starts a graph server whose release index comes from a URL that behaves for the first
/// request and then does `then`.
fn url_source(then: Action, extra_config: &str, flags: &[&str]) -> (Graph, FaultServer) {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("releases.json"), releases(3)).unwrap();
    let root_path = root.path().to_path_buf();
    let server = FaultServer::start(&root_path, None, move |_, before, _| {
        let _keep = &root;
        if before == 0 {
            Action::Serve
        } else {
            then.clone()
        }
    });
    let url = format!("{}releases.json", server.url);
    (Graph::start(Some(&url), extra_config, flags), server)
}

/// A metadata URL that streams without end is cut at `max_source_bytes` and the last good
/// graph stays in service (before: 12 MB of configuration grew to 3.9 GB in 21 s).
#[test]
fn endless_metadata_url_is_cut_and_the_last_graph_stays() {
    let endless = Action::Endless {
        prefix: br#"{"releases": ["#.to_vec(),
        repeat: br#"{"version": "x", "commits": []},"#.repeat(1000),
    };
    let (graph, _server) = url_source(endless, "max_source_bytes = 1048576", &[]);
    let pid = graph.child.0.id();
    graph.wait_metric(
        "keel_graph_reload_errors_total{stream=\"stable\"}",
        3.0,
        Duration::from_secs(30),
    );
    let rss = rss_kib(pid);
    eprintln!("RSS after 3 cut reloads: {rss} KiB");
    assert!(rss < 100 * 1024, "RSS {rss} KiB");
    assert!(
        graph.log().contains("larger than 1048576 bytes"),
        "{}",
        graph.log()
    );
    assert_eq!(graph.nodes(Duration::from_secs(2)), 3);
}

/// A metadata URL that stalls fails the reload after `source_timeout_secs`, the graph stays
/// served, and SIGTERM still ends the process at once.
#[test]
fn stalled_metadata_url_times_out_and_sigterm_still_stops() {
    let (mut graph, _server) = url_source(Action::Stall, "source_timeout_secs = 2", &[]);
    graph.wait_metric(
        "keel_graph_reload_errors_total{stream=\"stable\"}",
        1.0,
        Duration::from_secs(15),
    );
    assert_eq!(graph.nodes(Duration::from_secs(2)), 3);
    let took = sigterm(&mut graph.child, Duration::from_secs(5));
    eprintln!("exited {took:?} after SIGTERM during a stalled fetch");
}

/// A FIFO where a metadata file should be neither blocks serving nor SIGTERM (before: the
/// reload thread blocked in open(2) and SIGTERM no longer stopped the process); at start it
/// is refused at once with the path.
#[test]
fn fifo_source_blocks_neither_serving_nor_sigterm() {
    let mut graph = Graph::start(None, "", &[]);
    let updates = graph.path("updates.json");
    std::fs::remove_file(&updates).unwrap();
    mkfifo(&updates);
    graph.wait_metric(
        "keel_graph_reload_errors_total{stream=\"stable\"}",
        2.0,
        Duration::from_secs(15),
    );
    assert!(
        graph.log().contains("not a regular file"),
        "{}",
        graph.log()
    );
    assert_eq!(graph.nodes(Duration::from_secs(2)), 3);
    let took = sigterm(&mut graph.child, Duration::from_secs(5));
    eprintln!("exited {took:?} after SIGTERM with a FIFO source");

    // At start: refused promptly, naming the path.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("releases.json"), releases(3)).unwrap();
    mkfifo(&dir.path().join("updates.json"));
    let config = dir.path().join("graph.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[streams.stable]\nrelease_index = \"releases.json\"\n\
         updates = \"updates.json\"\narchitectures = [\"x86_64\"]\n",
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let mut child = spawn_limited(
        &["graph", "serve", "--config", config.to_str().unwrap()],
        NOFILE,
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "start hung on a FIFO source");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success());
    assert!(
        text.contains("updates.json") && text.contains("not a regular file"),
        "{text}"
    );
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}
