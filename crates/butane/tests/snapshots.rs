//! Snapshot tests over the Butane documentation's examples and keel's own configs
//! (tests/snapshots/*.bu): the translation must equal the committed insta snapshot
//! `NAME.ign.snap` (reports in `NAME.warn.snap`), be valid for
//! keel's validator and for the real `ignition-validate` (outputs newer than 3.3.0 relabelled as
//! its 3.4.0-experimental).
//! A config with a committed `NAME.err.snap` must be refused with exactly those reports.
//! A difference leaves `NAME.EXT.snap.new` beside the snapshot; `INSTA_UPDATE=always` (or
//! `cargo insta review`) accepts the new output, then review the diff by hand.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_butane::{translate, Options};
use keel_testsupport::snapshot;
use std::path::Path;
use std::process::Command;

fn oracle_accepts(json: &str, dir: &Path, name: &str) -> Option<(bool, String)> {
    if !Path::new("/usr/bin/ignition-validate").exists() {
        return None;
    }
    let path = dir.join(format!("{name}.ign.tmp"));
    std::fs::write(&path, json).unwrap();
    let out = Command::new("/usr/bin/ignition-validate")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ))
}

#[test]
fn butane_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let opts = Options {
        files_dir: Some(dir.join("files")),
        strict: false,
        pretty: true,
    };
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bu"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 50, "snapshot inputs missing");
    if !Path::new("/usr/bin/ignition-validate").exists() {
        keel_testsupport::skip(
            "butane_snapshots (part): ignition-validate not installed (apt-get install ignition); outputs checked with keel's validator only",
        );
    }
    let (mut problems, mut oracle_checked) = (Vec::new(), 0);
    for input in &inputs {
        let name = input.file_stem().unwrap().to_string_lossy().into_owned();
        let result = translate(&std::fs::read(input).unwrap(), &opts);
        let lines = |reports: &[keel_ignition_config::Report]| {
            reports.iter().map(|r| format!("{r}\n")).collect::<String>()
        };
        let mut expected = Vec::new();
        match &result {
            Ok(out) => {
                expected.push(("ign", out.json.clone() + "\n"));
                if !out.reports.is_empty() {
                    expected.push(("warn", lines(&out.reports)));
                }
            }
            Err(e) => expected.push(("err", format!("{}\n{}", e.reason, lines(&e.reports)))),
        }
        for (ext, got) in expected {
            if let Err(diff) = snapshot::check(&dir, input, &format!("{name}.{ext}"), &got) {
                problems.push(format!("{name}: {diff}"));
            }
        }
        let Ok(out) = result else { continue };
        if let Err(e) = keel_ignition_config::parse(out.json.as_bytes()) {
            problems.push(format!("{name}: output is not valid Ignition: {e}"));
        }
        // 2.14 knows specs up to 3.3.0 and 3.4.0-experimental; newer outputs are checked as
        // 3.4.0-experimental (fields it lacks are only unused-key warnings there).
        let spec = out.config.ignition.version.clone().unwrap_or_default();
        let as_oracle_spec = match spec.as_str() {
            "3.0.0" | "3.1.0" | "3.2.0" | "3.3.0" => out.json.clone(),
            _ => {
                let mut relabelled = out.config.clone();
                relabelled.ignition.version = Some("3.4.0-experimental".into());
                serde_json::to_string(&relabelled).unwrap()
            }
        };
        if let Some((ok, text)) = oracle_accepts(&as_oracle_spec, &dir, &name) {
            oracle_checked += 1;
            if !ok {
                problems.push(format!(
                    "{name}: ignition-validate rejects the output: {text}"
                ));
            }
        }
    }
    eprintln!(
        "butane snapshots: {} inputs, {oracle_checked} outputs accepted by ignition-validate",
        inputs.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
