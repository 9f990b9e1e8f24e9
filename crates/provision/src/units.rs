//! systemd units: contents and drop-ins under `/etc/systemd/system`, masking, the Ignition preset
//! file, and enablement symlinks from the unit's `[Install]` section (what
//! `systemctl --root ROOT enable|disable` does), so no running systemd is needed.

use crate::error::{AtPath, OpError};
use anyhow::{Context, Result};
use keel_ignition_config::types::Unit;
use keel_utils::batch::Batch;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where Ignition writes units and drop-ins.
pub const UNIT_DIR: &str = "etc/systemd/system";
/// The preset file Ignition writes.
pub const PRESET_FILE: &str = "etc/systemd/system-preset/20-ignition.preset";
/// Unit search path inside the root, highest priority first.
const SEARCH: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// The `[Install]` settings of a unit file that enablement uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Install {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    pub alias: Vec<String>,
    pub also: Vec<String>,
    pub default_instance: Option<String>,
}

/// Reads the `[Install]` section (continuation lines joined, lists split on whitespace).
pub fn parse_install(contents: &str) -> Install {
    let mut out = Install::default();
    let mut in_install = false;
    let mut logical = String::new();
    for raw in contents.lines() {
        let line = raw.trim();
        if let Some(rest) = line.strip_suffix('\\') {
            logical.push_str(rest);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        let l = l.trim();
        if l.starts_with('[') {
            in_install = l == "[Install]";
            continue;
        }
        if !in_install || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let words = || v.split_whitespace().map(str::to_string);
        match k.trim() {
            "WantedBy" => out.wanted_by.extend(words()),
            "RequiredBy" => out.required_by.extend(words()),
            "Alias" => out.alias.extend(words()),
            "Also" => out.also.extend(words()),
            "DefaultInstance" => out.default_instance = Some(v.trim().to_string()),
            _ => {}
        }
    }
    out
}

/// Applies every unit's contents, drop-ins and mask, writes the preset file and sets up
/// enablement symlinks.
pub fn apply(root: &Path, units: &[Unit]) -> Result<(), OpError> {
    let dir = root.join(UNIT_DIR);
    // Contents and drop-ins: one crash-safe batch; masks after it, so a mask wins.
    let batch = Batch::new();
    for (i, u) in units.iter().enumerate() {
        let at = format!("$.systemd.units.{i}");
        let name = u.name.as_deref().unwrap_or_default();
        if let Some(c) = &u.contents {
            stage(&batch, &dir.join(name), c.as_bytes())
                .at(&at, format!("writing unit {name:?}"))?;
        }
        for (j, d) in u.dropins.iter().enumerate() {
            let dname = d.name.as_deref().unwrap_or_default();
            if let Some(c) = &d.contents {
                stage(
                    &batch,
                    &dir.join(format!("{name}.d")).join(dname),
                    c.as_bytes(),
                )
                .at(
                    format!("{at}.dropins.{j}"),
                    format!("writing drop-in {dname:?} of {name:?}"),
                )?;
            }
        }
    }
    batch
        .commit(root)
        .with_context(|| format!("making unit files durable under {}", dir.display()))
        .at("$.systemd.units", "writing units")?;
    for (i, u) in units.iter().enumerate() {
        let at = format!("$.systemd.units.{i}");
        let name = u.name.as_deref().unwrap_or_default();
        match u.mask {
            Some(true) => mask(&dir.join(name)).at(&at, format!("masking {name:?}"))?,
            Some(false) => unmask(&dir.join(name)).at(&at, format!("unmasking {name:?}"))?,
            None => {}
        }
    }
    presets(root, units).at("$.systemd.units", "writing the preset file")?;
    for (i, u) in units.iter().enumerate() {
        let name = u.name.as_deref().unwrap_or_default();
        match u.enabled {
            Some(true) => enable(root, name)
                .at(format!("$.systemd.units.{i}"), format!("enabling {name:?}"))?,
            Some(false) => disable(root, name).at(
                format!("$.systemd.units.{i}"),
                format!("disabling {name:?}"),
            )?,
            None => {}
        }
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    Ok(())
}

fn stage(batch: &Batch, path: &Path, data: &[u8]) -> Result<()> {
    create_parent(path)?;
    batch
        .stage(path, 0o644, |f| f.write_all(data))
        .with_context(|| format!("writing {}", path.display()))
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    create_parent(path)?;
    keel_utils::fsutil::write_atomic(path, data, 0o644)
        .with_context(|| format!("writing {}", path.display()))
}

fn mask(path: &Path) -> Result<()> {
    if fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null")) {
        return Ok(());
    }
    if fs::symlink_metadata(path).is_ok() {
        fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    std::os::unix::fs::symlink("/dev/null", path)
        .with_context(|| format!("symlink {} -> /dev/null", path.display()))
}

fn unmask(path: &Path) -> Result<()> {
    if fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null")) {
        fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// The preset lines for these units, sorted: `enable NAME` / `disable NAME`, instances of one
/// template grouped on one line (`enable foo@.service a b`). (Ignition 2.14 writes them in Go
/// map order, which varies between runs; newer Ignition sorts them.)
pub fn preset_lines(units: &[Unit]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut templates: Vec<(String, bool, Vec<String>)> = Vec::new();
    for u in units {
        let (Some(name), Some(enabled)) = (u.name.as_deref(), u.enabled) else {
            continue;
        };
        let verb = if enabled { "enable" } else { "disable" };
        match instance_of(name) {
            Some((template, inst)) => match templates
                .iter_mut()
                .find(|(t, e, _)| *t == template && *e == enabled)
            {
                Some((_, _, insts)) => insts.push(inst),
                None => templates.push((template, enabled, vec![inst])),
            },
            None => lines.push(format!("{verb} {name}")),
        }
    }
    for (template, enabled, insts) in templates {
        lines.push(format!(
            "{} {template} {}",
            if enabled { "enable" } else { "disable" },
            insts.join(" ")
        ));
    }
    lines.sort();
    lines
}

/// `foo@bar.service` → (`foo@.service`, `bar`).
fn instance_of(name: &str) -> Option<(String, String)> {
    let (stem, ext) = name.rsplit_once('.')?;
    let (prefix, inst) = stem.split_once('@')?;
    (!inst.is_empty()).then(|| (format!("{prefix}@.{ext}"), inst.to_string()))
}

/// Appends the lines not already in the preset file (re-runs add nothing).
fn presets(root: &Path, units: &[Unit]) -> Result<()> {
    let lines = preset_lines(units);
    if lines.is_empty() {
        return Ok(());
    }
    let path = root.join(PRESET_FILE);
    let mut text = fs::read_to_string(&path).unwrap_or_default();
    for l in lines {
        if !text.lines().any(|existing| existing == l) {
            text.push_str(&l);
            text.push('\n');
        }
    }
    write(&path, text.as_bytes())
}

/// Finds the unit file (or template file for an instance) in the root's search path; returns
/// its path relative to the root (as `/etc/systemd/system/x.service`) and its contents.
fn find_unit(root: &Path, name: &str) -> Result<Option<(PathBuf, String)>> {
    let file_name = instance_of(name).map_or(name.to_string(), |(t, _)| t);
    for dir in SEARCH {
        let host = root.join(dir).join(&file_name);
        if fs::symlink_metadata(&host).is_ok() {
            let contents = fs::read_to_string(crate::rootfs::resolve(
                root,
                &format!("/{dir}/{file_name}"),
            )?)
            .unwrap_or_default();
            return Ok(Some((Path::new("/").join(dir).join(&file_name), contents)));
        }
    }
    Ok(None)
}

/// The symlinks `systemctl enable NAME` creates: (link path under the root, link target).
fn enablement_links(
    root: &Path,
    name: &str,
    seen: &mut Vec<String>,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    if seen.iter().any(|s| s == name) {
        return Ok(Vec::new());
    }
    seen.push(name.to_string());
    let Some((unit_path, contents)) = find_unit(root, name)? else {
        anyhow::bail!(
            "unit file {name} not found in the root's unit directories ({})",
            SEARCH.join(", ")
        );
    };
    let install = parse_install(&contents);
    let link_name = match (instance_of(name), &install.default_instance) {
        (Some(_), _) => name.to_string(),
        (None, Some(inst)) if name.contains("@.") => name.replacen("@.", &format!("@{inst}."), 1),
        _ => name.to_string(),
    };
    let etc = PathBuf::from(UNIT_DIR);
    let mut links = Vec::new();
    for (targets, suffix) in [
        (&install.wanted_by, "wants"),
        (&install.required_by, "requires"),
    ] {
        for t in targets {
            links.push((
                etc.join(format!("{t}.{suffix}")).join(&link_name),
                unit_path.clone(),
            ));
        }
    }
    for a in &install.alias {
        links.push((etc.join(a), unit_path.clone()));
    }
    for also in &install.also {
        links.extend(enablement_links(root, also, seen)?);
    }
    Ok(links)
}

fn enable(root: &Path, name: &str) -> Result<()> {
    for (link, target) in enablement_links(root, name, &mut Vec::new())? {
        let host = root.join(&link);
        if fs::read_link(&host).is_ok_and(|t| t == target) {
            continue;
        }
        if fs::symlink_metadata(&host).is_ok() {
            fs::remove_file(&host).with_context(|| format!("removing {}", host.display()))?;
        }
        if let Some(p) = host.parent() {
            fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        std::os::unix::fs::symlink(&target, &host)
            .with_context(|| format!("symlink {} -> {}", host.display(), target.display()))?;
    }
    Ok(())
}

fn disable(root: &Path, name: &str) -> Result<()> {
    let links = match enablement_links(root, name, &mut Vec::new()) {
        Ok(l) => l,
        // Disabling a unit that does not exist is not an error (systemctl says the same).
        Err(_) => return Ok(()),
    };
    for (link, target) in links {
        let host = root.join(&link);
        if fs::read_link(&host).is_ok_and(|t| t == target) {
            fs::remove_file(&host).with_context(|| format!("removing {}", host.display()))?;
            // Like systemctl, drop a `.wants`/`.requires` directory left empty.
            if let Some(dir) = host.parent().filter(|d| {
                d.extension()
                    .is_some_and(|e| e == "wants" || e == "requires")
            }) {
                let _ = fs::remove_dir(dir);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_section_table() {
        let cases: &[(&str, Install)] = &[
            ("[Unit]\nWantedBy=no\n", Install::default()),
            (
                "[Service]\nExecStart=x\n[Install]\nWantedBy=multi-user.target \\\n  default.target\nAlias=a.service\n",
                Install { wanted_by: vec!["multi-user.target".into(), "default.target".into()], alias: vec!["a.service".into()], ..Default::default() },
            ),
            ("[Install]\nRequiredBy=x.target\nAlso=b.service\n# WantedBy=c\n", Install { required_by: vec!["x.target".into()], also: vec!["b.service".into()], ..Default::default() }),
            ("[Install]\nDefaultInstance=tty1\n", Install { default_instance: Some("tty1".into()), ..Default::default() }),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_install(text), want, "{text}");
        }
    }

    #[test]
    fn preset_lines_group_instances() {
        let u = |name: &str, enabled: Option<bool>| Unit {
            name: Some(name.into()),
            enabled,
            ..Default::default()
        };
        let units = [
            u("a.service", Some(true)),
            u("b.timer", Some(false)),
            u("c.service", None),
            u("x@1.service", Some(true)),
            u("x@2.service", Some(true)),
        ];
        assert_eq!(
            preset_lines(&units),
            [
                "disable b.timer",
                "enable a.service",
                "enable x@.service 1 2"
            ]
        );
    }

    #[test]
    fn enable_and_disable_in_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("lib/systemd/system")).unwrap();
        fs::write(
            root.join("lib/systemd/system/b.service"),
            "[Install]\nRequiredBy=basic.target\n",
        )
        .unwrap();
        let units = vec![Unit {
            name: Some("a.service".into()),
            enabled: Some(true),
            contents: Some("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=aa.service\nAlso=b.service\n".into()),
            ..Default::default()
        }];
        apply(root, &units).unwrap();
        apply(root, &units).unwrap();
        let link = |p: &str| fs::read_link(root.join(UNIT_DIR).join(p)).unwrap();
        assert_eq!(
            link("multi-user.target.wants/a.service"),
            Path::new("/etc/systemd/system/a.service")
        );
        assert_eq!(
            link("aa.service"),
            Path::new("/etc/systemd/system/a.service")
        );
        assert_eq!(
            link("basic.target.requires/b.service"),
            Path::new("/lib/systemd/system/b.service")
        );
        assert_eq!(
            fs::read_to_string(root.join(PRESET_FILE)).unwrap(),
            "enable a.service\n"
        );
        let mut off = units.clone();
        off[0].enabled = Some(false);
        apply(root, &off).unwrap();
        assert!(fs::symlink_metadata(
            root.join(UNIT_DIR)
                .join("multi-user.target.wants/a.service")
        )
        .is_err());
        assert_eq!(
            fs::read_to_string(root.join(PRESET_FILE)).unwrap(),
            "enable a.service\ndisable a.service\n"
        );
    }
}
