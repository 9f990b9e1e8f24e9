//! The installed package set: read from dpkg's status file, recorded in the commit as JSON
//! (`keel.packages`: `{"name": "version", …}`), and compared between two commits.

use std::collections::BTreeMap;
use std::fmt;

/// Installed packages: name → version.
pub type PackageList = BTreeMap<String, String>;

/// An installed package as dpkg records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Package name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Architecture (`amd64`, `all`).
    pub arch: String,
}

/// Parse dpkg's `status` file; only fully installed packages are returned, sorted by name.
pub fn parse_status(text: &str) -> Vec<Installed> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                match k {
                    "Package" => name = Some(v.to_string()),
                    "Version" => version = Some(v.to_string()),
                    "Architecture" => arch = Some(v.to_string()),
                    "Status" => installed = v.ends_with(" installed"),
                    _ => {}
                }
            }
        }
        if let (true, Some(name), Some(version)) = (installed, name, version) {
            out.push(Installed {
                name,
                version,
                arch: arch.unwrap_or_default(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.arch.cmp(&b.arch)));
    out
}

/// The name → version map recorded in commits.
pub fn to_list(installed: &[Installed]) -> PackageList {
    installed
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect()
}

/// One difference between two package lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only in the new list.
    Added { name: String, version: String },
    /// Only in the old list.
    Removed { name: String, version: String },
    /// In both with different versions.
    Changed {
        name: String,
        from: String,
        to: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { name, version } => write!(f, "+ {name} {version}"),
            Change::Removed { name, version } => write!(f, "- {name} {version}"),
            Change::Changed { name, from, to } => write!(f, "~ {name} {from} -> {to}"),
        }
    }
}

/// The changes from `old` to `new`, sorted by package name.
pub fn diff(old: &PackageList, new: &PackageList) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, version) in old {
        match new.get(name) {
            None => out.push(Change::Removed {
                name: name.clone(),
                version: version.clone(),
            }),
            Some(v) if v != version => out.push(Change::Changed {
                name: name.clone(),
                from: version.clone(),
                to: v.clone(),
            }),
            Some(_) => {}
        }
    }
    for (name, version) in new {
        if !old.contains_key(name) {
            out.push(Change::Added {
                name: name.clone(),
                version: version.clone(),
            });
        }
    }
    out.sort_by(|a, b| change_name(a).cmp(change_name(b)));
    out
}

fn change_name(c: &Change) -> &str {
    match c {
        Change::Added { name, .. }
        | Change::Removed { name, .. }
        | Change::Changed { name, .. } => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing() {
        let status = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\nDescription: x\n continued: line\n";
        let got = parse_status(status);
        assert_eq!(
            got,
            vec![
                Installed {
                    name: "base-files".into(),
                    version: "12.4".into(),
                    arch: "amd64".into()
                },
                Installed {
                    name: "zlib1g".into(),
                    version: "1:1.2.13".into(),
                    arch: "amd64".into()
                },
            ]
        );
        assert_eq!(
            to_list(&got).get("zlib1g").map(String::as_str),
            Some("1:1.2.13")
        );
    }

    #[test]
    fn diff_table() {
        let list = |pairs: &[(&str, &str)]| -> PackageList {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        for (old, new, want) in [
            (list(&[("a", "1")]), list(&[("a", "1")]), vec![]),
            (list(&[]), list(&[("a", "1")]), vec!["+ a 1"]),
            (list(&[("a", "1")]), list(&[]), vec!["- a 1"]),
            (
                list(&[("a", "1"), ("c", "3")]),
                list(&[("a", "2"), ("b", "1")]),
                vec!["~ a 1 -> 2", "+ b 1", "- c 3"],
            ),
        ] {
            let got: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
            assert_eq!(got, want);
        }
    }
}
