//! Differential test of `merge` against real Ignition 2.14: each parent config gets the child
//! as an `ignition.config.merge` data URL, Ignition's `fetch-offline` stage renders it into its
//! config cache, and the cache (minus empty objects and the merge bookkeeping) must equal
//! keel's `merge(parent, child)`.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use base64::Engine;
use keel_ignition_config::{check, merge};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const IGNITION: &str = "/usr/lib/dracut/modules.d/30ignition/ignition";

const CASES: &[(&str, &str, &str)] = &[
    (
        "files override by path, append concatenated, a child directory replaces a parent link, ssh keys and kernel arguments",
        r#"{"storage":{"files":[{"path":"/etc/hostname","overwrite":true,"contents":{"source":"data:,parent"}},{"path":"/x","append":[{"source":"data:,p"}]}],"links":[{"path":"/l","target":"/x"}]},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k1","k2"]}]},"kernelArguments":{"shouldExist":["quiet","a"]}}"#,
        r#"{"storage":{"files":[{"path":"/etc/hostname","mode":384,"contents":{"source":"data:,child"}},{"path":"/x","append":[{"source":"data:,c"}]}],"directories":[{"path":"/l"}]},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k2","k3"]}]},"kernelArguments":{"shouldNotExist":["quiet"]}}"#,
    ),
    (
        "units and dropins by name, scalars overridden, new entries appended",
        r#"{"systemd":{"units":[{"name":"a.service","enabled":true,"contents":"[Install]\nWantedBy=x\n","dropins":[{"name":"1.conf","contents":"[Unit]\n"},{"name":"2.conf"}]},{"name":"b.service","mask":true}]}}"#,
        r#"{"systemd":{"units":[{"name":"c.service","enabled":false},{"name":"a.service","enabled":false,"dropins":[{"name":"2.conf","contents":"[Service]\n"},{"name":"3.conf"}]}]}}"#,
    ),
    (
        "disks by device, partitions by number or label, filesystem and raid options appended",
        r#"{"storage":{"disks":[{"device":"/dev/vda","wipeTable":true,"partitions":[{"number":1,"label":"one","sizeMiB":10},{"label":"two","sizeMiB":20}]}],"filesystems":[{"device":"/dev/vda1","format":"ext4","options":["-a"],"path":"/var"}],"raid":[{"name":"md0","level":"raid1","devices":["/dev/vdb","/dev/vdc"],"options":["--x"]}]}}"#,
        r#"{"storage":{"disks":[{"device":"/dev/vda","wipeTable":false,"partitions":[{"number":1,"sizeMiB":15},{"label":"two","startMiB":100},{"number":3,"label":"three"}]}],"filesystems":[{"device":"/dev/vda1","format":"xfs","options":["-b"],"label":"data"}],"raid":[{"name":"md0","level":"raid5","devices":["/dev/vdc","/dev/vdd"],"options":["--y"],"spares":1}]}}"#,
    ),
    (
        "luks by name with options appended; groups and users",
        r#"{"ignition":{"version":"3.2.0"},"storage":{"luks":[{"name":"data","device":"/dev/vdb","options":["--a"],"keyFile":{"source":"data:,k1"},"clevis":{"tpm2":true}}]},"passwd":{"groups":[{"name":"docker","gid":900}],"users":[{"name":"u","groups":["a","b"],"shell":"/bin/sh"}]}}"#,
        r#"{"ignition":{"version":"3.2.0"},"storage":{"luks":[{"name":"data","device":"/dev/vdc","options":["--b"],"keyFile":{"source":"data:,k2"},"label":"secret"}]},"passwd":{"groups":[{"name":"docker","system":true}],"users":[{"name":"u","groups":["b","c"],"uid":1001}]}}"#,
    ),
    (
        "timeouts, proxy and a later version in the child",
        r#"{"ignition":{"version":"3.1.0","timeouts":{"httpTotal":10},"proxy":{"httpProxy":"http://p:1","noProxy":["a"]}}}"#,
        r#"{"ignition":{"version":"3.3.0","timeouts":{"httpResponseHeaders":5},"proxy":{"httpsProxy":"https://p:2","noProxy":["a","b"]}}}"#,
    ),
];

/// Drops what carries no information (empty objects and lists, nulls) and the rendering
/// bookkeeping (`ignition.config`, `ignition.version`) so that both sides compare by content.
fn normalize(v: &mut Value) {
    if let Value::Object(m) = v {
        if let Some(Value::Object(ign)) = m.get_mut("ignition") {
            ign.remove("config");
            ign.remove("version");
        }
        m.values_mut().for_each(normalize);
        m.retain(|_, x| {
            !(x.is_null()
                || x.as_array().is_some_and(|a| a.is_empty())
                || x.as_object().is_some_and(|o| o.is_empty()))
        });
    } else if let Value::Array(a) = v {
        a.iter_mut().for_each(normalize);
    }
}

fn with_version(json: &str) -> String {
    if json.contains("\"version\"") {
        json.to_string()
    } else {
        json.replacen('{', r#"{"ignition":{"version":"3.3.0"},"#, 1)
    }
}

#[test]
fn merge_matches_ignition_rendering() {
    if !Path::new(IGNITION).exists() {
        keel_testsupport::skip(&format!(
            "merge_matches_ignition_rendering: {IGNITION} not installed (apt-get install ignition)"
        ));
        return;
    }
    for (name, parent, child) in CASES {
        let (parent, child) = (with_version(parent), with_version(child));
        let dir = tempfile::tempdir().unwrap();
        let mut top: Value = serde_json::from_str(&parent).unwrap();
        let url = format!(
            "data:;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&child)
        );
        top["ignition"]["config"] = serde_json::json!({"merge": [{"source": url}]});
        let cfg = dir.path().join("config.ign");
        std::fs::write(&cfg, top.to_string()).unwrap();
        let d = dir.path();
        let out = Command::new(IGNITION)
            .args([
                "-platform",
                "file",
                "-stage",
                "fetch-offline",
                "-log-to-stdout",
            ])
            .arg("-root")
            .arg(d.join("root"))
            .arg("-config-cache")
            .arg(d.join("cache.json"))
            .arg("-state-file")
            .arg(d.join("state"))
            .arg("-neednet")
            .arg(d.join("neednet"))
            .env("IGNITION_CONFIG_FILE", &cfg)
            .env("IGNITION_SYSTEM_CONFIG_DIR", d.join("sysconf"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: ignition failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let mut oracle: Value =
            serde_json::from_slice(&std::fs::read(d.join("cache.json")).unwrap()).unwrap();
        let p = check(parent.as_bytes()).config.unwrap();
        let c = check(child.as_bytes()).config.unwrap();
        let mut ours = serde_json::to_value(merge(&p, &c)).unwrap();
        normalize(&mut oracle);
        normalize(&mut ours);
        assert_eq!(ours, oracle, "{name}");
    }
}
