//! Storage rules: disks and partitions, RAID, LUKS, filesystems, and the files, directories and
//! links that share one path key space.

use super::resource::{self, Use};
use super::Checker;
use crate::report::JsonPath;
use crate::types::{Disk, Filesystem, Luks, NodeGroup, NodeUser, Storage};
use std::collections::{HashMap, HashSet};

pub fn check(c: &mut Checker, s: &Storage, p: &JsonPath) {
    for (i, d) in s.disks.iter().enumerate() {
        check_disk(c, d, &p.key("disks").index(i));
    }
    c.duplicates(
        p.key("disks"),
        s.disks.iter().map(|d| d.device.clone().unwrap_or_default()),
    );
    for (i, r) in s.raid.iter().enumerate() {
        let rp = p.key("raid").index(i);
        if r.devices.is_empty() {
            c.error(&rp.key("devices"), "raid devices required");
        }
        let level = r.level.as_deref().unwrap_or("");
        match level {
            "" => c.error(&rp.key("level"), "raid level is required"),
            "linear" | "raid0" | "0" | "stripe" if r.spares.unwrap_or(0) != 0 => c.error(
                &rp.key("spares"),
                "spares unsupported for linear and raid0 arrays",
            ),
            "linear" | "raid0" | "0" | "stripe" | "raid1" | "1" | "mirror" | "raid4" | "4"
            | "raid5" | "5" | "raid6" | "6" | "raid10" | "10" => {}
            _ => c.error(&rp.key("level"), "unrecognized raid level"),
        }
        for (j, dev) in r.devices.iter().enumerate() {
            check_path(c, Some(dev.as_str()), &rp.key("devices").index(j));
        }
        c.duplicates(rp.key("devices"), r.devices.iter().cloned());
    }
    c.duplicates(
        p.key("raid"),
        s.raid.iter().map(|r| r.name.clone().unwrap_or_default()),
    );
    for (i, l) in s.luks.iter().enumerate() {
        check_luks(c, l, &p.key("luks").index(i));
    }
    c.duplicates(
        p.key("luks"),
        s.luks.iter().map(|l| l.name.clone().unwrap_or_default()),
    );
    for (i, f) in s.filesystems.iter().enumerate() {
        check_filesystem(c, f, &p.key("filesystems").index(i));
    }
    c.duplicates(
        p.key("filesystems"),
        s.filesystems
            .iter()
            .map(|f| f.device.clone().unwrap_or_default()),
    );
    check_nodes(c, s, p);
}

/// `path not specified` / `path not absolute` / `path is not fully simplified`.
pub fn path_problem(path: Option<&str>) -> Option<&'static str> {
    match path {
        None | Some("") => Some("path not specified"),
        Some(p) if !p.starts_with('/') => Some("path not absolute"),
        Some(p) if !is_clean(p) => Some("path is not fully simplified"),
        _ => None,
    }
}

fn check_path(c: &mut Checker, path: Option<&str>, at: &JsonPath) {
    if let Some(msg) = path_problem(path) {
        c.error(at, msg);
    }
}

