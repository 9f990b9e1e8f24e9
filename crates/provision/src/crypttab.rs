//! LUKS volumes in the target root (files stage): each volume's key file is stored as
//! `/etc/luks/<name>` (0600) and `/etc/crypttab` gets a `<name> UUID=<uuid> /etc/luks/<name> luks`
//! line, replacing an earlier line for the same name, so the root unlocks them at boot.

use crate::beneath::Root;
use crate::error::{AtPath, OpError};
use anyhow::{Context, Result};
use keel_ignition_config::types::Luks;
use std::path::Path;

/// `crypttab` with the line for `name` set to `line` (other lines kept in order).
pub fn with_entry(crypttab: &str, name: &str, line: &str) -> String {
    let mut out: Vec<&str> = crypttab
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(name))
        .collect();
    out.push(line);
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The crypttab line for a volume.
pub fn line(l: &Luks, uuid: &str) -> String {
    let name = l.name.as_deref().unwrap_or_default();
    let mut opts = vec!["luks".to_string()];
    if l.discard == Some(true) {
        opts.push("discard".into());
    }
    opts.extend(
        l.open_options
            .iter()
            .map(|o| o.trim_start_matches('-').to_string()),
    );
    format!("{name} UUID={uuid} /etc/luks/{name} {}", opts.join(","))
}

/// Stores key files and crypttab lines for every LUKS volume the disks stage set up.
pub fn apply(root: &Root, volumes: &[Luks], key_dir: &Path) -> Result<(), OpError> {
    for (i, l) in volumes.iter().enumerate() {
        let name = l.name.as_deref().unwrap_or_default();
        let at = format!("$.storage.luks.{i}");
        let op = format!("recording LUKS volume {name:?} in /etc/crypttab");
        let key = std::fs::read(key_dir.join(name))
            .with_context(|| {
                format!(
                    "reading its key from {} (did the disks stage run?)",
                    key_dir.display()
                )
            })
            .at(&at, &op)?;
        let dev = crate::disks::wait_for(l.device.as_deref().unwrap_or_default()).at(&at, &op)?;
        let uuid = crate::disks::probe(&dev).at(&at, &op)?.uuid;
        write_entry(root, name, &key, &line(l, &uuid)).at(&at, &op)?;
    }
    Ok(())
}

/// Writes the key file and the crypttab line beneath the root ([`crate::beneath`]).
fn write_entry(root: &Root, name: &str, key: &[u8], line: &str) -> Result<()> {
    crate::beneath::check_name(name).context("LUKS volume name")?;
    root.write_atomic(&format!("/etc/luks/{name}"), key, 0o600)?;
    let old = root.read("/etc/crypttab")?.unwrap_or_default();
    let old = String::from_utf8_lossy(&old);
    root.write_atomic(
        "/etc/crypttab",
        with_entry(&old, name, line).as_bytes(),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypttab_lines_table() {
        let l = |discard: Option<bool>, open: &[&str]| Luks {
            name: Some("data".into()),
            discard,
            open_options: open.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let cases = [
            (l(None, &[]), "data UUID=u-1 /etc/luks/data luks"),
            (
                l(Some(true), &["--perf-no_read_workqueue"]),
                "data UUID=u-1 /etc/luks/data luks,discard,perf-no_read_workqueue",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(line(&v, "u-1"), want);
        }
        let table = [
            ("", "data UUID=a /etc/luks/data luks\n"),
            (
                "# comment\nother UUID=b none luks\n",
                "# comment\nother UUID=b none luks\ndata UUID=a /etc/luks/data luks\n",
            ),
            (
                "data UUID=old /etc/luks/data luks\nother UUID=b none\n",
                "other UUID=b none\ndata UUID=a /etc/luks/data luks\n",
            ),
        ];
        for (old, want) in table {
            assert_eq!(
                with_entry(old, "data", "data UUID=a /etc/luks/data luks"),
                want
            );
        }
    }

    #[test]
    fn key_and_crypttab_written_into_root() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        write_entry(&root, "data", b"key", "data UUID=a /etc/luks/data luks").unwrap();
        write_entry(&root, "data", b"key", "data UUID=a /etc/luks/data luks").unwrap();
        assert_eq!(
            std::fs::read(d.path().join("etc/luks/data")).unwrap(),
            b"key"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/crypttab")).unwrap(),
            "data UUID=a /etc/luks/data luks\n"
        );
    }
}
