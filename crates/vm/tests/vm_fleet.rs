//! Fleet updates end to end (issue 9, item 3): two nodes booted from the image named by
//! `KEEL_VMTEST_IMAGE` run `keel-agent.service`. On the host (reached from the guests at
//! 10.0.2.2 through QEMU's user networking): v2 derived from the image's commit in a signed
//! archive repository served by `keel repo serve`, `keel graph serve` offering v1 -> v2, and
//! `keel fleetlock serve` with one slot on a real etcd.
//!
//! The host first holds the only slot, so both agents must stage v2 locked and wait. When the
//! host releases it, one node takes the slot, reboots into v2 and reports steady state, while
//! the other keeps waiting; then the second takes the slot and reboots into v2 too; at the end
//! the slot is free again.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use keel_http::{Client, HttpOptions};
use keel_vm::harness::{Config, Harness, TestRun, VmOptions};
use keel_vm::machine::Machine;
use keel_vm::node;
use keel_vm::release::{ReleaseRepo, Served, HOST_FROM_GUEST};
use keel_vm::ssh::free_port;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(900);
const REF: &str = "keel/stable/x86_64";
const V1: &str = "keel-fleet-v1";
const V2: &str = "keel-fleet-v2";
const HOST_ID: &str = "host-operator";

/// A host process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &Path, args: &[&str], log: &Path) -> Result<Proc> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {} {args:?}", program.display()))?;
    Ok(Proc(child))
}

fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) if start.elapsed() < timeout => {}
            Err(e) if start.elapsed() < timeout => note_retry(what, &e),
            Ok(None) => bail!("timed out after {} s waiting for {what}", timeout.as_secs()),
            Err(e) => return Err(e.context(format!("waiting for {what}"))),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn note_retry(what: &str, e: &anyhow::Error) {
    eprintln!("(still waiting for {what}: {e:#})");
}

/// etcd on loopback with its data on tmpfs when possible.
fn start_etcd(dir: &Path) -> Result<(Proc, String)> {
    let (client, peer) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let dir_s = dir.join("etcd").to_string_lossy().into_owned();
    let initial = format!("fleet={peer_url}");
    let p = spawn(
        Path::new("/usr/bin/etcd"),
        &[
            "--name",
            "fleet",
            "--data-dir",
            &dir_s,
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &initial,
        ],
        &dir.join("etcd.log"),
    )?;
    let http = Client::new(&HttpOptions::default())?;
    wait_until("etcd", Duration::from_secs(30), || {
        Ok(http
            .get(&format!("{url}/health"), &[])
            .ok()
            .filter(|b| String::from_utf8_lossy(b).contains("true")))
    })?;
    Ok((p, url))
}

/// A FleetLock call as the host operator; returns the HTTP status.
fn host_lock(lock_url: &str, api: &str) -> Result<u16> {
    let http = Client::new(&HttpOptions::default())?;
    let body = json!({"client_params": {"id": HOST_ID, "group": "default"}}).to_string();
    let headers = [
        ("fleet-lock-protocol".to_string(), "true".to_string()),
        ("Content-Type".to_string(), "application/json".to_string()),
    ];
    let (status, _) = http.post(&format!("{lock_url}/v1/{api}"), &headers, body.as_bytes())?;
    Ok(status)
}

