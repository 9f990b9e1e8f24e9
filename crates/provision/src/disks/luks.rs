//! LUKS2 volumes with cryptsetup: formatted (or reused when `wipeVolume` is false and the
//! label/UUID match), then opened as `/dev/mapper/<name>`. The key comes from `keyFile`, or is
//! generated; it is kept in the key directory so the files stage can store it in the root.

use crate::resource::Fetcher;
use anyhow::{bail, Context, Result};
use keel_ignition_config::types::Luks;
use keel_utils::cmd;
use std::path::Path;
use std::process::Command;

/// The `cryptsetup luksFormat` arguments (before the device).
fn format_args(l: &Luks, key: &Path) -> Vec<String> {
    let mut a = vec![
        "luksFormat".to_string(),
        "--type".into(),
        "luks2".into(),
        "--batch-mode".into(),
        "--key-file".into(),
        key.display().to_string(),
    ];
    if let Some(label) = &l.label {
        a.extend(["--label".into(), label.clone()]);
    }
    if let Some(uuid) = &l.uuid {
        a.extend(["--uuid".into(), uuid.clone()]);
    }
    a.extend(l.options.iter().cloned());
    a
}

/// Whether an existing LUKS volume can be reused as is.
fn reusable(l: &Luks, found: &super::Probe) -> Result<bool> {
    if found.fs_type.is_empty() {
        return Ok(false);
    }
    if l.wipe_volume == Some(true) {
        return Ok(false);
    }
    let matches = found.fs_type == "crypto_LUKS"
        && l.label.as_ref().is_none_or(|x| *x == found.label)
        && l.uuid
            .as_ref()
            .is_none_or(|x| x.eq_ignore_ascii_case(&found.uuid));
    if !matches {
        bail!(
            "the device holds {} (label {:?}, uuid {}) that does not match and wipeVolume is false",
            found.fs_type,
            found.label,
            found.uuid
        );
    }
    Ok(true)
}

/// Formats (unless reusable) and opens the volume. `key_dir` keeps `<name>` key files.
pub fn apply(l: &Luks, fetcher: &Fetcher, key_dir: &Path) -> Result<()> {
    if !l
        .clevis
        .as_ref()
        .is_none_or(|c| c.tang.is_empty() && c.tpm2 != Some(true) && c.custom.is_none())
    {
        bail!("clevis (tpm2/tang) bindings are not supported by keel yet; use keyFile");
    }
    let name = l.name.as_deref().unwrap_or_default();
    let mapped = Path::new("/dev/mapper").join(name);
    if mapped.exists() {
        tracing::info!("{} is already open", mapped.display());
        return Ok(());
    }
    let dev = super::wait_for(l.device.as_deref().unwrap_or_default())?;
    let key = key_dir.join(name);
    if !key.exists() {
        let data = match l.key_file.as_ref().filter(|k| k.source.is_some()) {
            Some(k) => fetcher.fetch(k).context("fetching keyFile")?,
            None => random_key()?,
        };
        std::fs::create_dir_all(key_dir)
            .with_context(|| format!("creating {}", key_dir.display()))?;
        keel_utils::fsutil::write_atomic(&key, &data, 0o400)
            .with_context(|| format!("writing {}", key.display()))?;
    }
    if !reusable(l, &super::probe(&dev)?)? {
        cmd::run(
            Command::new("cryptsetup")
                .args(format_args(l, &key))
                .arg(&dev),
        )?;
    }
    let mut open = Command::new("cryptsetup");
    open.args(["open", "--type", "luks2", "--key-file"])
        .arg(&key)
        .args(&l.open_options);
    if l.discard == Some(true) {
        open.arg("--allow-discards");
    }
    cmd::run(open.arg(&dev).arg(name))?;
    super::wait_for(&mapped.display().to_string())?;
    Ok(())
}

fn random_key() -> Result<Vec<u8>> {
    let mut key = vec![0u8; 64];
    rustix::rand::getrandom(&mut key, rustix::rand::GetRandomFlags::empty())
        .context("reading random bytes for a LUKS key")?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::super::Probe;
    use super::*;

    #[test]
    fn format_args_table() {
        let l = Luks {
            name: Some("data".into()),
            label: Some("L".into()),
            uuid: Some("u".into()),
            options: vec!["--pbkdf=pbkdf2".into()],
            ..Default::default()
        };
        assert_eq!(
            format_args(&l, Path::new("/k")).join(" "),
            "luksFormat --type luks2 --batch-mode --key-file /k --label L --uuid u --pbkdf=pbkdf2"
        );
    }

    #[test]
    fn reuse_table() {
        let luks = |label: Option<&str>, wipe: Option<bool>| Luks {
            label: label.map(Into::into),
            wipe_volume: wipe,
            ..Default::default()
        };
        let found = |t: &str, l: &str| Probe {
            fs_type: t.into(),
            label: l.into(),
            uuid: "x".into(),
        };
        let cases: Vec<(Luks, Probe, Result<bool, &str>)> = vec![
            (luks(None, None), Probe::default(), Ok(false)),
            (luks(Some("a"), None), found("crypto_LUKS", "a"), Ok(true)),
            (
                luks(Some("a"), Some(true)),
                found("crypto_LUKS", "a"),
                Ok(false),
            ),
            (
                luks(Some("a"), None),
                found("crypto_LUKS", "b"),
                Err("does not match"),
            ),
            (luks(None, None), found("ext4", ""), Err("does not match")),
        ];
        for (l, p, want) in cases {
            match (reusable(&l, &p), want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e}"),
                (g, w) => panic!("got {g:?}, want {w:?}"),
            }
        }
    }
}
