//! The files stage, differential against Debian's Ignition 2.14: every config under
//! `tests/configs/` is applied by the oracle and by keel to identically seeded roots, and the
//! trees must be identical (paths, types, contents, modes, owners, link targets, hard links,
//! passwd/group/shadow), except for the differences listed in `KNOWN-DIFFERENCES.md`, which
//! are asserted exactly (keel's spec-conformant side included).
//!
//! Conventions: `NAME.pre.sh ROOT` (optional) prepares both roots first; configs named
//! `fail-*` must fail in both, and keel's error must name the JSON path given in the config's
//! sibling `NAME.path`; a `3.4.0` config is given to 2.14 as `3.4.0-experimental`.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Listed differences (see KNOWN-DIFFERENCES.md): config file name, then each expected diff
/// line (keel's value first).
const KNOWN: &[(&str, &[&str])] = &[(
    "special-mode-bits.ign",
    &[
        "/opt/setgid: mode 2755 vs 755",
        "/opt/setuid: mode 4755 vs 755",
    ],
)];

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ign"))
        .collect();
    v.sort();
    v
}

fn ignored(rel: &str) -> bool {
    // The oracle script's SELinux stub config; the result file is compared separately.
    rel == "/etc/selinux" || rel.starts_with("/etc/selinux/") || rel == "/etc/.ignition-result.json"
}

fn enabled_units(config: &Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    v["systemd"]["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["enabled"] == serde_json::json!(true) && u["mask"] != serde_json::json!(true))
        .filter_map(|u| u["name"].as_str().map(str::to_string))
        .collect()
}

fn prepare(config: &Path, root: &Path) {
    let pre = config.with_extension("pre.sh");
    if pre.exists() {
        let st = Command::new("sh").arg(&pre).arg(root).status().unwrap();
        assert!(st.success(), "{} failed", pre.display());
    }
}

struct Outcome {
    name: String,
    diffs: Vec<String>,
}

fn run_one(config: &Path) -> Result<Outcome, String> {
    let name = config.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let oracle_root = seeded_root(&tmp.path().join("oracle"));
    let keel_root = seeded_root(&tmp.path().join("keel"));
    prepare(config, &oracle_root);
    prepare(config, &keel_root);
    let text = std::fs::read_to_string(config).unwrap();
    let oracle_cfg = tmp.path().join("oracle.ign");
    std::fs::write(
        &oracle_cfg,
        text.replace("\"3.4.0\"", "\"3.4.0-experimental\""),
    )
    .unwrap();
    let oracle = run_oracle(&oracle_cfg, &oracle_root);
    let work = tmp.path().join("work");
    let keel = run_keel(&stage_env(&keel_root, &work, config));
    if name.starts_with("fail-") {
        let want_path = std::fs::read_to_string(config.with_extension("path")).unwrap();
        let err = match (&oracle, &keel) {
            (Err(_), Err(e)) => format!("{e:#}"),
            _ => {
                return Err(format!(
                    "{name}: both must fail; oracle: {:?}, keel: {:?}",
                    oracle.err(),
                    keel.err().map(|e| format!("{e:#}"))
                ))
            }
        };
        if !err.contains(want_path.trim()) {
            return Err(format!(
                "{name}: keel's error does not name {}: {err}",
                want_path.trim()
            ));
        }
        return Ok(Outcome {
            name,
            diffs: Vec::new(),
        });
    }
    oracle.map_err(|e| format!("{name}: oracle failed: {e}"))?;
    keel.map_err(|e| format!("{name}: keel failed: {e:#}"))?;
    // 2.14 never enables units itself (it relies on presets at first boot); keel also creates
    // the enablement symlinks, which must equal what `systemctl --root enable` makes.
    for unit in enabled_units(config) {
        let st = Command::new("systemctl")
            .arg("--root")
            .arg(&oracle_root)
            .args(["enable", &unit])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "systemctl enable {unit}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    let result: serde_json::Value = serde_json::from_slice(
        &std::fs::read(keel_root.join("etc/.ignition-result.json"))
            .map_err(|e| format!("{name}: result file: {e}"))?,
    )
    .unwrap();
    let oracle_result: serde_json::Value = serde_json::from_slice(
        &std::fs::read(oracle_root.join("etc/.ignition-result.json")).unwrap(),
    )
    .unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    if keys(&result) != keys(&oracle_result)
        || result["userConfigProvided"] != oracle_result["userConfigProvided"]
    {
        return Err(format!("{name}: result file {result} vs {oracle_result}"));
    }
    let mut keel_tree = snapshot(&keel_root, &ignored);
    let mut oracle_tree = snapshot(&oracle_root, &ignored);
    // 2.14 writes preset lines in Go map order (random between runs): compare them sorted.
    for tree in [&mut keel_tree, &mut oracle_tree] {
        if let Some(n) = tree.get_mut("/etc/systemd/system-preset/20-ignition.preset") {
            let mut lines: Vec<&str> = std::str::from_utf8(&n.content).unwrap().lines().collect();
            lines.sort();
            n.content = lines
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .into_bytes();
        }
    }
    let diffs = diff(&keel_tree, &oracle_tree);
    Ok(Outcome { name, diffs })
}

#[test]
fn files_stage_matches_ignition_2_14() {
    if skip("files_stage_matches_ignition_2_14", true) {
        return;
    }
    let configs = configs();
    assert!(configs.len() >= 20, "corpus too small: {}", configs.len());
    let mut failures = Vec::new();
    for config in &configs {
        match run_one(config) {
            Ok(o) => {
                let known: Vec<String> = KNOWN
                    .iter()
                    .find(|(n, _)| *n == o.name)
                    .map(|(_, d)| d.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default();
                if o.diffs != known {
                    failures.push(format!("{}:\n    {}", o.name, o.diffs.join("\n    ")));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} configs differ:\n{}",
        failures.len(),
        configs.len(),
        failures.join("\n")
    );
}
