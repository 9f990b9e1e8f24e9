//! The update agent as a process against the real servers on 127.0.0.1: `keel graph serve`,
//! `keel fleetlock serve` on a real etcd, and a directory sysroot (`--assume-booted` names the
//! deployment a node would run; the reboot is a command hook). Drives poll -> stage locked ->
//! wait for the slot another node holds -> lock -> unlock + "reboot" -> (shutdown finalizes)
//! -> boot into the new release -> steady state releases the slot; plus the dead-end login
//! message appearing and going away, `keel update check`, `keel agent status|metrics`.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_agent::fleetlock::{FleetLockClient, FleetLockError};
use keel_http::{Client, HttpOptions};
use keel_testsupport::process::{free_port, KillOnDrop};
use serde_json::Value;

const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A single etcd member on loopback (data on tmpfs when possible).
fn start_etcd(dir: &Path) -> (KillOnDrop, String) {
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("/usr/bin/etcd")
        .args(["--name", "agent-test", "--data-dir"])
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("agent-test={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting etcd");
    let http = Client::new(&HttpOptions::default()).unwrap();
    wait_for("etcd health", 30, || {
        http.get(&format!("{url}/health"), &[])
            .ok()
            .filter(|b| String::from_utf8_lossy(b).contains("true"))
    });
    (KillOnDrop(child), url)
}

