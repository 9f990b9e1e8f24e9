//! Merging configs the way Ignition does for `ignition.config.merge` (and base configs under a
//! user config): the child overrides scalars; keyed lists merge entry by entry (entries with the
//! same key are merged recursively, new ones appended after the parent's); a few lists are
//! plainly concatenated; files, directories and links share one `path` key space, as do
//! `kernelArguments.shouldExist` and `shouldNotExist`; an HTTP header named in the child without
//! a value deletes the parent's header.

use crate::types::Config;
use serde_json::{Map, Value};

/// Lists whose entries are concatenated, parent first, without de-duplication.
const APPENDED: &[&str] = &[
    "storage.files.append",
    "storage.filesystems.options",
    "storage.filesystems.mountOptions",
    "storage.luks.options",
    "storage.raid.options",
];

/// Lists of objects and the member that identifies an entry.
const KEYED: &[(&str, &str)] = &[
    ("ignition.config.merge", "source"),
    ("ignition.security.tls.certificateAuthorities", "source"),
    ("storage.disks", "device"),
    ("storage.raid", "name"),
    ("storage.luks", "name"),
    ("storage.luks.clevis.tang", "url"),
    ("storage.filesystems", "device"),
    ("storage.files", "path"),
    ("storage.directories", "path"),
    ("storage.links", "path"),
    ("systemd.units", "name"),
    ("systemd.units.dropins", "name"),
    ("passwd.users", "name"),
    ("passwd.groups", "name"),
];

/// Sibling lists that form one key space: an entry in one removes the parent's entry with the
/// same key from the others.
const SHARED: &[(&str, &[&str])] = &[
    ("storage", &["files", "directories", "links"]),
    ("kernelArguments", &["shouldExist", "shouldNotExist"]),
];

