//! Stage behaviour beyond single writes: re-runs are idempotent (where Ignition 2.14 is not),
//! failures name the config path, the operation and the cause and leave no half-written file,
//! and the kargs stage calls its helper only when the command line must change.

mod common;

use common::*;
use keel_provision::cmdline::KernelCmdline;
use keel_provision::stages::{self, Stage};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn write_config(dir: &Path, v: serde_json::Value) -> std::path::PathBuf {
    let p = dir.join("user.ign");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    p
}

fn everything() -> serde_json::Value {
    serde_json::json!({
        "ignition": {"version": "3.3.0"},
        "passwd": {
            "groups": [{"name": "devs", "gid": 3100}],
            "users": [{"name": "core", "groups": ["devs"], "sshAuthorizedKeys": ["ssh-ed25519 AAAA core"]}]
        },
        "storage": {
            "files": [
                {"path": "/etc/motd", "contents": {"source": "data:,hello%0A"}, "append": [{"source": "data:,appended%0A"}]},
                {"path": "/etc/owned", "contents": {"source": "data:,x"}, "user": {"name": "core"}, "group": {"name": "devs"}, "mode": 416},
                {"path": "/etc/replaced", "overwrite": true, "contents": {"source": "data:,again"}}
            ],
            "directories": [{"path": "/var/lib/app", "mode": 448}],
            "links": [{"path": "/etc/sym", "target": "/etc/motd"}, {"path": "/etc/hard", "target": "/etc/owned", "hard": true}]
        },
        "systemd": {"units": [
            {"name": "app.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"},
            {"name": "gone.service", "mask": true}
        ]}
    })
}

#[test]
fn rerun_is_idempotent() {
    if skip("rerun_is_idempotent", false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), everything());
    let root = seeded_root(&tmp.path().join("root"));
    let env = stage_env(&root, &tmp.path().join("work"), &cfg);
    let not_result = |p: &str| p == "/etc/.ignition-result.json";
    run_keel(&env).unwrap();
    let first = snapshot(&root, &not_result);
    run_keel(&env).unwrap();
    let second = snapshot(&root, &not_result);
    assert_eq!(diff(&second, &first), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "hello\nappended\n"
    );
    assert_eq!(
        std::fs::metadata(root.join("etc/.ignition-result.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&env.cache).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Ignition 2.14 cannot do the same (groupadd fails on the existing group).
    if skip_reason(true).is_none() {
        let oracle_root = seeded_root(&tmp.path().join("oracle"));
        run_oracle(&cfg, &oracle_root).unwrap();
        let err = run_oracle(&cfg, &oracle_root).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
    }
}

fn temp_leftovers(root: &Path) -> Vec<String> {
    snapshot(root, &|_| false)
        .into_keys()
        .filter(|p| p.contains(".tmp-"))
        .collect()
}

#[test]
fn failure_names_path_operation_and_cause_and_leaves_no_partial_file() {
    if skip(
        "failure_names_path_operation_and_cause_and_leaves_no_partial_file",
        false,
    ) {
        return;
    }
    let big = "y".repeat(256 << 10);
    let mut files: Vec<serde_json::Value> = (0..8).map(|i| serde_json::json!({"path": format!("/etc/f{i}"), "contents": {"source": format!("data:,{big}")}})).collect();
    files[3] = serde_json::json!({"path": "/etc/f3", "contents": {"source": "data:,tampered", "verification": {"hash": format!("sha256-{}", "0".repeat(64))}}});
    let cases = [
        (
            serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"files": files}}),
            "$.storage.files.3: writing file \"/etc/f3\"",
            "hash verification failed",
        ),
        (
            serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/etc/passwd/under-a-file", "contents": {"source": "data:,x"}}]}}),
            "$.storage.files.0: writing file \"/etc/passwd/under-a-file\"",
            "creating parent directories",
        ),
        (
            serde_json::json!({"ignition": {"version": "3.3.0"}, "systemd": {"units": [{"name": "a.service", "enabled": true}]}}),
            "$.systemd.units.0: enabling \"a.service\"",
            "not found",
        ),
    ];
    for (cfg, want_where, want_why) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let cfg_path = write_config(tmp.path(), cfg);
        let root = seeded_root(&tmp.path().join("root"));
        let env = stage_env(&root, &tmp.path().join("work"), &cfg_path);
        let err = format!("{:#}", run_keel(&env).unwrap_err());
        assert!(err.contains(want_where) && err.contains(want_why), "{err}");
        assert_eq!(temp_leftovers(&root), Vec::<String>::new());
        assert!(
            !root.join("etc/.ignition-result.json").exists(),
            "no result file after a failure"
        );
        for i in [0, 1, 2, 4, 5, 6, 7] {
            if let Ok(data) = std::fs::read(root.join(format!("etc/f{i}"))) {
                assert_eq!(data.len(), big.len(), "/etc/f{i} is half-written");
            }
        }
    }
}

#[test]
fn kargs_helper_runs_only_when_arguments_must_change() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("helper.log");
    let helper = tmp.path().join("helper.sh");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = write_config(
        tmp.path(),
        serde_json::json!({"ignition": {"version": "3.3.0"}, "kernelArguments": {"shouldExist": ["console=ttyS0"], "shouldNotExist": ["quiet"]}}),
    );
    let mut env = stage_env(tmp.path(), &tmp.path().join("work"), &cfg);
    env.kargs_helper = helper.display().to_string();
    stages::run(Stage::FetchOffline, &env).unwrap();
    for (cmdline, calls) in [
        ("root=/dev/vda console=ttyS0", 0),
        ("root=/dev/vda console=ttyS0 quiet", 1),
        ("root=/dev/vda", 2),
    ] {
        env.sources.cmdline = KernelCmdline::parse(cmdline);
        stages::run(Stage::Kargs, &env).unwrap();
        let n = std::fs::read_to_string(&log)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        assert_eq!(n, calls, "{cmdline}");
    }
    assert_eq!(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
        "--should-exist console=ttyS0 --should-not-exist quiet"
    );
}

#[test]
fn stages_after_fetch_need_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let env = stage_env(
        tmp.path(),
        &tmp.path().join("work"),
        &tmp.path().join("none.ign"),
    );
    let err = format!("{:#}", stages::run(Stage::Files, &env).unwrap_err());
    assert!(
        err.contains("no config cache") && err.contains("fetch-offline"),
        "{err}"
    );
    let err = format!("{:#}", stages::run(Stage::FetchOffline, &env).unwrap_err());
    assert!(
        err.contains("none.ign") && err.contains("--config-file"),
        "{err}"
    );
}
