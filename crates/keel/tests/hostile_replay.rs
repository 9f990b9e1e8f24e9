//! A mirror replaying or freezing validly signed metadata, against the node commands and the
//! update agent: a directory sysroot whose origin `keel:keel/test` is an archive repository
//! served by a real HTTP server on 127.0.0.1, with commit and summary signatures checked.
//!
//! - `keel upgrade` and `upgrade --check` refuse an older signed commit replayed through an
//!   old signed summary, naming both commits; the remote ref does not move and nothing is
//!   staged. `--allow-downgrade` stages it. `keel deploy VERSION` (the user asking) still works.
//! - A summary older than the limit is reported by `upgrade --check` (text and JSON),
//!   `keel status` (text and JSON) and the agent's state; one without a date as of unknown age.
//! - The agent, handed an older signed commit by an (unsigned, here hostile) update graph,
//!   refuses to stage it.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_agent::agent::{Agent, Mode, OriginPull, Paths, SystemClock};
use keel_agent::state::Phase;
use keel_remote::{keys, summary};
use keel_store::Repo;
use keel_testsupport::http::{Action, FaultServer};
use keel_testsupport::tools::{CommitOpts, Tool};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
mod common;

use common::{text, NodeCli, KEEL, REF};
use std::process::Command;

const DAY: u64 = 86_400;

fn now() -> u64 {
    keel_remote::freshness::now()
}

/// A publisher's signed archive repository and a node sysroot following it.
struct Node {
    _dir: tempfile::TempDir,
    base: PathBuf,
    publish: PathBuf,
    key: PathBuf,
    cli: NodeCli,
}

impl Node {
    fn new() -> Node {
        assert!(
            keel_testsupport::is_root(),
            "these tests deploy into a sysroot and need root"
        );
        let dir = keel_testsupport::scratch_dir("hostile-replay");
        let base = dir.path().to_path_buf();
        let publish = base.join("publish");
        Tool::Keel(KEEL.into()).init(&publish, "archive");
        let key = base.join("release");
        let n = Node {
            _dir: dir,
            publish,
            key: key.clone(),
            cli: NodeCli {
                sysroot: base.join("sysroot"),
            },
            base,
        };
        n.run_ok(Command::new(KEEL).args(["repo", "keygen"]).arg(&key));
        n.run_ok(
            Command::new(KEEL)
                .args(["init-sysroot", "--sysroot"])
                .arg(&n.sysroot),
        );
        n
    }

