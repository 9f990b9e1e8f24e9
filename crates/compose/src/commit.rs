//! The commit of a prepared tree: version (from the ref's history), commit metadata, and reading
//! the package list back for `keel compose diff`.
//!
//! Commit metadata written by compose (sorted by key):
//! - `keel.debian-suite` (s): the Debian suite;
//! - `keel.manifest-sha256` (s): sha256 of the manifest file;
//! - `keel.packages` (s): JSON object `{"package": "version", …}` of every installed package;
//! - `keel.stream` (s): the release stream;
//! - `ostree.bootable` (b) and `ostree.linux` (s): when the tree has a kernel;
//! - `version` (s): the version (OSTree's standard key).

use crate::manifest::Manifest;
use crate::packages::{self, PackageList};
use crate::prepare::Prepared;
use crate::version;
use anyhow::{bail, Context};
use keel_store::gvariant::Variant;
use keel_store::Repo;

/// Metadata key holding the package list.
pub const PACKAGES_KEY: &str = "keel.packages";

/// Versions of the commits on `ref_name`'s history, newest first (stops at a missing parent).
pub fn history_versions(repo: &Repo, ref_name: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut next = repo.read_ref(ref_name)?;
    while let Some(c) = next {
        let Ok(commit) = repo.read_commit(&c) else {
            break;
        };
        if let Some(Variant::Str(v)) = lookup(&commit.metadata, "version") {
            out.push(v.clone());
        }
        next = commit.parent;
    }
    Ok(out)
}

fn lookup<'a>(metadata: &'a [(String, Variant)], key: &str) -> Option<&'a Variant> {
    metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| match v {
            Variant::Boxed(inner) => inner.as_ref(),
            v => v,
        })
}

/// The version of the next compose of `m`: `--release-version` when given, else the date of `epoch`
/// with the next respin on the ref's history.
pub fn choose_version(
    repo: &Repo,
    m: &Manifest,
    epoch: u64,
    requested: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(v) = requested {
        version::check_version(v).map_err(anyhow::Error::msg)?;
        return Ok(v.to_string());
    }
    let existing = history_versions(repo, &m.ref_name())?;
    let prefix = m
        .version_prefix()
        .context("manifest has no version prefix")?;
    let code = crate::manifest::stream_code(&m.spec.release.stream)
        .context("manifest has an unknown stream")?;
    Ok(version::next_version(
        prefix,
        &version::yyyymmdd(epoch),
        code,
        existing.iter().map(String::as_str),
    ))
}

/// The commit metadata for a prepared tree.
pub fn metadata(
    m: &Manifest,
    p: &Prepared,
    version: &str,
) -> anyhow::Result<Vec<(String, Variant)>> {
    let list = packages::to_list(&p.packages);
    let mut md = vec![
        ("version".to_string(), Variant::Str(version.to_string())),
        (
            "keel.stream".into(),
            Variant::Str(m.spec.release.stream.clone()),
        ),
        (
            "keel.manifest-sha256".into(),
            Variant::Str(m.sha256.clone()),
        ),
        (
            "keel.debian-suite".into(),
            Variant::Str(m.spec.debian.suite.clone()),
        ),
        (
            PACKAGES_KEY.into(),
            Variant::Str(serde_json::to_string(&list)?),
        ),
    ];
    if let Some(kver) = &p.kernel {
        md.push(("ostree.bootable".into(), Variant::Bool(true)));
        md.push(("ostree.linux".into(), Variant::Str(kver.clone())));
    }
    md.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(md)
}

/// The package list recorded in commit `rev`.
pub fn package_list(repo: &Repo, rev: &str) -> anyhow::Result<PackageList> {
    let c = repo
        .resolve_rev(rev)
        .with_context(|| format!("resolving {rev:?} in {}", repo.path().display()))?;
    let commit = repo.read_commit(&c)?;
    match lookup(&commit.metadata, PACKAGES_KEY) {
        Some(Variant::Str(json)) => serde_json::from_str(json)
            .with_context(|| format!("commit {rev}: metadata {PACKAGES_KEY} is not a JSON object")),
        _ => bail!(
            "commit {rev} ({}) has no {PACKAGES_KEY} metadata: it was not made by keel compose",
            c.to_hex()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_store::{CommitOptions, RepoMode};
    use keel_utils::progress::Progress;
    use std::path::Path;

    fn manifest() -> Manifest {
        let text = "[release]\nstream = \"stable\"\n[debian]\nsuite = \"bookworm\"\nmirrors = [\"http://m\"]\n";
        Manifest::parse(text.as_bytes(), Path::new("m.toml"), "/".into()).unwrap()
    }

    fn commit(repo: &Repo, m: &Manifest, dir: &Path, metadata: Vec<(String, Variant)>) {
        repo.commit_dir(
            dir,
            &CommitOptions {
                branch: Some(m.ref_name()),
                timestamp: Some(0),
                metadata,
                ..CommitOptions::default()
            },
            &Progress::quiet("test"),
        )
        .unwrap();
    }

    #[test]
    fn respins_follow_the_ref_history_and_packages_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let repo = Repo::init(&t.path().join("repo"), RepoMode::Archive).unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let m = manifest();
        let day = 1_795_564_800;
        assert_eq!(
            choose_version(&repo, &m, day, None).unwrap(),
            "12.20261125.3.0"
        );
        assert_eq!(
            choose_version(&repo, &m, day, Some("12.20261125.3.7")).unwrap(),
            "12.20261125.3.7"
        );
        assert!(choose_version(&repo, &m, day, Some("12.x")).is_err());

        for (i, v) in ["12.20261124.3.4", "12.20261125.3.0", "12.20261125.3.1"]
            .iter()
            .enumerate()
        {
            std::fs::write(tree.join("f"), i.to_string()).unwrap();
            let prepared = Prepared {
                packages: vec![crate::packages::Installed {
                    name: "hello".into(),
                    version: format!("2.10-{i}"),
                    arch: "amd64".into(),
                }],
                kernel: None,
                sizes: crate::sizes::SizeReport {
                    total: 0,
                    by_package: vec![],
                },
                downloads: Default::default(),
            };
            commit(&repo, &m, &tree, metadata(&m, &prepared, v).unwrap());
        }
        assert_eq!(
            history_versions(&repo, &m.ref_name()).unwrap(),
            vec!["12.20261125.3.1", "12.20261125.3.0", "12.20261124.3.4"]
        );
        assert_eq!(
            choose_version(&repo, &m, day, None).unwrap(),
            "12.20261125.3.2"
        );
        assert_eq!(
            choose_version(&repo, &m, day + 86_400, None).unwrap(),
            "12.20261126.3.0"
        );

        let old = package_list(&repo, "keel/stable/x86_64^").unwrap();
        let new = package_list(&repo, "keel/stable/x86_64").unwrap();
        let changes: Vec<String> = crate::packages::diff(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changes, vec!["~ hello 2.10-1 -> 2.10-2"]);

        commit(&repo, &m, &tree, vec![]);
        let err = package_list(&repo, "keel/stable/x86_64")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no keel.packages metadata"), "{err}");
    }
}
