//! Every section and field of spec 3.0.0 to 3.5.0: one config (tests/spec/every-field.json)
//! uses every field of the newest spec. Read at 3.5.0 (and 3.6.0-experimental) it must decode
//! without a single unused key and serialize back to the same JSON; read at each older version,
//! exactly the fields that version lacks must be reported as unused (the same ones
//! `ignition-validate` reports for 3.0.0-3.3.0), and translating up keeps everything else.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_ignition_config::{check, Severity};
use std::collections::BTreeSet;
use std::path::Path;

fn every_field(version: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec/every-field.json");
    std::fs::read_to_string(path)
        .unwrap()
        .replace("VERSION", version)
}

/// Fields introduced after 3.0.0, by the minor version that introduced them, as the paths at
/// which every-field.json uses them.
const ADDED: &[(u64, &str)] = &[
    (1, "$.ignition.proxy"),
    (1, "$.ignition.config.merge.0.httpHeaders"),
    (1, "$.ignition.config.replace.httpHeaders"),
    (
        1,
        "$.ignition.security.tls.certificateAuthorities.0.httpHeaders",
    ),
    (1, "$.storage.files.0.contents.httpHeaders"),
    (1, "$.storage.filesystems.0.mountOptions"),
    (2, "$.storage.luks"),
    (2, "$.storage.disks.0.partitions.0.resize"),
    (2, "$.passwd.users.0.shouldExist"),
    (2, "$.passwd.groups.0.shouldExist"),
    (3, "$.kernelArguments"),
];

/// Fields inside `storage.luks` (itself new in 3.2.0) added later.
const ADDED_IN_LUKS: &[(u64, &str)] = &[
    (4, "$.storage.luks.0.discard"),
    (4, "$.storage.luks.0.openOptions"),
    (4, "$.storage.luks.0.clevis.tang.0.advertisement"),
    (5, "$.storage.luks.2.cex"),
];

/// The unused-key paths `ignition-validate` reports (it must also accept the config), or
/// `None` when it is not installed.
fn oracle_unused(json: &str) -> Option<BTreeSet<String>> {
    if !Path::new("/usr/bin/ignition-validate").exists() {
        keel_testsupport::skip("older_specs_lack_exactly_the_later_fields (part): ignition-validate not installed (apt-get install ignition); not comparing unused keys with it");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.ign");
    std::fs::write(&path, json).unwrap();
    let out = std::process::Command::new("/usr/bin/ignition-validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ignition-validate rejects: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter(|l| l.contains("Unused key"))
            .filter_map(|l| {
                l.strip_prefix("warning at ")?
                    .split(',')
                    .next()
                    .map(String::from)
            })
            .collect(),
    )
}

fn unused_paths(json: &str) -> (BTreeSet<String>, Vec<String>) {
    let checked = check(json.as_bytes());
    let mut unused = BTreeSet::new();
    let mut other = Vec::new();
    for r in &checked.reports {
        if r.message.starts_with("Unused key") {
            unused.insert(r.path.as_ref().unwrap().to_string());
        } else if r.severity == Severity::Error {
            other.push(r.to_string());
        }
    }
    (unused, other)
}

#[test]
fn newest_spec_has_every_field_and_round_trips() {
    for version in ["3.5.0", "3.6.0-experimental"] {
        let json = every_field(version);
        let (unused, errors) = unused_paths(&json);
        assert!(unused.is_empty(), "{version}: unused keys {unused:?}");
        assert!(errors.is_empty(), "{version}: errors {errors:?}");
        let checked = check(json.as_bytes());
        let out = serde_json::to_value(checked.config.unwrap()).unwrap();
        let mut want: serde_json::Value = serde_json::from_str(&json).unwrap();
        // Empty lists and objects carry no information and are not written back.
        strip_empty(&mut want);
        if version == "3.5.0" {
            assert_eq!(out, want);
        }
    }
}

fn strip_empty(v: &mut serde_json::Value) {
    if let serde_json::Value::Object(m) = v {
        m.values_mut().for_each(strip_empty);
        m.retain(|k, x| {
            !(x.as_array().is_some_and(|a| a.is_empty())
                || (k != "ignition" && x.as_object().is_some_and(|o| o.is_empty())))
        });
    } else if let serde_json::Value::Array(a) = v {
        a.iter_mut().for_each(strip_empty);
    }
}

#[test]
fn older_specs_lack_exactly_the_later_fields() {
    for minor in 0..=4u64 {
        let version = format!("3.{minor}.0");
        let json = every_field(&version);
        let (unused, errors) = unused_paths(&json);
        let mut want: BTreeSet<String> = ADDED
            .iter()
            .filter(|(m, _)| *m > minor)
            .map(|(_, p)| p.to_string())
            .collect();
        if minor >= 2 {
            want.extend(
                ADDED_IN_LUKS
                    .iter()
                    .filter(|(m, _)| *m > minor)
                    .map(|(_, p)| p.to_string()),
            );
        }
        if minor == 0 {
            // 3.0.0 has compression on file contents only.
            want.extend(
                [
                    "$.ignition.config.merge.0.compression",
                    "$.ignition.config.replace.compression",
                    "$.ignition.security.tls.certificateAuthorities.0.compression",
                ]
                .map(String::from),
            );
        }
        assert_eq!(unused, want, "{version}");
        assert!(errors.is_empty(), "{version}: {errors:?}");
        if let Some(oracle) = if minor <= 3 {
            oracle_unused(&json)
        } else {
            None
        } {
            assert_eq!(
                unused, oracle,
                "{version}: ignition-validate reports other unused keys"
            );
        }
        let up = check(json.as_bytes()).config.unwrap();
        assert_eq!(up.ignition.version.as_deref(), Some("3.5.0"));
        assert_eq!(up.storage().files[0].path.as_deref(), Some("/etc/hostname"));
        assert_eq!(up.users()[0].name.as_deref(), Some("core"));
    }
}