    fn run_ok(&self, c: &mut Command) -> String {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commit version `v` at `timestamp`, signed, and re-sign the summary (dated now).
    fn publish(&self, v: &str, timestamp: u64) -> String {
        let t = self.base.join(format!("tree-{v}"));
        let k = t.join("usr/lib/modules/6.1.0-test");
        fs::create_dir_all(&k).unwrap();
        fs::create_dir_all(t.join("usr/etc")).unwrap();
        fs::write(k.join("vmlinuz"), format!("kernel {v}")).unwrap();
        fs::write(k.join("initramfs.img"), "initramfs").unwrap();
        fs::write(t.join("usr/etc/os.conf"), format!("version={v}\n")).unwrap();
        let opts = CommitOpts {
            metadata: vec![("version", v)],
            timestamp: Some(timestamp),
            ..CommitOpts::default()
        };
        let keel = Tool::Keel(KEEL.into());
        let c = keel.commit(&self.publish, REF, &t, &opts);
        let key = self.key.to_str().unwrap();
        keel.ok(&self.publish, "sign", &["--key", key, &c]);
        keel.ok(&self.publish, "summary", &["--update", "--sign-key", key]);
        c
    }

    /// Replace the served summary by one of the current refs dated `last_modified` (`None`:
    /// undated), validly signed.
    fn sign_summary_dated(&self, last_modified: Option<u64>) {
        let repo = Repo::open(&self.publish).unwrap();
        let mut s = summary::build(&repo, last_modified.unwrap_or(0)).unwrap();
        if last_modified.is_none() {
            s.meta.retain(|(k, _)| k != summary::LAST_MODIFIED_KEY);
        }
        let bytes = s.to_bytes();
        let key = keys::load_secret_file(&self.key).unwrap();
        let sig = summary::sign_summary(&bytes, &key);
        fs::write(self.publish.join("summary"), bytes).unwrap();
        fs::write(self.publish.join("summary.sig"), sig).unwrap();
    }

    fn saved_summary(&self) -> (Vec<u8>, Vec<u8>) {
        (
            fs::read(self.publish.join("summary")).unwrap(),
            fs::read(self.publish.join("summary.sig")).unwrap(),
        )
    }

    fn replay(&self, (s, sig): &(Vec<u8>, Vec<u8>)) {
        fs::write(self.publish.join("summary"), s).unwrap();
        fs::write(self.publish.join("summary.sig"), sig).unwrap();
    }

    /// Remote `keel` with commit and summary signatures checked.
    fn add_remote(&self, url: &str, extra: &[&str]) {
        let spec = format!("--sign-verify=ed25519={}.pub", self.key.display());
        let mut args = vec!["add", spec.as_str()];
        args.extend_from_slice(extra);
        args.extend(["keel", url]);
        Tool::Keel(KEEL.into()).ok(&self.repo(), "remote", &args);
    }

    /// First deployment from the remote; returns its name.
    fn first_deploy(&self) -> String {
        self.node_ok(&["deploy", "keel:keel/test"]);
        self.deployments()[0].clone()
    }
}

fn serve(dir: &Path) -> FaultServer {
    FaultServer::start(dir, None, |_, _, _| Action::Serve)
}

#[test]
fn upgrade_refuses_a_replayed_older_signed_commit_unless_allowed() {
    let n = Node::new();
    let t = now() - 20 * DAY;
    n.publish("0", t - DAY);
    let c1 = n.publish("1", t);
    let old = n.saved_summary();
    let c2 = n.publish("2", t + DAY);
    let server = serve(&n.publish);
    n.add_remote(&server.url, &[]);
    let d2 = n.first_deploy();
    assert!(d2.starts_with(&c2), "{d2}");
    let booted = ["--assume-booted", d2.as_str()];

    n.replay(&old);
    let before = n.snapshot();
    for args in [&["upgrade"][..], &["upgrade", "--check"][..]] {
        let out = n.node(&[args, &booted[..]].concat());
        let msg = text(&out);
        assert!(!out.status.success(), "{args:?} accepted the replay: {msg}");
        // c1's parent is not on the node (depth 0): its older timestamp decides.
        for want in [
            c1.as_str(),
            c2.as_str(),
            "timestamp",
            "older",
            "--allow-downgrade",
        ] {
            assert!(msg.contains(want), "{args:?}: {want:?} not in: {msg}");
        }
        assert_eq!(n.snapshot(), before, "{args:?} changed the sysroot");
    }

    // Re-following the same REMOTE:REF is not asking for an older commit either.
    let out = n.node(&["deploy", "keel:keel/test", "--assume-booted", &d2]);
    let msg = text(&out);
    assert!(
        !out.status.success() && msg.contains(&c1) && msg.contains(&c2),
        "{msg}"
    );
    assert_eq!(
        n.snapshot(),
        before,
        "deploy REMOTE:REF changed the sysroot"
    );

    let check = n.node_json(&[
        "upgrade",
        "--check",
        "--allow-downgrade",
        "--json",
        "--assume-booted",
        &d2,
    ]);
    assert_eq!(check["result"], "available", "{check}");
    assert_eq!(check["commit"], c1.as_str());
    let up = n.node_json(&[
        "upgrade",
        "--allow-downgrade",
        "--json",
        "--assume-booted",
        &d2,
    ]);
    assert_eq!(up["result"], "staged", "{up}");
    assert_eq!(up["commit"], c1.as_str());
    assert_eq!(n.remote_ref().as_deref(), Some(c1.as_str()));
}

#[test]
fn an_explicit_deploy_of_an_older_version_is_the_user_asking() {
    let n = Node::new();
    let t = now() - 20 * DAY;
    let c1 = n.publish("1", t);
    let c2 = n.publish("2", t + DAY);
    let server = serve(&n.publish);
    n.add_remote(&server.url, &[]);
    let d2 = n.first_deploy();
    let dep = n.node_json(&["deploy", "1", "--json", "--assume-booted", &d2]);
    assert_eq!(dep["commit"], c1.as_str(), "{dep}");
    assert_eq!(dep["result"], "staged");
    assert_eq!(
        n.remote_ref().as_deref(),
        Some(c2.as_str()),
        "deploying a version moves no ref"
    );
}

#[test]
fn a_frozen_summary_is_reported_by_upgrade_check_and_status() {
    let n = Node::new();
    let c1 = n.publish("1", now() - 10 * DAY);
    let server = serve(&n.publish);
    n.add_remote(&server.url, &[]);
    let d1 = n.first_deploy();
    assert!(d1.starts_with(&c1));
    let booted = ["--assume-booted", d1.as_str()];

    let fresh = n.node_json(&[&["upgrade", "--check", "--json"][..], &booted[..]].concat());
    assert_eq!(fresh["summary"]["state"], "fresh", "{fresh}");

    n.sign_summary_dated(Some(now() - 9 * DAY));
    let check = n.node_json(&[&["upgrade", "--check", "--json"][..], &booted[..]].concat());
    assert_eq!(check["result"], "up-to-date", "{check}");
    assert_eq!(check["summary"]["state"], "stale", "{check}");
    assert_eq!(check["summary"]["verified"], true, "{check}");
    let human = n.node_ok(&[&["upgrade", "--check"][..], &booted[..]].concat());
    assert!(
        human.contains("Warning:") && human.contains("9 days ago") && human.contains("frozen"),
        "{human}"
    );
    let st = n.node_json(&[&["status", "--json"][..], &booted[..]].concat());
    let rs = &st["remote_summaries"][0];
    assert_eq!(rs["remote"], "keel", "{st}");
    assert_eq!(rs["state"], "stale", "{st}");
    let human = n.node_ok(&[&["status"][..], &booted[..]].concat());
    assert!(
        human.contains("Remote summary: WARNING:") && human.contains("9 days ago"),
        "{human}"
    );

    // A per-remote limit: 30 days makes the same summary fresh.
    Tool::Keel(KEEL.into()).ok(&n.repo(), "remote", &["delete", "keel"]);
    n.add_remote(&server.url, &["--summary-max-age-secs", "2592000"]);
    let check = n.node_json(&[&["upgrade", "--check", "--json"][..], &booted[..]].concat());
    assert_eq!(check["summary"]["state"], "fresh", "{check}");

    n.sign_summary_dated(None);
    let check = n.node_json(&[&["upgrade", "--check", "--json"][..], &booted[..]].concat());
    assert_eq!(check["summary"]["state"], "unknown-age", "{check}");
    let st = n.node_json(&[&["status", "--json"][..], &booted[..]].concat());
    assert_eq!(st["remote_summaries"][0]["state"], "unknown-age", "{st}");
}

/// A Cincinnati graph with the booted release (2) and a "newer" one (by age index) whose
/// payload is `target`, an older signed release (1).
fn graph(booted: &str, target: &str) -> Vec<u8> {
    let node = |version: &str, payload: &str, age: u32| {
        serde_json::json!({
            "version": version,
            "payload": payload,
            "metadata": {
                "org.fedoraproject.coreos.releases.age_index": age.to_string(),
                "org.fedoraproject.coreos.scheme": "checksum",
            }
        })
    };
    let g = serde_json::json!({
        "nodes": [node("2", booted, 1), node("1", target, 2)],
        "edges": [[0, 1]],
    });
    serde_json::to_vec(&g).unwrap()
}

fn agent(n: &Node, root: &Path, booted: &str, graph_url: &str) -> Agent {
    fs::create_dir_all(root.join("etc/keel/agent.d")).unwrap();
    fs::write(
        root.join("etc/machine-id"),
        "0f0e0d0c0b0a09080706050403020100\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/keel/agent.d/50-test.toml"),
        format!("[cincinnati]\nbase_url = \"{graph_url}\"\n[updates]\nstream = \"stable\"\n"),
    )
    .unwrap();
    let mut a = Agent::new(
        Paths {
            root: root.to_path_buf(),
            sysroot: n.sysroot.clone(),
            stateroot: "keel".into(),
            booted: Some(booted.to_string()),
            reboot_command: format!("touch {}", root.join("rebooted").display()),
        },
        Mode::Service,
        Box::new(OriginPull),
        Box::new(SystemClock),
    )
    .unwrap();
    a.state.phase = Phase::Polling;
    a
}

