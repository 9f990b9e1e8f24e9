//! The `--json` contract: with `--json` a command prints exactly one JSON document on stdout
//! (its result, `schema_version` first); on stderr, progress events are JSON lines (objects
//! with an `event`), and log messages and the final error stay text lines, which never start
//! with `{`. This test knows every command that takes `--json` and runs the cheap ones.

// The tests run keel and assert on its raw exit status and output.
#![allow(clippy::disallowed_methods)]

#[path = "common/dir_sysroot.rs"]
mod dir_sysroot;

use clap::CommandFactory;
use dir_sysroot::{ok, DirSysroot, KEEL};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

/// Every command with a `--json` option. A new one joins this list, and the contract:
/// one result document on stdout (with a schema in `schemas/`), progress as JSON lines.
const JSON_COMMANDS: [&str; 9] = [
    "keel agent status",
    "keel compose",
    "keel deploy",
    "keel health check",
    "keel ignition validate",
    "keel image build",
    "keel status",
    "keel update check",
    "keel upgrade",
];

#[test]
fn the_commands_with_json_are_known() {
    fn walk(cmd: &clap::Command, path: &str, out: &mut BTreeSet<String>) {
        if cmd.get_arguments().any(|a| a.get_long() == Some("json")) {
            out.insert(path.to_string());
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut root = keel::Cli::command();
    root.build();
    let mut found = BTreeSet::new();
    walk(&root, "keel", &mut found);
    let known: BTreeSet<String> = JSON_COMMANDS.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, known);
}

/// Run keel; check the contract; the exit code and the document.
fn one_document(cmd: &mut Command) -> (Option<i32>, Value) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{cmd:?}: stdout is not JSON ({e}):\n{stdout}"));
    assert_eq!(docs.len(), 1, "{cmd:?}: one document on stdout:\n{stdout}");
    let first_key = stdout.trim_start().trim_start_matches('{').trim_start();
    assert!(
        first_key.starts_with("\"schema_version\""),
        "{cmd:?}: schema_version comes first:\n{stdout}"
    );
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{cmd:?}: stderr line is not JSON ({e}): {line}"));
        assert!(event["event"].is_string(), "{cmd:?}: {line}");
    }
    for line in stderr.lines().filter(|l| !l.starts_with('{')) {
        let log = ["error: ", "WARN ", "INFO ", "DEBUG ", "TRACE "];
        assert!(
            log.iter().any(|l| line.trim_start().starts_with(l)) && !line.contains('\x1b'),
            "{cmd:?}: stderr line is neither an event nor a plain log line: {line:?}"
        );
    }
    (
        out.status.code(),
        docs.into_iter().next().unwrap_or_default(),
    )
}

fn keel(args: &[&str]) -> Command {
    let mut c = Command::new(KEEL);
    c.args(args);
    c
}

#[test]
fn cheap_json_commands_print_one_document() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let (code, v) = one_document(&mut keel(&["agent", "status", "--json", "--root", r]));
    assert_eq!((code, &v["agent"]), (Some(0), &Value::Null));
    let (code, v) = one_document(&mut keel(&[
        "health",
        "check",
        "--json",
        "--no-builtin",
        "--root",
        r,
    ]));
    assert_eq!((code, &v["ok"]), (Some(0), &Value::Bool(true)));
    let validate = |config: &str| {
        let file = root.path().join("config.ign");
        std::fs::write(&file, config).unwrap();
        one_document(keel(&["ignition", "validate", "--json"]).arg(&file))
    };
    let (code, v) = validate(r#"{"ignition":{"version":"3.4.0"}}"#);
    assert_eq!((code, &v["valid"]), (Some(0), &Value::Bool(true)));
    assert_eq!(v["reports"], serde_json::json!([]));
    let (code, v) = validate("{");
    assert_eq!((code, &v["valid"]), (Some(1), &Value::Bool(false)));
    assert_eq!(v["reports"][0]["severity"], "error");

    let sysroot = root.path().join("sysroot");
    ok(&mut keel(&[
        "init-sysroot",
        "--sysroot",
        sysroot.to_str().unwrap(),
    ]));
    for args in [&["status", "--json"][..], &["status", "-b", "--json"]] {
        let (code, v) = one_document(keel(args).arg("--sysroot").arg(&sysroot));
        assert_eq!((code, &v["deployments"]), (Some(0), &serde_json::json!([])));
    }
}

#[test]
fn deploy_and_upgrade_json_print_one_document_and_progress_lines() {
    let Some(f) = DirSysroot::new("json_contract_deploy") else {
        return;
    };
    f.commit("1", |_| {});
    let (code, v) = one_document(&mut f.keel(&["deploy", "keel/test", "--json"]));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["deployment"], f.names()[0].as_str());
    f.commit("2", |_| {});
    let (code, v) = one_document(&mut f.keel(&["upgrade", "--json"]));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(f.status(None)["deployments"][0]["version"], "2");
}
