//! The JSON Schema files in `schemas/` (one per `--json` output, see `keel_proto::output`) are
//! generated from the output types: this test regenerates them and fails when a committed file
//! differs, so a changed output type cannot ship with a stale schema. Other tests validate real
//! output against the files (`keel_testsupport::schema`).
//!
//! After changing an output type: `KEEL_UPDATE_SCHEMAS=1 cargo test -p keel --test json_schemas`,
//! then review and commit `schemas/`.

// The tests run the built binary and assert its raw exit status.
#![allow(clippy::disallowed_methods)]

use keel_proto::output::{Versioned, SCHEMAS, SCHEMA_VERSION};
use schemars::{generate::SchemaSettings, JsonSchema};
use serde_json::{json, Value};

fn schema_of<T: JsonSchema>() -> Value {
    let s = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Versioned<T>>();
    serde_json::to_value(s).unwrap()
}

fn generated(name: &str) -> Value {
    match name {
        "status" => schema_of::<keel_deploy::Status>(),
        "upgrade" => schema_of::<keel_update::flows::Outcome>(),
        "compose" => schema_of::<keel_compose::cli::ComposeResult>(),
        "update-check" => schema_of::<keel_agent::cli::CheckReport>(),
        "ignition-validate" => schema_of::<keel_ignition_config::cli::ValidateResult>(),
        "agent-status" => schema_of::<keel_agent::cli::StatusReport>(),
        "health-check" => schema_of::<keel_proto::health::Report>(),
        "image-build" => schema_of::<keel_image::cli::BuildResult>(),
        other => panic!("keel_proto::output::SCHEMAS names {other}, which this test does not know"),
    }
}

/// Objects admit no member the schema does not describe (so an undocumented member fails the
/// validation of real output), recursively.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(close_objects);
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn published(name: &str, what: &str) -> String {
    let mut v = generated(name);
    close_objects(&mut v);
    let m = v.as_object_mut().unwrap();
    m.insert(
        "$id".into(),
        json!(format!("https://keel.dev/schemas/{name}.json")),
    );
    m.insert(
        "title".into(),
        json!(format!("{what}, schema version {SCHEMA_VERSION}")),
    );
    m.insert(
        "description".into(),
        json!(format!(
            "The machine-readable output of {what}. Members may be added without a new \
             schema_version; a removed, renamed or redefined member raises it."
        )),
    );
    m["properties"]["schema_version"] = json!({
        "description": "The output's schema version.",
        "const": SCHEMA_VERSION
    });
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

#[test]
fn schema_files_match_the_output_types() {
    let dir = keel_testsupport::schema::dir();
    let update = std::env::var_os("KEEL_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, what) in SCHEMAS {
        let path = dir.join(format!("{name}.json"));
        let want = published(name, what);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the output types: {stale:?}; run \
         `KEEL_UPDATE_SCHEMAS=1 cargo test -p keel --test json_schemas` and review the diff"
    );
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in &files {
        let name = f.trim_end_matches(".json");
        assert!(
            SCHEMAS.iter().any(|(n, _)| *n == name),
            "schemas/{f} describes no output listed in keel_proto::output::SCHEMAS"
        );
    }
}

const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn keel_json(args: &[&str]) -> (Option<i32>, Value) {
    let out = std::process::Command::new(KEEL)
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "keel {args:?} printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

#[test]
fn health_check_output_matches_its_schema() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("usr/lib/keel/health.d");
    std::fs::create_dir_all(&d).unwrap();
    for (name, body) in [("10-ok", "echo fine"), ("20-bad", "echo broken; exit 1")] {
        let p = d.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let r = root.path().to_str().unwrap();
    let (code, v) = keel_json(&["health", "check", "--no-builtin", "--json", "--root", r]);
    keel_testsupport::schema::assert_valid("health-check", &v);
    assert_eq!(code, Some(1), "a failed check fails the command: {v:#}");
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"][0]["name"], "10-ok");
    assert_eq!(
        v["checks"][1]["detail"]
            .as_str()
            .map(|s| s.contains("exit")),
        Some(true)
    );
}

#[test]
fn agent_status_output_matches_its_schema_with_and_without_an_agent() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let (code, v) = keel_json(&["agent", "status", "--json", "--root", r]);
    assert_eq!(code, Some(0));
    keel_testsupport::schema::assert_valid("agent-status", &v);
    assert_eq!(v, json!({"schema_version": SCHEMA_VERSION, "agent": null}));

    let mut st = keel_proto::agent::AgentState::new("periodic", 1_700_000_000);
    st.phase = keel_proto::agent::Phase::Staged;
    st.target = Some(keel_proto::agent::Release {
        version: "2".into(),
        commit: "c2".into(),
        age_index: 1,
    });
    keel_agent::state::save(&st, root.path()).unwrap();
    let (_, v) = keel_json(&["agent", "status", "--json", "--root", r]);
    keel_testsupport::schema::assert_valid("agent-status", &v);
    assert_eq!(v["agent"]["phase"], "staged");
    assert_eq!(v["agent"]["target"]["version"], "2");
}

#[test]
fn a_schema_refuses_an_undescribed_member() {
    let mut v = json!({"schema_version": SCHEMA_VERSION, "agent": null});
    v["surprise"] = json!(1);
    let caught = std::panic::catch_unwind(|| {
        keel_testsupport::schema::assert_valid("agent-status", &v);
    });
    assert!(caught.is_err(), "an undescribed member passed validation");
}