fn data_url(text: &str) -> String {
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

fn file(path: &str, text: &str) -> Value {
    json!({"path": path, "overwrite": true, "mode": 0o644, "contents": {"source": data_url(text)}})
}

fn config(
    pubkey: &str,
    repo_url: &str,
    release_pub: &str,
    graph_port: u16,
    lock_port: u16,
) -> Config {
    let remote = format!(
        "[remote \"keel\"]\nurl={repo_url}\nsign-verify=true\nverification-ed25519-file=/etc/keel/keel.pub\n"
    );
    let agent = format!(
        "[agent]\npoll_interval_secs = 5\nretry_interval_secs = 5\n\
         [cincinnati]\nbase_url = \"http://{HOST_FROM_GUEST}:{graph_port}\"\n\
         [updates]\nstream = \"stable\"\nstrategy = \"fleet_lock\"\n\
         [updates.fleet_lock]\nbase_url = \"http://{HOST_FROM_GUEST}:{lock_port}\"\n"
    );
    Config::Ignition(json!({
        "ignition": {"version": "3.4.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [pubkey]}]},
        "storage": {"files": [
            file("/etc/ostree/remotes.d/keel.conf", &remote),
            file("/etc/keel/keel.pub", release_pub),
            file("/etc/keel/agent.d/50-fleet.toml", &agent),
        ]}
    }))
}

fn graph_files(dir: &Path, port: u16, v1: &str, v2: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let commits = |c: &str| json!([{"architecture": "x86_64", "checksum": c}]);
    let releases = json!({"releases": [
        {"version": V1, "commits": commits(v1)},
        {"version": V2, "commits": commits(v2)},
    ]});
    let updates =
        json!({"releases": [{"version": V2, "metadata": {"rollout": {"start_percentage": 1.0}}}]});
    std::fs::write(dir.join("releases.json"), releases.to_string())?;
    std::fs::write(dir.join("updates.json"), updates.to_string())?;
    let conf = dir.join("graph.toml");
    std::fs::write(
        &conf,
        format!("listen = \"127.0.0.1:{port}\"\n[streams.stable]\nrelease_index = \"releases.json\"\nupdates = \"updates.json\"\narchitectures = [\"x86_64\"]\n"),
    )?;
    Ok(conf)
}

/// `keel agent status --json`, one SSH attempt: every caller polls, and a node going down must
/// not hold up watching the other.
fn agent_state(m: &Machine) -> Result<Value> {
    let o = m.ssh()?.attempt("keel agent status --json")?;
    let out = String::from_utf8_lossy(&o.stdout);
    ensure!(
        o.status.success(),
        "keel agent status --json: {}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr).trim()
    );
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("keel agent status --json printed {out}"))?;
    keel_testsupport::schema::assert_valid("agent-status", &v);
    Ok(v["agent"].clone())
}

fn booted_commit(m: &Machine) -> Result<String> {
    Ok(node::booted_commit(&node::status(m)?))
}

fn waiting_for_slot(s: &Value) -> bool {
    s["phase"] == "staged"
        && s["summary"]
            .as_str()
            .is_some_and(|t| t.contains("waiting for a FleetLock slot"))
}

fn fleet_test(h: &Harness, repo: &Path, t: &mut TestRun) -> Result<()> {
    if !Path::new("/usr/bin/etcd").exists() {
        bail!("/usr/bin/etcd missing (apt-get install etcd-server)");
    }
    let work = h.workdir.join("fleet");
    std::fs::create_dir_all(&work)?;
    let release = ReleaseRepo::copy_of(&h.keel, repo, &work.join("repo"))?
        .with_new_key(&work.join("release"))?;
    let v1 = release.rev_parse(REF)?;
    let v2 = release.derive(&v1, REF, V2, &work, |tree| {
        let p = tree.join("usr/share/keel-test/fleet-v2");
        std::fs::create_dir_all(p.parent().expect("a parent"))?;
        Ok(std::fs::write(&p, "v2\n")?)
    })?;
    let served = Served::start(&h.keel, &release.path)?;
    let graph_port = free_port()?;
    let conf = graph_files(&work.join("graph"), graph_port, &v1, &v2)?;
    let _graph = spawn(
        &h.keel,
        &["graph", "serve", "--config", &conf.to_string_lossy()],
        &work.join("graph.log"),
    )?;
    let etcd_dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir())?;
    let (_etcd, etcd_url) = start_etcd(etcd_dir.path())?;
    let lock_port = free_port()?;
    let lock_url = format!("http://127.0.0.1:{lock_port}");
    let listen = format!("127.0.0.1:{lock_port}");
    let _fleetlock = spawn(
        &h.keel,
        &[
            "fleetlock",
            "serve",
            "--etcd",
            &etcd_url,
            "--listen",
            &listen,
            "--slots",
            "1",
        ],
        &work.join("fleetlock.log"),
    )?;
    let first_status = wait_until("the FleetLock server", Duration::from_secs(30), || {
        Ok(host_lock(&lock_url, "pre-reboot").ok())
    })?;
    ensure!(
        first_status == 200,
        "the host could not take the slot: HTTP {first_status}"
    );

    let public = std::fs::read_to_string(release.public_key().expect("a key"))?;
    let cfg = config(
        &h.key.public,
        &served.guest_url(),
        &public,
        graph_port,
        lock_port,
    );
    let opts = VmOptions {
        memory_mb: 1536,
        ..VmOptions::default()
    };
    let mut nodes = Vec::new();
    for name in ["fleet-a", "fleet-b"] {
        nodes.push((name, h.vm(name, &cfg, &opts)?.boot()?));
    }
    for (name, m) in &mut nodes {
        let (ready, state) = m.wait_ready(READY_TIMEOUT)?;
        t.timing(&format!("{name} first boot ready ({state})"), ready);
    }

    t.check(
        "both nodes stage v2 locked and wait for the slot the host holds",
        || {
            for (name, m) in &nodes {
                let s = wait_until(
                    &format!("{name} waiting for the slot"),
                    Duration::from_secs(600),
                    || Ok(Some(agent_state(m)?).filter(waiting_for_slot)),
                )?;
                ensure!(s["target"]["commit"] == v2.as_str(), "{name}: {s}");
                let st = m.ssh()?.run("sudo keel status --json")?;
                let st: Value = serde_json::from_str(&st)?;
                ensure!(
                    st["staged"]["commit"] == v2.as_str() && st["finalization_locked"] == true,
                    "{name}: {st}"
                );
            }
            Ok(())
        },
    );

    let marks: Vec<u64> = nodes.iter().map(|(_, m)| m.console.mark()).collect();
    ensure!(
        host_lock(&lock_url, "steady-state")? == 200,
        "the host could not release the slot"
    );
    let start = Instant::now();
    // The node that got the slot finalizes and reboots; the other waits.
    let mut last = vec![String::new(); nodes.len()];
    let first = wait_until(
        "one node to take the slot and reboot",
        Duration::from_secs(300),
        || {
            // A reboot shows as the next kernel banner on the console.
            if let Some(i) = (0..nodes.len()).find(|&i| {
                nodes[i]
                    .1
                    .console
                    .since(marks[i])
                    .contains(node::BOOT_BANNER)
            }) {
                return Ok(Some(i));
            }
            for (i, (_, m)) in nodes.iter().enumerate() {
                match agent_state(m) {
                    Ok(s) if s["phase"] == "finalized" => return Ok(Some(i)),
                    Ok(s) => last[i] = s.to_string(),
                    Err(e) => last[i] = format!("{e:#}"),
                }
            }
            Ok(None)
        },
    )
    .map_err(|e| {
        let log = std::fs::read_to_string(work.join("fleetlock.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        e.context(format!(
            "the agents' last states: {}; the FleetLock server's log ends with:\n{}",
            last.join(" | "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    })?;
    let second = 1 - first;
    t.check(
        "the other node keeps waiting while the slot is held",
        || {
            let s = agent_state(&nodes[second].1)?;
            ensure!(waiting_for_slot(&s), "{}: {s}", nodes[second].0);
            Ok(())
        },
    );
    node::wait_rebooted(&mut nodes[first].1, marks[first], READY_TIMEOUT)?;
    t.timing(
        &format!("slot released to {} up on v2", nodes[first].0),
        start.elapsed(),
    );
    t.check("the first node runs v2 and reports steady state", || {
        let m = &nodes[first].1;
        ensure!(booted_commit(m)? == v2, "booted {}", booted_commit(m)?);
        wait_until(
            "the first node's agent to poll",
            Duration::from_secs(300),
            || {
                Ok(Some(agent_state(m)?)
                    .filter(|s| s["phase"] == "polling" && s["target"].is_null()))
            },
        )?;
        Ok(())
    });
    let d = node::wait_rebooted(&mut nodes[second].1, marks[second], READY_TIMEOUT)?;
    t.timing(
        &format!("{} reboot into v2 after the first", nodes[second].0),
        d,
    );
    t.timing(
        "slot released to both nodes rebooted into v2",
        start.elapsed(),
    );
    t.check("the second node runs v2 too", || {
        let m = &nodes[second].1;
        ensure!(booted_commit(m)? == v2, "booted {}", booted_commit(m)?);
        Ok(())
    });
    t.check(
        "the slot is free again once both reported steady state",
        || {
            let status = wait_until("the slot to be free", Duration::from_secs(300), || {
                let s = host_lock(&lock_url, "pre-reboot")?;
                Ok((s == 200).then_some(s))
            })?;
            ensure!(status == 200);
            Ok(())
        },
    );
    for (_, m) in &mut nodes {
        m.shutdown(Duration::from_secs(120))?;
    }
    Ok(())
}

#[test]
fn vm_fleet() {
    keel_vm::testmain::run("fleet", fleet_test);
}
