//! `keel graph serve` and `keel fleetlock serve` as processes: help text, configuration errors,
//! a served graph, and a FleetLock server whose etcd is unreachable.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_agent::fleetlock::{FleetLockClient, FleetLockError};
use keel_http::{Client, HttpOptions};
use keel_testsupport::process::{free_port, KillOnDrop};

const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn spawn(args: &[&str]) -> KillOnDrop {
    KillOnDrop(
        Command::new(KEEL)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// GETs `url`, retrying while the server starts.
fn get_when_up(url: &str) -> Vec<u8> {
    let http = Client::new(&HttpOptions::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http.get(url, &[]) {
            Ok(body) => return body,
            Err(e) if Instant::now() < deadline && e.is_retryable() => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }
}

#[test]
fn help_has_examples() {
    for sub in [["graph", "serve"], ["fleetlock", "serve"]] {
        let out = Command::new(KEEL).args(sub).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Examples:"),
            "{sub:?}: {text}"
        );
    }
}

#[test]
fn graph_serve_reports_config_errors_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = Command::new(KEEL)
        .args(["graph", "serve", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&*missing.to_string_lossy()));

    let port = free_port();
    std::fs::write(
        dir.path().join("releases.json"),
        r#"{"releases":[{"version":"1.0","commits":[{"architecture":"x86_64","checksum":"aa"}]},
                        {"version":"1.1","commits":[{"architecture":"x86_64","checksum":"bb"}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("updates.json"),
        r#"{"releases":[{"version":"1.1","metadata":{"rollout":{"start_percentage":1.0}}}]}"#,
    )
    .unwrap();
    let config = dir.path().join("graph.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:{port}\"\n[streams.stable]\nrelease_index = \"releases.json\"\nupdates = \"updates.json\"\narchitectures = [\"x86_64\"]\n"),
    )
    .unwrap();
    let _server = spawn(&["graph", "serve", "--config", config.to_str().unwrap()]);
    let body = get_when_up(&format!(
        "http://127.0.0.1:{port}/v1/graph?basearch=x86_64&stream=stable"
    ));
    let graph: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(graph["edges"], serde_json::json!([[0, 1]]));
    assert_eq!(graph["nodes"][1]["payload"], "bb");
}

#[test]
fn fleetlock_without_etcd_answers_etcd_unavailable() {
    let port = free_port();
    let dead = format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let _server = spawn(&[
        "fleetlock",
        "serve",
        "--etcd",
        &dead,
        "--listen",
        &listen,
        "--etcd-timeout-secs",
        "1",
    ]);
    get_when_up(&format!("http://{listen}/metrics"));
    let client = FleetLockClient::new(&format!("http://{listen}"), "node", "default").unwrap();
    match client.pre_reboot() {
        Err(FleetLockError::Refused {
            status,
            kind,
            value,
        }) => {
            assert_eq!((status, kind.as_str()), (503, "etcd_unavailable"));
            assert!(value.contains("no etcd endpoint answered"), "{value}");
        }
        other => panic!("expected etcd_unavailable, got {other:?}"),
    }
}