/// Merges `child` over `parent` and returns the result.
pub fn merge(parent: &Config, child: &Config) -> Config {
    let mut p = serde_json::to_value(parent).unwrap_or(Value::Null);
    let c = serde_json::to_value(child).unwrap_or(Value::Null);
    if let (Value::Object(pm), Value::Object(cm)) = (&mut p, c) {
        merge_object(pm, cm, "");
    }
    // Both sides serialize from the same types, so the result always deserializes.
    serde_json::from_value(p).unwrap_or_default()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_object(parent: &mut Map<String, Value>, child: Map<String, Value>, path: &str) {
    if let Some((_, lists)) = SHARED.iter().find(|(p, _)| *p == path) {
        remove_shadowed(parent, &child, lists);
    }
    for (k, cv) in child {
        let sub = join(path, &k);
        match (parent.get_mut(&k), cv) {
            (Some(Value::Object(pm)), Value::Object(cm)) => merge_object(pm, cm, &sub),
            (Some(Value::Array(pl)), Value::Array(cl)) => merge_list(pl, cl, &sub),
            (_, cv) => {
                parent.insert(k, cv);
            }
        }
    }
}

/// For a shared key space, drops parent entries of *other* lists that a child entry replaces.
fn remove_shadowed(parent: &mut Map<String, Value>, child: &Map<String, Value>, lists: &[&str]) {
    for own in lists {
        let Some(Value::Array(items)) = child.get(*own) else {
            continue;
        };
        let keys: Vec<Value> = items
            .iter()
            .map(|v| v.get("path").cloned().unwrap_or_else(|| v.clone()))
            .collect();
        for other in lists.iter().filter(|o| *o != own) {
            if let Some(Value::Array(pl)) = parent.get_mut(*other) {
                pl.retain(|v| !keys.contains(v.get("path").unwrap_or(v)));
            }
        }
    }
}

fn merge_list(parent: &mut Vec<Value>, child: Vec<Value>, path: &str) {
    if APPENDED.contains(&path) {
        parent.extend(child);
        return;
    }
    let headers = path.ends_with("httpHeaders");
    for item in child {
        let key = key_of(&item, path);
        match parent.iter().position(|p| key_of(p, path) == key) {
            Some(i) if headers && item.get("value").is_none() => {
                parent.remove(i);
            }
            Some(i) => match (&mut parent[i], item) {
                (Value::Object(pm), Value::Object(cm)) => merge_object(pm, cm, path),
                (slot, item) => *slot = item,
            },
            None => parent.push(item),
        }
    }
}

/// The identity of a list entry: its key member, a partition's number (or label when the
/// number is 0), a header's name, or the value itself for lists of strings.
fn key_of(item: &Value, path: &str) -> Value {
    if path == "storage.disks.partitions" {
        return match item.get("number").and_then(Value::as_i64) {
            Some(n) if n != 0 => Value::String(n.to_string()),
            _ => item.get("label").cloned().unwrap_or(Value::Null),
        };
    }
    if path.ends_with("httpHeaders") {
        return item.get("name").cloned().unwrap_or(Value::Null);
    }
    match KEYED.iter().find(|(p, _)| *p == path) {
        Some((_, k)) => item.get(*k).cloned().unwrap_or(Value::Null),
        None => item.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn merge_table() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "child overrides scalars of the same file, keeps the parent's others",
                r#"{"storage":{"files":[{"path":"/etc/hostname","overwrite":true,"contents":{"source":"data:,parent"}}]}}"#,
                r#"{"storage":{"files":[{"path":"/etc/hostname","mode":384,"contents":{"source":"data:,child"}}]}}"#,
                r#"{"ignition":{},"storage":{"files":[{"contents":{"source":"data:,child"},"mode":384,"overwrite":true,"path":"/etc/hostname"}]}}"#,
            ),
            (
                "new entries are appended after the parent's",
                r#"{"systemd":{"units":[{"name":"a.service"},{"name":"b.service","enabled":true}]}}"#,
                r#"{"systemd":{"units":[{"name":"c.service"},{"name":"b.service","enabled":false}]}}"#,
                r#"{"ignition":{},"systemd":{"units":[{"name":"a.service"},{"enabled":false,"name":"b.service"},{"name":"c.service"}]}}"#,
            ),
            (
                "a child directory replaces a parent file at the same path",
                r#"{"storage":{"files":[{"path":"/x"},{"path":"/y"}],"links":[{"path":"/z","target":"/y"}]}}"#,
                r#"{"storage":{"directories":[{"path":"/x"}],"files":[{"path":"/z"}]}}"#,
                r#"{"ignition":{},"storage":{"directories":[{"path":"/x"}],"files":[{"path":"/y"},{"path":"/z"}]}}"#,
            ),
            (
                "append and filesystem options are concatenated, ssh keys de-duplicated",
                r#"{"storage":{"files":[{"path":"/a","append":[{"source":"data:,1"}]}],"filesystems":[{"device":"/dev/vda","options":["-a"]}]},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k1","k2"]}]}}"#,
                r#"{"storage":{"files":[{"path":"/a","append":[{"source":"data:,1"}]}],"filesystems":[{"device":"/dev/vda","options":["-a"]}]},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k2","k3"]}]}}"#,
                r#"{"ignition":{},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["k1","k2","k3"]}]},"storage":{"files":[{"append":[{"source":"data:,1"},{"source":"data:,1"}],"path":"/a"}],"filesystems":[{"device":"/dev/vda","options":["-a","-a"]}]}}"#,
            ),
            (
                "a header without value deletes the parent's header; partitions keyed by number",
                r#"{"ignition":{"config":{"merge":[{"source":"http://x/","httpHeaders":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}},"storage":{"disks":[{"device":"/dev/vda","partitions":[{"number":1,"label":"a"},{"label":"b"}]}]}}"#,
                r#"{"ignition":{"config":{"merge":[{"source":"http://x/","httpHeaders":[{"name":"A"},{"name":"B","value":"3"}]}]}},"storage":{"disks":[{"device":"/dev/vda","partitions":[{"number":1,"sizeMiB":5},{"label":"b","number":0,"sizeMiB":7}]}]}}"#,
                r#"{"ignition":{"config":{"merge":[{"httpHeaders":[{"name":"B","value":"3"}],"source":"http://x/"}]}},"storage":{"disks":[{"device":"/dev/vda","partitions":[{"label":"a","number":1,"sizeMiB":5},{"label":"b","number":0,"sizeMiB":7}]}]}}"#,
            ),
            (
                "kernel arguments share one key space",
                r#"{"kernelArguments":{"shouldExist":["quiet","a=1"],"shouldNotExist":["b"]}}"#,
                r#"{"kernelArguments":{"shouldNotExist":["quiet"],"shouldExist":["b"]}}"#,
                r#"{"ignition":{},"kernelArguments":{"shouldExist":["a=1","b"],"shouldNotExist":["quiet"]}}"#,
            ),
            (
                "the child's version wins",
                r#"{"ignition":{"version":"3.0.0","timeouts":{"httpTotal":5}}}"#,
                r#"{"ignition":{"version":"3.5.0"}}"#,
                r#"{"ignition":{"timeouts":{"httpTotal":5},"version":"3.5.0"}}"#,
            ),
        ];
        for (name, parent, child, want) in cases {
            let got = serde_json::to_value(merge(&cfg(parent), &cfg(child))).unwrap();
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(got, want, "{name}");
        }
    }
}
