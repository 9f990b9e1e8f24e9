//! systemd units: contents and drop-ins under `/etc/systemd/system`, masking, the Ignition preset
//! file, and enablement symlinks from the unit's `[Install]` section (what
//! `systemctl --root ROOT enable|disable` does), so no running systemd is needed.
//!
//! Every path is resolved beneath the root ([`crate::beneath`]); unit, drop-in and `[Install]`
//! names must each be one file name (validation refuses others; this is checked again here for
//! unit files that come from the root rather than the config).

use crate::beneath::{check_name, Batch, Root};
use crate::error::{AtPath, OpError};
use anyhow::{Context, Result};
use keel_ignition_config::types::Unit;
use keel_ignition_config::validate::parse_install;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where Ignition writes units and drop-ins.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The preset file Ignition writes.
pub const PRESET_FILE: &str = "/etc/systemd/system-preset/20-ignition.preset";
/// Unit search path inside the root, highest priority first.
const SEARCH: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// `/etc/systemd/system/NAME` for a unit name that is one file name.
fn unit_path(name: &str) -> Result<String> {
    check_name(name).context("unit name")?;
    Ok(format!("{UNIT_DIR}/{name}"))
}

/// Applies every unit's contents, drop-ins and mask, writes the preset file and sets up
/// enablement symlinks.
pub fn apply(root: &Root, units: &[Unit]) -> Result<(), OpError> {
    // Contents and drop-ins: one crash-safe batch; masks after it, so a mask wins.
    let batch = Batch::new(root);
    for (i, u) in units.iter().enumerate() {
        let at = format!("$.systemd.units.{i}");
        let name = u.name.as_deref().unwrap_or_default();
        if let Some(c) = &u.contents {
            unit_path(name)
                .and_then(|p| stage(&batch, &p, c.as_bytes()))
                .at(&at, format!("writing unit {name:?}"))?;
        }
        for (j, d) in u.dropins.iter().enumerate() {
            let dname = d.name.as_deref().unwrap_or_default();
            if let Some(c) = &d.contents {
                unit_path(name)
                    .and_then(|p| {
                        check_name(dname).context("drop-in name")?;
                        stage(&batch, &format!("{p}.d/{dname}"), c.as_bytes())
                    })
                    .at(
                        format!("{at}.dropins.{j}"),
                        format!("writing drop-in {dname:?} of {name:?}"),
                    )?;
            }
        }
    }
    batch
        .commit()
        .with_context(|| format!("making unit files durable under {}", root.path().display()))
        .at("$.systemd.units", "writing units")?;
    for (i, u) in units.iter().enumerate() {
        let at = format!("$.systemd.units.{i}");
        let name = u.name.as_deref().unwrap_or_default();
        match u.mask {
            Some(true) => mask(root, name).at(&at, format!("masking {name:?}"))?,
            Some(false) => unmask(root, name).at(&at, format!("unmasking {name:?}"))?,
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

fn stage(batch: &Batch, path: &str, data: &[u8]) -> Result<()> {
    batch.stage(path, 0o644, |f| f.write_all(data).map_err(Into::into))
}

const DEV_NULL: &str = "/dev/null";

fn mask(root: &Root, name: &str) -> Result<()> {
    let path = unit_path(name)?;
    let (dir, n) = root.parent(&path)?;
    if dir.read_link(n).is_some_and(|t| t == Path::new(DEV_NULL)) {
        return Ok(());
    }
    if dir.stat(n)?.is_some() {
        dir.remove_file(n)?;
    }
    dir.symlink(Path::new(DEV_NULL), n)
}

fn unmask(root: &Root, name: &str) -> Result<()> {
    let path = unit_path(name)?;
    if let Some((dir, n)) = root.find_parent(&path)? {
        if dir.read_link(n).is_some_and(|t| t == Path::new(DEV_NULL)) {
            dir.remove_file(n)?;
        }
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
fn presets(root: &Root, units: &[Unit]) -> Result<()> {
    let lines = preset_lines(units);
    if lines.is_empty() {
        return Ok(());
    }
    let old = root.read(PRESET_FILE)?.unwrap_or_default();
    let mut text = String::from_utf8_lossy(&old).into_owned();
    for l in lines {
        if !text.lines().any(|existing| existing == l) {
            text.push_str(&l);
            text.push('\n');
        }
    }
    root.write_atomic(PRESET_FILE, text.as_bytes(), 0o644)
}

/// Finds the unit file (or template file for an instance) in the root's search path; returns
/// its path in the root (as `/etc/systemd/system/x.service`) and its contents.
fn find_unit(root: &Root, name: &str) -> Result<Option<(PathBuf, String)>> {
    let file_name = instance_of(name).map_or(name.to_string(), |(t, _)| t);
    check_name(&file_name).context("unit name")?;
    for dir in SEARCH {
        let Some(d) = root.find_dir(dir)? else {
            continue;
        };
        if d.stat(&file_name)?.is_some() {
            let path = format!("{dir}/{file_name}");
            let contents = root.read(&path).ok().flatten().unwrap_or_default();
            return Ok(Some((
                PathBuf::from(path),
                String::from_utf8_lossy(&contents).into_owned(),
            )));
        }
    }
    Ok(None)
}

/// An `[Install]` value used as a file name: one name, no `..` in it.
fn install_name<'a>(unit: &Path, key: &str, value: &'a str) -> Result<&'a str> {
    if value.contains("..") || check_name(value).is_err() {
        anyhow::bail!(
            "{}: [Install] {key}={value} is not a unit name (it has \"/\" or \"..\"); fix the unit file",
            unit.display()
        );
    }
    Ok(value)
}

/// A symlink `systemctl enable` creates: the directory and name of the link, and its target.
type EnablementLink = (String, String, PathBuf);

/// The symlinks `systemctl enable NAME` creates.
fn enablement_links(
    root: &Root,
    name: &str,
    seen: &mut Vec<String>,
) -> Result<Vec<EnablementLink>> {
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
        (None, Some(inst)) if name.contains("@.") => {
            install_name(&unit_path, "DefaultInstance", inst)?;
            name.replacen("@.", &format!("@{inst}."), 1)
        }
        _ => name.to_string(),
    };
    let mut links = Vec::new();
    for (targets, key, suffix) in [
        (&install.wanted_by, "WantedBy", "wants"),
        (&install.required_by, "RequiredBy", "requires"),
    ] {
        for t in targets {
            let t = install_name(&unit_path, key, t)?;
            links.push((
                format!("{UNIT_DIR}/{t}.{suffix}"),
                link_name.clone(),
                unit_path.clone(),
            ));
        }
    }
    for a in &install.alias {
        let a = install_name(&unit_path, "Alias", a)?;
        links.push((UNIT_DIR.to_string(), a.to_string(), unit_path.clone()));
    }
    for also in &install.also {
        let also = install_name(&unit_path, "Also", also)?;
        links.extend(enablement_links(root, also, seen)?);
    }
    Ok(links)
}

fn enable(root: &Root, name: &str) -> Result<()> {
    for (dir, link, target) in enablement_links(root, name, &mut Vec::new())? {
        let dir = root.dir(&dir)?;
        if dir.read_link(&link).is_some_and(|t| t == target) {
            continue;
        }
        if dir.stat(&link)?.is_some() {
            dir.remove_file(&link)?;
        }
        dir.symlink(&target, &link)?;
    }
    Ok(())
}

fn disable(root: &Root, name: &str) -> Result<()> {
    let links = match enablement_links(root, name, &mut Vec::new()) {
        Ok(l) => l,
        // Disabling a unit that does not exist is not an error (systemctl says the same).
        Err(_) => return Ok(()),
    };
    for (dir_path, link, target) in links {
        let Some(dir) = root.find_dir(&dir_path)? else {
            continue;
        };
        if dir.read_link(&link).is_some_and(|t| t == target) {
            dir.remove_file(&link)?;
            // Like systemctl, drop a `.wants`/`.requires` directory left empty.
            if dir_path.ends_with(".wants") || dir_path.ends_with(".requires") {
                if let Some((parent, n)) = root.find_parent(&dir_path)? {
                    parent.remove_empty_dir(n);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        let r = Root::open(root).unwrap();
        apply(&r, &units).unwrap();
        apply(&r, &units).unwrap();
        let unit_dir = root.join(UNIT_DIR.trim_start_matches('/'));
        let preset = root.join(PRESET_FILE.trim_start_matches('/'));
        let link = |p: &str| fs::read_link(unit_dir.join(p)).unwrap();
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
        assert_eq!(fs::read_to_string(&preset).unwrap(), "enable a.service\n");
        let mut off = units.clone();
        off[0].enabled = Some(false);
        apply(&r, &off).unwrap();
        assert!(fs::symlink_metadata(unit_dir.join("multi-user.target.wants/a.service")).is_err());
        assert_eq!(
            fs::read_to_string(&preset).unwrap(),
            "enable a.service\ndisable a.service\n"
        );
    }
}