fn spawn(args: &[&str], log: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(KEEL)
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

struct Node {
    base: PathBuf,
    sysroot: PathBuf,
    root: PathBuf,
}

impl Node {
    /// Commit a bootable tree as `version` on keel/test; returns the checksum.
    fn commit(&self, version: &str) -> String {
        let t = self.base.join(format!("tree-{version}"));
        let k = t.join("usr/lib/modules/6.1.0-test");
        fs::create_dir_all(&k).unwrap();
        fs::create_dir_all(t.join("usr/etc")).unwrap();
        fs::write(k.join("vmlinuz"), format!("kernel {version}")).unwrap();
        fs::write(k.join("initramfs.img"), "initramfs").unwrap();
        fs::write(
            t.join("usr/etc/os-release"),
            format!("VERSION_ID={version}\n"),
        )
        .unwrap();
        let repo = self.sysroot.join("ostree/repo");
        ok(Command::new(KEEL)
            .args(["repo", "--repo"])
            .arg(&repo)
            .args(["commit", "-b", "keel/test", "-s", version])
            .arg(format!("--add-metadata-string=version={version}"))
            .arg("--add-metadata-string=keel.stream=stable")
            .arg(&t))
        .trim()
        .to_string()
    }

    fn status(&self, booted: Option<&str>) -> Value {
        let mut c = Command::new(KEEL);
        c.args(["status", "--json", "--sysroot"]).arg(&self.sysroot);
        if let Some(b) = booted {
            c.args(["--assume-booted", b]);
        }
        let v = serde_json::from_str(&ok(&mut c)).unwrap();
        keel_testsupport::schema::assert_valid("status", &v);
        v
    }

    fn agent_state(&self) -> Option<Value> {
        fs::read(self.root.join("run/keel/agent/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn wait_phase(&self, phase: &str, summary_has: &str) -> Value {
        wait_for(&format!("agent phase {phase} ({summary_has})"), 60, || {
            self.agent_state().filter(|s| {
                s["phase"] == phase && s["summary"].as_str().unwrap().contains(summary_has)
            })
        })
    }

    fn agent(&self, booted: &str, log: &str) -> KillOnDrop {
        let hook = format!("touch {}", self.base.join("rebooted").display());
        spawn(
            &[
                "agent",
                "--root",
                self.root.to_str().unwrap(),
                "--sysroot",
                self.sysroot.to_str().unwrap(),
                "--assume-booted",
                booted,
                "--reboot-command",
                &hook,
            ],
            &self.base.join(log),
        )
    }
}

fn releases(commits: &[(&str, &str)]) -> String {
    let r: Vec<Value> = commits
        .iter()
        .map(|(v, c)| serde_json::json!({"version": v, "commits": [{"architecture": std::env::consts::ARCH, "checksum": c}]}))
        .collect();
    serde_json::json!({ "releases": r }).to_string()
}

fn updates(deadend_v2: bool) -> String {
    let mut meta = serde_json::json!({"rollout": {"start_percentage": 1.0}});
    if deadend_v2 {
        meta["deadend"] = serde_json::json!({"reason": "https://example.org/keel/deadend-2"});
    }
    serde_json::json!({"releases": [{"version": "2", "metadata": meta}]}).to_string()
}

/// A node on release 1 with release 2 committed, and a graph server offering 1 -> 2.
struct Graphed {
    dir: PathBuf,
    port: u16,
    _server: KillOnDrop,
}

impl Graphed {
    /// (node, deployment of 1, commit of 2, graph server); 2 starts as a dead-end.
    fn setup(base: &Path) -> (Node, String, String, Graphed) {
        let node = Node {
            sysroot: base.join("sysroot"),
            root: base.join("root"),
            base: base.to_path_buf(),
        };
        ok(Command::new(KEEL)
            .args(["init-sysroot", "--sysroot"])
            .arg(&node.sysroot));
        let c1 = node.commit("1");
        ok(Command::new(KEEL)
            .args(["deploy", "keel/test", "--sysroot"])
            .arg(&node.sysroot));
        let d1 = node.status(None)["deployments"][0]["deployment"]
            .as_str()
            .unwrap()
            .to_string();
        let c2 = node.commit("2");
        let dir = base.join("graph");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("releases.json"),
            releases(&[("1", &c1), ("2", &c2)]),
        )
        .unwrap();
        fs::write(dir.join("updates.json"), updates(true)).unwrap();
        let port = free_port();
        fs::write(
            dir.join("graph.toml"),
            format!("listen = \"127.0.0.1:{port}\"\nreload_interval_secs = 1\n[streams.stable]\nrelease_index = \"releases.json\"\nupdates = \"updates.json\"\narchitectures = [\"{}\"]\n", std::env::consts::ARCH),
        )
        .unwrap();
        let server = spawn(
            &[
                "graph",
                "serve",
                "--config",
                dir.join("graph.toml").to_str().unwrap(),
            ],
            &base.join("graph.log"),
        );
        let http = Client::new(&HttpOptions::default()).unwrap();
        wait_for("the graph server", 30, || {
            http.get(&format!("http://127.0.0.1:{port}/metrics"), &[])
                .ok()
        });
        fs::create_dir_all(node.root.join("etc/keel/agent.d")).unwrap();
        fs::write(
            node.root.join("etc/machine-id"),
            "0f0e0d0c0b0a09080706050403020100\n",
        )
        .unwrap();
        (
            node,
            d1,
            c2,
            Graphed {
                dir,
                port,
                _server: server,
            },
        )
    }
}

#[test]
fn agent_stages_locked_waits_for_the_slot_reboots_and_releases_it_after_boot() {
    if !keel_testsupport::require("agent_end_to_end", &[]) {
        return;
    }
    if !Path::new("/usr/bin/etcd").exists() {
        return keel_testsupport::skip(
            "agent_end_to_end: /usr/bin/etcd missing (apt-get install etcd-server)",
        );
    }
    let dir = keel_testsupport::scratch_dir("agent");
    let base = dir.path().to_path_buf();
    let (node, d1, c2, graph) = Graphed::setup(&base);
    let (graph_dir, graph_port) = (graph.dir.clone(), graph.port);
    let etcd_dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let (_etcd, etcd_url) = start_etcd(etcd_dir.path());
    let lock_addr = format!("127.0.0.1:{}", free_port());
    let _fleetlock = spawn(
        &[
            "fleetlock",
            "serve",
            "--etcd",
            &etcd_url,
            "--listen",
            &lock_addr,
            "--slots",
            "1",
        ],
        &base.join("fleetlock.log"),
    );
    let lock_url = format!("http://{lock_addr}");
    let http = Client::new(&HttpOptions::default()).unwrap();
    wait_for("graph and fleetlock servers", 30, || {
        let g = http
            .get(&format!("http://127.0.0.1:{graph_port}/metrics"), &[])
            .ok();
        let l = http.get(&format!("{lock_url}/metrics"), &[]).ok();
        g.and(l)
    });

    // The node's configuration.
    fs::write(
        node.root.join("etc/keel/agent.d/50-test.toml"),
        format!("[agent]\npoll_interval_secs = 1\nretry_interval_secs = 1\n[cincinnati]\nbase_url = \"http://127.0.0.1:{graph_port}\"\n[identity]\ngroup = \"workers\"\n[updates]\nstrategy = \"fleet_lock\"\n[updates.fleet_lock]\nbase_url = \"{lock_url}\"\n"),
    )
    .unwrap();

    let check: Value = serde_json::from_str(&ok(Command::new(KEEL)
        .args([
            "update",
            "check",
            "--json",
            "--assume-booted",
            &d1,
            "--root",
        ])
        .arg(&node.root)
        .arg("--sysroot")
        .arg(&node.sysroot)))
    .unwrap();
    keel_testsupport::schema::assert_valid("update-check", &check);
    assert_eq!(check["booted"]["version"], "1");
    assert_eq!(check["target"]["version"], "2");
    assert_eq!(check["target"]["commit"], c2.as_str());
    assert_eq!(check["fleet_lock"], true);
    assert_eq!(check["staged_commit"], Value::Null);

    // Another node of the group holds the only slot.
    let other = FleetLockClient::new(&lock_url, "other-node", "workers").unwrap();
    other.pre_reboot().unwrap();

    let agent = node.agent(&d1, "agent-1.log");
    let st = node.wait_phase("staged", "waiting for a FleetLock slot");
    assert_eq!(st["target"]["version"], "2");
    let status = node.status(Some(&d1));
    assert_eq!(status["staged"]["version"], "2");
    assert_eq!(
        status["finalization_locked"], true,
        "staged locked while waiting"
    );
    assert!(!base.join("rebooted").exists());
    let metrics = ok(Command::new(KEEL)
        .args(["agent", "metrics", "--root"])
        .arg(&node.root));
    assert!(
        metrics.contains("keel_agent_lock_errors_total{api=\"pre-reboot\",kind=\"slots_full\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keel_agent_update_available 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keel_agent_state{state=\"staged\"} 1"),
        "{metrics}"
    );

    // The other node is back: the agent takes the slot, unlocks and "reboots".
    other.steady_state().unwrap();
    node.wait_phase("finalized", "rebooting");
    wait_for("the reboot hook", 10, || {
        base.join("rebooted").exists().then_some(())
    });
    assert_eq!(node.status(Some(&d1))["finalization_locked"], false);
    match other.pre_reboot() {
        Err(FleetLockError::Refused { status: 423, .. }) => {}
        r => panic!("the agent should hold the slot: {r:?}"),
    }
    let text = ok(Command::new(KEEL)
        .args(["agent", "status", "--root"])
        .arg(&node.root));
    assert!(
        text.contains("Update agent: finalized (fleet_lock)"),
        "{text}"
    );
    // `keel status` shows the agent's state too; on a node root and sysroot are both `/`, here
    // the state file is put where that sysroot's agent would have written it.
    let in_sysroot = node.sysroot.join("run/keel/agent/state.json");
    fs::create_dir_all(in_sysroot.parent().unwrap()).unwrap();
    fs::copy(node.root.join("run/keel/agent/state.json"), &in_sysroot).unwrap();
    assert_eq!(node.status(Some(&d1))["agent"]["phase"], "finalized");
    let text = ok(Command::new(KEEL)
        .args(["status", "--assume-booted", &d1, "--sysroot"])
        .arg(&node.sysroot));
    assert!(text.contains("Update agent: finalized ("), "{text}");
    fs::remove_file(&in_sysroot).unwrap();
    drop(agent);

    // Shutdown finalizes (keel-finalize-staged.service); the node boots 2.
    ok(Command::new(KEEL)
        .args(["finalize", "--assume-booted", &d1, "--sysroot"])
        .arg(&node.sysroot));
    let d2 = node.status(Some(&d1))["deployments"][0]["deployment"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d2.starts_with(&c2), "{d2}");
    let _agent = node.agent(&d2, "agent-2.log");
    // Steady state released the slot: the other node gets it now.
    wait_for("the slot to be released", 30, || other.pre_reboot().ok());
    other.steady_state().unwrap();
    let st = node.wait_phase("polling", "dead-end");
    assert_eq!(st["booted_version"], "2");
    let motd = node.root.join("run/motd.d/85-keel-deadend.motd");
    assert_eq!(
        fs::read_to_string(&motd).unwrap(),
        "This release is a dead-end and will not further auto-update: https://example.org/keel/deadend-2\n"
    );
    // No longer a dead-end (the graph server reloads): the message goes away.
    fs::write(graph_dir.join("updates.json"), updates(false)).unwrap();
    node.wait_phase("polling", "up to date (2)");
    assert!(!motd.exists());
}

#[test]
fn shipped_defaults_without_an_update_server_leave_updates_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node {
        base: dir.path().to_path_buf(),
        sysroot: dir.path().join("sysroot"),
        root: dir.path().join("root"),
    };
    ok(Command::new(KEEL)
        .args(["init-sysroot", "--sysroot"])
        .arg(&node.sysroot));
    let defaults = node.root.join("usr/lib/keel/agent.d");
    fs::create_dir_all(&defaults).unwrap();
    fs::create_dir_all(node.root.join("etc")).unwrap();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../manifests/overlays/keel/usr/lib/keel/agent.d/10-default.toml"),
        defaults.join("10-default.toml"),
    )
    .unwrap();
    fs::write(
        node.root.join("etc/machine-id"),
        "0f0e0d0c0b0a09080706050403020100\n",
    )
    .unwrap();
    let _agent = node.agent("none.0", "agent.log");
    let st = node.wait_phase("disabled", "no update server configured");
    assert_eq!(st["strategy"], "immediate");

    // A typo in an admin drop-in stops the agent with the file and key named.
    fs::create_dir_all(node.root.join("etc/keel/agent.d")).unwrap();
    fs::write(
        node.root.join("etc/keel/agent.d/50-typo.toml"),
        "[updates]\nstrategy = \"immediate\"\nenabeld = false\n",
    )
    .unwrap();
    let out = Command::new(KEEL)
        .args(["update", "check", "--root"])
        .arg(&node.root)
        .arg("--sysroot")
        .arg(&node.sysroot)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("etc/keel/agent.d/50-typo.toml") && err.contains("enabeld"),
        "{err}"
    );
}