#[test]
fn the_agent_refuses_an_older_target_and_reports_a_frozen_summary() {
    let n = Node::new();
    let t = now() - 20 * DAY;
    let c1 = n.publish("1", t);
    let c2 = n.publish("2", t + DAY);
    n.sign_summary_dated(Some(now() - 8 * DAY));
    let body = graph(&c2, &c1);
    let server = FaultServer::start(&n.publish, None, move |path, _, _| {
        if path.starts_with("v1/graph") {
            Action::Body(body.clone())
        } else {
            Action::Serve
        }
    });
    n.add_remote(&server.url, &[]);
    let d2 = n.first_deploy();
    let root = n.base.join("root");
    let mut a = agent(&n, &root, &d2, server.url.trim_end_matches('/'));

    a.tick();
    let st = keel_agent::state::load(&root)
        .unwrap()
        .expect("state published");
    let err = st.last_error.clone().unwrap_or_default();
    // c1 is a root commit: its whole history is present and does not contain c2.
    assert!(
        err.contains(&c1) && err.contains(&c2) && err.contains("not a descendant"),
        "the agent staged (or failed otherwise): {err}"
    );
    assert!(!n.staged(), "an older release was staged");
    assert_eq!(n.deployments(), vec![d2.clone()]);
    let rs = st.remote_summary.expect("the agent judged the summary");
    assert_eq!(
        rs.state,
        keel_remote::freshness::State::Stale,
        "{}",
        rs.message
    );

    let status = n.node_json(&["status", "--json", "--assume-booted", &d2]);
    assert_eq!(status["remote_summaries"][0]["state"], "stale", "{status}");
    let out = Command::new(KEEL)
        .args(["agent", "status", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let js: Value = serde_json::from_slice(&out.stdout).unwrap();
    keel_testsupport::schema::assert_valid("agent-status", &js);
    assert_eq!(js["agent"]["remote_summary"]["state"], "stale", "{js}");
    let human = Command::new(KEEL)
        .args(["agent", "status", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(text(&human).contains("8 days ago"), "{}", text(&human));
}

#[test]
fn repo_pull_refuses_a_replay_and_warns_about_a_frozen_summary() {
    let n = Node::new();
    let t = now() - 20 * DAY;
    let c1 = n.publish("1", t);
    n.sign_summary_dated(Some(t));
    let old = n.saved_summary();
    let c2 = n.publish("2", t + DAY);
    let server = serve(&n.publish);
    let client = n.base.join("client");
    let keel = Tool::Keel(KEEL.into());
    keel.init(&client, "archive");
    let spec = format!("--sign-verify=ed25519={}.pub", n.key.display());
    keel.ok(&client, "remote", &["add", &spec, "keel", &server.url]);
    keel.ok(&client, "pull", &["keel", REF]);
    let head = || keel.rev_parse(&client, &format!("keel:{REF}"));
    assert_eq!(head(), c2);

    n.replay(&old);
    let out = keel.output(&client, "pull", &["keel", REF]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    for want in [
        c1.as_str(),
        c2.as_str(),
        "no ref was changed",
        "--allow-downgrade",
    ] {
        assert!(msg.contains(want), "{want:?} not in: {msg}");
    }
    assert_eq!(head(), c2, "the ref moved back");
    // The replayed summary is 20 days old: the pull that accepts it says so.
    let out = keel.output(&client, "pull", &["--allow-downgrade", "keel", REF]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("warning:") && msg.contains("20 days ago"),
        "{msg}"
    );
    assert_eq!(head(), c1);
}

impl std::ops::Deref for Node {
    type Target = NodeCli;
    fn deref(&self) -> &NodeCli {
        &self.cli
    }
}
