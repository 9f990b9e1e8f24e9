//! Shared by the FleetLock tests: a real etcd cluster on 127.0.0.1.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_http::{Client, HttpOptions};
use keel_testsupport::process::{free_port, KillOnDrop};

/// etcd members started for one test; killed when dropped.
pub struct Cluster {
    pub members: Vec<KillOnDrop>,
    pub endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members; panics when etcd is not installed (a test that cannot run fails).
    pub fn start(n: usize) -> Cluster {
        assert!(
            Path::new("/usr/bin/etcd").exists(),
            "/usr/bin/etcd is missing: apt-get install etcd-server"
        );
        // tmpfs keeps etcd's fsyncs cheap when available.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect();
        let mut members = Vec::new();
        let mut endpoints = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
            let child = Command::new("/usr/bin/etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args([
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args([
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args([
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    &format!("keel-{}", ports[0].0),
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting etcd");
            members.push(KillOnDrop(child));
            endpoints.push(format!("http://127.0.0.1:{client}"));
        }
        let cluster = Cluster {
            members,
            endpoints,
            _dir: dir,
        };
        let http = Client::new(&HttpOptions {
            request_timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        for e in &cluster.endpoints {
            while !http
                .get(&format!("{e}/health"), &[])
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains("true"))
            {
                if Instant::now() > deadline {
                    let logs: Vec<String> = (0..n)
                        .map(|i| {
                            std::fs::read_to_string(cluster._dir.path().join(format!("m{i}.log")))
                                .unwrap_or_default()
                        })
                        .map(|l| l.lines().rev().take(8).collect::<Vec<_>>().join("\n"))
                        .collect();
                    panic!(
                        "etcd {e} did not become healthy; last log lines:\n{}",
                        logs.join("\n---\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }
}