#[test]
fn sessions_postpone_a_bounded_time_windows_wait_and_update_now_skips_the_window() {
    if !keel_testsupport::require("agent_windows_sessions", &[]) {
        return;
    }
    let dir = keel_testsupport::scratch_dir("agent");
    let (node, d1, _c2, graph) = Graphed::setup(dir.path());
    let conf = node.root.join("etc/keel/agent.d/50-test.toml");
    fs::write(
        &conf,
        format!("[agent]\npoll_interval_secs = 1\nretry_interval_secs = 1\nmax_postpone_secs = 3\n[cincinnati]\nbase_url = \"http://127.0.0.1:{}\"\n", graph.port),
    )
    .unwrap();
    // Someone is logged in on a terminal: the reboot waits, but not longer than 3 s.
    let sessions = node.root.join("run/systemd/sessions");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(
        sessions.join("7"),
        "CLASS=user\nSTATE=active\nTYPE=tty\nTTY=pts/7\nUSER=core\n",
    )
    .unwrap();
    let agent = node.agent(&d1, "agent-sessions.log");
    let st = node.wait_phase("staged", "postponed for interactive session(s) core@pts/7");
    assert_eq!(st["target"]["version"], "2");
    let start = Instant::now();
    node.wait_phase("finalized", "rebooting");
    wait_for("the reboot hook", 10, || {
        node.base.join("rebooted").exists().then_some(())
    });
    assert!(start.elapsed() < Duration::from_secs(20));
    let metrics = ok(Command::new(KEEL)
        .args(["agent", "metrics", "--root"])
        .arg(&node.root));
    assert!(
        !metrics.contains("keel_agent_postponed_finalizations_total 0\n"),
        "{metrics}"
    );
    drop(agent);
    fs::remove_file(node.base.join("rebooted")).unwrap();

    // A weekly window three days from now: the agent re-locks the staged update and waits.
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let today: usize = ok(Command::new("date").args(["-u", "+%u"]))
        .trim()
        .parse()
        .unwrap();
    let later = day[(today - 1 + 3) % 7];
    fs::create_dir_all(node.root.join("run/keel/agent.d")).unwrap();
    fs::write(
        node.root.join("run/keel/agent.d/90-window.toml"),
        format!("[updates]\nstrategy = \"periodic\"\n[updates.periodic]\ntime_zone = \"Europe/Berlin\"\n[[updates.periodic.window]]\ndays = [\"{later}\"]\nstart_time = \"12:00\"\nlength_minutes = 30\n"),
    )
    .unwrap();
    let agent = node.agent(&d1, "agent-window.log");
    let st = node.wait_phase("staged", "waits for the maintenance window");
    assert!(st["next_window"].as_i64().is_some(), "{st}");
    assert_eq!(node.status(Some(&d1))["finalization_locked"], true);
    let check = ok(Command::new(KEEL)
        .args(["update", "check", "--assume-booted", &d1, "--root"])
        .arg(&node.root)
        .arg("--sysroot")
        .arg(&node.sysroot));
    assert!(
        check.contains("Already staged.") && check.contains("waits for the window opening"),
        "{check}"
    );
    drop(agent);

    // `keel update now` does not wait for the window.
    let hook = format!("touch {}", node.base.join("rebooted").display());
    let out = ok(Command::new(KEEL)
        .args([
            "update",
            "now",
            "--assume-booted",
            &d1,
            "--reboot-command",
            &hook,
            "--root",
        ])
        .arg(&node.root)
        .arg("--sysroot")
        .arg(&node.sysroot));
    assert!(out.contains("update 2 finalized; rebooting"), "{out}");
    assert!(node.base.join("rebooted").exists());
    assert_eq!(node.status(Some(&d1))["finalization_locked"], false);
}