/// Whether an absolute path is already in `path.Clean` form.
fn is_clean(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    !p.ends_with('/')
        && p[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn check_disk(c: &mut Checker, d: &Disk, p: &JsonPath) {
    match d.device.as_deref() {
        None | Some("") => c.error(&p.key("device"), "disk device is required"),
        dev => check_path(c, dev, &p.key("device")),
    }
    let pp = p.key("partitions");
    let mut numbers = HashSet::new();
    let mut labels = HashSet::new();
    for (i, part) in d.partitions.iter().enumerate() {
        let at = pp.index(i);
        if let Some(label) = &part.label {
            if label.chars().count() > 36 {
                c.error(
                    &at.key("label"),
                    "partition labels may not exceed 36 characters",
                );
            }
            if label.contains(':') {
                c.warn(
                    &at.key("label"),
                    "partition label will be truncated to text before the colon",
                );
            }
            if !labels.insert(label.clone()) {
                c.error(
                    &at.key("label"),
                    "cannot use the same partition label twice",
                );
            }
        }
        let number = part.number.unwrap_or(0);
        if number != 0 && !numbers.insert(number) {
            c.error(&at.key("number"), "partition numbers collide");
        }
        for (key, v) in [("typeGuid", &part.type_guid), ("guid", &part.guid)] {
            if v.as_deref().is_some_and(|g| !g.is_empty() && !is_guid(g)) {
                c.error(
                    &at.key(key),
                    "doesn't match the form \"01234567-89AB-CDEF-EDCB-A98765432101\"",
                );
            }
        }
        if part.should_exist == Some(false) {
            let others = part.label.is_some()
                || part.size_mib.is_some()
                || part.start_mib.is_some()
                || part.type_guid.is_some()
                || part.guid.is_some()
                || part.resize.is_some();
            if others {
                c.error(
                    &at,
                    "shouldExist specified false with other options also specified",
                );
            }
        }
        if number == 0 && part.label.is_none() {
            c.error(&at, "a partition number >= 1 or a label must be specified");
        }
    }
    let any_delete = d.partitions.iter().any(|p| p.should_exist == Some(false));
    // Partitions numbered 0 get the next free number, which deleted partitions would change.
    let any_auto_numbered = d.partitions.iter().any(|p| p.number.unwrap_or(0) == 0);
    if any_delete && any_auto_numbered {
        c.error(
            &pp,
            "shouldExist is false for a partition and other partition(s) has start or size 0",
        );
    }
    check_overlap(c, d, &pp);
}

fn check_overlap(c: &mut Checker, d: &Disk, pp: &JsonPath) {
    let spans: Vec<(usize, i64, i64)> = d
        .partitions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match (p.start_mib, p.size_mib) {
            (Some(s), Some(z)) if s > 0 && z > 0 => Some((i, s, s + z)),
            _ => None,
        })
        .collect();
    for (k, a) in spans.iter().enumerate() {
        if spans[..k].iter().any(|b| a.1 < b.2 && b.1 < a.2) {
            c.error(&pp.index(a.0), "partitions overlap");
        }
    }
}

fn is_guid(g: &str) -> bool {
    let parts: Vec<&str> = g.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(s, n)| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_luks(c: &mut Checker, l: &Luks, p: &JsonPath) {
    if l.name.as_deref().is_some_and(|n| n.contains('/')) {
        c.error(&p.key("name"), "device names cannot contain slashes");
    }
    if l.label.as_deref().is_some_and(|s| s.chars().count() > 47) {
        c.error(
            &p.key("label"),
            "luks device labels cannot be longer than 47 characters",
        );
    }
    match l.device.as_deref() {
        None | Some("") => c.error(&p.key("device"), "disk device is required"),
        dev => check_path(c, dev, &p.key("device")),
    }
    if let Some(k) = &l.key_file {
        resource::check(c, k, &p.key("keyFile"), Use::Optional);
    }
    if let Some(cl) = &l.clevis {
        let cp = p.key("clevis");
        if let Some(custom) = &cl.custom {
            if cl.tpm2 == Some(true) || !cl.tang.is_empty() || cl.threshold.is_some() {
                c.error(
                    &cp.key("custom"),
                    "cannot use custom clevis config with tpm2, tang, or threshold",
                );
            }
            let pin = custom.pin.as_deref().unwrap_or("");
            if !pin.is_empty() && c.minor() < 6 && !matches!(pin, "tpm2" | "tang" | "sss") {
                c.error(&cp.key("custom").key("pin"), "unsupported clevis pin");
            }
        }
        for (i, t) in cl.tang.iter().enumerate() {
            let tp = cp.key("tang").index(i);
            match t.url.as_deref() {
                None | Some("") => c.error(&tp.key("url"), "url is required"),
                Some(u) if !matches!(resource::scheme_of(u).as_deref(), Some("http" | "https")) => {
                    c.error(&tp.key("url"), "invalid url scheme")
                }
                _ => {}
            }
            if t.thumbprint.as_deref().unwrap_or("").is_empty() {
                c.error(&tp.key("thumbprint"), "thumbprint is required");
            }
            if let Some(adv) = t.advertisement.as_deref().filter(|a| !a.is_empty()) {
                if crate::json::parse(adv.as_bytes()).is_err() {
                    c.error(&tp.key("advertisement"), "advertisement is not valid JSON");
                }
            }
        }
        c.duplicates(
            cp.key("tang"),
            cl.tang.iter().map(|t| t.url.clone().unwrap_or_default()),
        );
    }
    if l.cex.as_ref().is_some_and(|x| x.enabled == Some(true))
        && (l.clevis.is_some() || l.key_file.is_some())
    {
        c.error(
            &p.key("cex"),
            "cex cannot be used with clevis or a key file",
        );
    }
}

fn check_filesystem(c: &mut Checker, f: &Filesystem, p: &JsonPath) {
    check_path(c, f.device.as_deref(), &p.key("device"));
    if let Some(path) = &f.path {
        check_path(c, Some(path.as_str()), &p.key("path"));
    }
    let format = f.format.as_deref().unwrap_or("");
    let formats: &[&str] = if c.minor() >= 3 {
        &["ext4", "btrfs", "xfs", "vfat", "swap", "none"]
    } else {
        &["ext4", "btrfs", "xfs", "vfat", "swap"]
    };
    if format.is_empty() {
        let others = f.path.is_some()
            || f.label.is_some()
            || f.uuid.is_some()
            || f.wipe_filesystem == Some(true)
            || !f.options.is_empty()
            || !f.mount_options.is_empty();
        if others {
            c.error(&p.key("format"), "format cannot be empty when path, label, uuid, wipeFilesystem, options, or mountOptions is specified");
        }
        if f.label.is_some() {
            c.error(
                &p.key("label"),
                "filesystem must specify format if label is specified",
            );
        }
    } else if !formats.contains(&format) {
        c.error(&p.key("format"), "invalid filesystem format");
    }
    if let Some(label) = &f.label {
        let max = match format {
            "ext4" => Some(16),
            "btrfs" => Some(256),
            "xfs" => Some(12),
            "swap" => Some(15),
            "vfat" => Some(11),
            _ => None,
        };
        if let Some(max) = max.filter(|m| label.chars().count() > *m) {
            c.error(
                &p.key("label"),
                &format!(
                    "filesystem labels cannot be longer than {max} characters when using {format}"
                ),
            );
        }
    }
}

fn check_owner(c: &mut Checker, user: Option<&NodeUser>, group: Option<&NodeGroup>, p: &JsonPath) {
    super::passwd::check_owner_id(c, user.and_then(|u| u.id), &p.key("user").key("id"));
    super::passwd::check_owner_id(c, group.and_then(|g| g.id), &p.key("group").key("id"));
    if user.is_some_and(|u| u.id.is_some() && u.name.as_deref().is_some_and(|n| !n.is_empty())) {
        c.error(&p.key("user"), "cannot set both id and name");
    }
    if group.is_some_and(|g| g.id.is_some() && g.name.as_deref().is_some_and(|n| !n.is_empty())) {
        c.error(&p.key("group"), "cannot set both id and name");
    }
}

fn check_mode(c: &mut Checker, mode: Option<i64>, p: &JsonPath) {
    let Some(m) = mode else { return };
    if !(0..=0o7777).contains(&m) {
        c.error(&p.key("mode"), "illegal file mode");
    } else if m & 0o7000 != 0 && !c.version().experimental {
        let msg = if c.minor() < 4 {
            "setuid/setgid/sticky bits are not supported in spec versions older than 3.4.0"
        } else {
            "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0"
        };
        c.warn(&p.key("mode"), msg);
    }
}

/// Files, directories and links: per-entry rules, one shared path key space, and no path that
/// goes through a link (symbolic or hard, as Ignition checks) defined in the same config.
fn check_nodes(c: &mut Checker, s: &Storage, p: &JsonPath) {
    let mut seen: HashSet<&str> = HashSet::new();
    let links: HashSet<&str> = s.links.iter().filter_map(|l| l.path.as_deref()).collect();
    let dirs: HashSet<&str> = s
        .directories
        .iter()
        .filter_map(|d| d.path.as_deref())
        .collect();
    let mut entries: Vec<(JsonPath, Option<&String>, &str)> = Vec::new();
    for (i, f) in s.files.iter().enumerate() {
        let at = p.key("files").index(i);
        check_owner(c, f.user.as_ref(), f.group.as_ref(), &at);
        check_mode(c, f.mode, &at);
        let has_source = f.contents.as_ref().is_some_and(|r| r.source.is_some());
        if f.overwrite == Some(true) && !has_source {
            c.error(
                &at.key("overwrite"),
                "overwrite must be false if source is unspecified",
            );
        }
        if let Some(r) = &f.contents {
            resource::check(c, r, &at.key("contents"), Use::Optional);
        }
        for (j, r) in f.append.iter().enumerate() {
            resource::check(c, r, &at.key("append").index(j), Use::Optional);
        }
        entries.push((at, f.path.as_ref(), "file"));
    }
    for (i, d) in s.directories.iter().enumerate() {
        let at = p.key("directories").index(i);
        check_owner(c, d.user.as_ref(), d.group.as_ref(), &at);
        check_mode(c, d.mode, &at);
        entries.push((at, d.path.as_ref(), "directory"));
    }
    let mut link_targets: HashMap<usize, &str> = HashMap::new();
    for (i, l) in s.links.iter().enumerate() {
        let at = p.key("links").index(i);
        check_owner(c, l.user.as_ref(), l.group.as_ref(), &at);
        match l.target.as_deref() {
            None | Some("") => c.error(&at.key("target"), "link target is required"),
            Some(t) => {
                link_targets.insert(i, t);
            }
        }
        entries.push((at, l.path.as_ref(), "link"));
    }
    for (i, l) in s.links.iter().enumerate() {
        if l.hard == Some(true) && link_targets.get(&i).is_some_and(|t| dirs.contains(t)) {
            c.error(
                &p.key("links").index(i).key("target"),
                "hard link target is a directory",
            );
        }
    }
    for (at, path, kind) in entries {
        if let Some(msg) = path_problem(path.map(String::as_str)) {
            c.error(&at.key("path"), msg);
            continue;
        }
        let path = path.map(String::as_str).unwrap_or_default();
        if !seen.insert(path) {
            c.error(&at, "duplicate entry defined");
        }
        let through_link = path
            .match_indices('/')
            .skip(1)
            .any(|(k, _)| links.contains(&path[..k]));
        if through_link {
            c.error(
                &at.key("path"),
                &format!("{kind} path includes link in config"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("/etc/hostname"), None),
            (Some("/"), None),
            (None, Some("path not specified")),
            (Some(""), Some("path not specified")),
            (Some("etc/x"), Some("path not absolute")),
            (Some("/etc//x"), Some("path is not fully simplified")),
            (Some("/etc/../x"), Some("path is not fully simplified")),
            (Some("/etc/x/"), Some("path is not fully simplified")),
            (Some("/etc/./x"), Some("path is not fully simplified")),
        ];
        for (input, want) in cases {
            assert_eq!(path_problem(*input), *want, "{input:?}");
        }
    }

    #[test]
    fn guids() {
        for (g, ok) in [
            ("f14984bc-6f08-4885-b668-526263469a00", true),
            ("F14984BC-6F08-4885-B668-526263469A00", true),
            ("f14984bc6f084885b668526263469a00", false),
            ("zz", false),
        ] {
            assert_eq!(is_guid(g), ok, "{g}");
        }
    }
}
