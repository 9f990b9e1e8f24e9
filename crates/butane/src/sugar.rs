//! Expansions that produce whole config sections: `boot_device` (mirrored and/or LUKS root),
//! `grub.users`, `with_mount_unit` units and `storage.trees`. Each builds a config that the
//! user's config is then merged over, so explicit user entries override generated ones.

use crate::dataurl;
use crate::desugar::Desugar;
use keel_ignition_config::tree::{Node, Pos, Value};
use keel_ignition_config::types::{
    Clevis, Config, Disk, File, Filesystem, Link, Luks, Partition, Raid, Resource, Storage,
    Systemd, Tang, Unit,
};
use keel_ignition_config::{JsonPath, Severity};
use std::path::Path;

const BIOS_GUID: &str = "21686148-6449-6E6F-744E-656564454649";
const PREP_GUID: &str = "9E1A2D38-C612-4316-AA26-8B49521E5A8B";
const ESP_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const RESERVED_GUID: &str = "8DA63339-0007-60C0-C436-083AC8230908";

/// Typed reads from a sugar node, reporting type errors.
struct Reader<'d, 'a> {
    d: &'d mut Desugar<'a>,
}

impl Reader<'_, '_> {
    fn field<'n>(&mut self, node: &'n Node, key: &str, path: &JsonPath) -> Option<&'n Node> {
        match &node.value {
            Value::Object(_) => node.get(key).filter(|n| n.value != Value::Null),
            Value::Null => None,
            _ => {
                self.d
                    .report(Severity::Error, path, node.pos, "expected a mapping");
                None
            }
        }
    }

    fn string(&mut self, node: &Node, key: &str, path: &JsonPath) -> Option<String> {
        match self.field(node, key, path).map(|n| (&n.value, n.pos)) {
            Some((Value::String(s), _)) => Some(s.clone()),
            Some((_, pos)) => {
                self.d
                    .report(Severity::Error, &path.key(key), pos, "expected a string");
                None
            }
            None => None,
        }
    }

    fn boolean(&mut self, node: &Node, key: &str, path: &JsonPath) -> Option<bool> {
        match self.field(node, key, path).map(|n| (&n.value, n.pos)) {
            Some((Value::Bool(b), _)) => Some(*b),
            Some((_, pos)) => {
                self.d.report(
                    Severity::Error,
                    &path.key(key),
                    pos,
                    "expected true or false",
                );
                None
            }
            None => None,
        }
    }

    fn int(&mut self, node: &Node, key: &str, path: &JsonPath) -> Option<i64> {
        match self.field(node, key, path).map(|n| (&n.value, n.pos)) {
            Some((Value::Number(s), pos)) => s
                .parse()
                .map_err(|_| {
                    self.d
                        .report(Severity::Error, &path.key(key), pos, "expected an integer")
                })
                .ok(),
            Some((_, pos)) => {
                self.d
                    .report(Severity::Error, &path.key(key), pos, "expected an integer");
                None
            }
            None => None,
        }
    }

    fn list<'n>(&mut self, node: &'n Node, key: &str, path: &JsonPath) -> &'n [Node] {
        match self.field(node, key, path) {
            Some(Node {
                value: Value::Array(items),
                ..
            }) => items,
            Some(n) => {
                self.d
                    .report(Severity::Error, &path.key(key), n.pos, "expected a list");
                &[]
            }
            None => &[],
        }
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// `boot_device`: partitions, RAID, LUKS and filesystems for a mirrored and/or encrypted root.
pub fn boot_device(d: &mut Desugar, node: &Node, path: &JsonPath) -> Config {
    let level = d.target.level;
    let mut r = Reader { d };
    let layout = r
        .string(node, "layout", path)
        .unwrap_or_else(|| "x86_64".into());
    let luks_node = r.field(node, "luks", path).cloned();
    let mirror_node = r.field(node, "mirror", path).cloned();
    let lp = path.key("luks");
    let (mut tpm2, mut tang, mut threshold, mut discard, mut device, mut cex) =
        (None, Vec::new(), None, None, None, false);
    if let Some(l) = &luks_node {
        tpm2 = r.boolean(l, "tpm2", &lp);
        threshold = r.int(l, "threshold", &lp);
        if level >= 5 {
            discard = r.boolean(l, "discard", &lp);
        }
        device = r.string(l, "device", &lp);
        if level >= 6 {
            cex = r
                .field(l, "cex", &lp)
                .cloned()
                .is_some_and(|c| r.boolean(&c, "enabled", &lp.key("cex")) == Some(true));
        }
        for (i, t) in r.list(l, "tang", &lp).to_vec().iter().enumerate() {
            let tp = lp.key("tang").index(i);
            let advertisement = if level >= 5 {
                r.string(t, "advertisement", &tp)
            } else {
                None
            };
            tang.push(Tang {
                url: r.string(t, "url", &tp),
                thumbprint: r.string(t, "thumbprint", &tp),
                advertisement,
            });
        }
    }
    let mp = path.key("mirror");
    let devices: Vec<String> = match &mirror_node {
        Some(m) => r
            .list(m, "devices", &mp)
            .to_vec()
            .iter()
            .filter_map(|n| {
                if let Value::String(s) = &n.value {
                    Some(s.clone())
                } else {
                    None
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let want_luks = tpm2 == Some(true) || !tang.is_empty() || cex;
    let want_mirror = !devices.is_empty();
    let mut cfg = Config::default();
    if !want_luks && !want_mirror {
        return cfg;
    }
    let s390 = layout.starts_with("s390x-");
    let (bios, prep, esp) = match layout.as_str() {
        "x86_64" => (true, false, true),
        "aarch64" => (false, false, true),
        "ppc64le" => (false, true, false),
        "s390x-eckd" | "s390x-zfcp" | "s390x-virt" if level >= 6 => (false, false, false),
        other => {
            r.d.report(
                Severity::Error,
                &path.key("layout"),
                node.pos,
                format!("unknown boot device layout {other:?}; use x86_64, aarch64 or ppc64le"),
            );
            return cfg;
        }
    };
    if want_mirror && mirror_node.is_some() && node.get("layout").is_none() {
        r.d.report(
            Severity::Warning,
            &mp,
            node.pos,
            "boot_device.layout should be specified when boot_device.mirror is specified",
        );
    }
    if want_mirror && devices.len() < 2 {
        r.d.report(
            Severity::Error,
            &mp.key("devices"),
            node.pos,
            "mirroring requires at least two devices",
        );
    }
    if want_mirror && s390 {
        r.d.report(
            Severity::Error,
            &path.key("layout"),
            node.pos,
            "mirroring is not supported on s390x layouts",
        );
    }
    let storage = cfg.storage.get_or_insert_with(Storage::default);
    if want_mirror {
        for (i, dev) in devices.iter().enumerate() {
            let n = i + 1;
            let part = |label: String, size: Option<i64>, guid: Option<&str>| Partition {
                label: Some(label),
                size_mib: size,
                type_guid: guid.map(String::from),
                ..Default::default()
            };
            let mut parts = Vec::new();
            if bios {
                parts.push(part(format!("bios-{n}"), Some(1), Some(BIOS_GUID)));
            } else if prep {
                parts.push(part(format!("prep-{n}"), Some(4), Some(PREP_GUID)));
            } else {
                parts.push(part(format!("reserved-{n}"), Some(1), Some(RESERVED_GUID)));
            }
            if esp {
                parts.push(part(format!("esp-{n}"), Some(127), Some(ESP_GUID)));
            } else {
                parts.push(part(format!("reserved-{n}"), Some(1), Some(RESERVED_GUID)));
            }
            parts.push(part(format!("boot-{n}"), Some(384), None));
            parts.push(part(format!("root-{n}"), None, None));
            storage.disks.push(Disk {
                device: Some(dev.clone()),
                wipe_table: Some(true),
                partitions: parts,
            });
            if esp {
                storage.filesystems.push(Filesystem {
                    device: Some(format!("/dev/disk/by-partlabel/esp-{n}")),
                    format: some("vfat"),
                    label: Some(format!("esp-{n}")),
                    wipe_filesystem: Some(true),
                    ..Default::default()
                });
            }
        }
        let members = |prefix: &str| {
            (1..=devices.len())
                .map(|n| format!("/dev/disk/by-partlabel/{prefix}-{n}"))
                .collect()
        };
        storage.raid.push(Raid {
            name: some("md-boot"),
            level: some("raid1"),
            devices: members("boot"),
            options: vec!["--metadata=1.0".into()],
            ..Default::default()
        });
        storage.raid.push(Raid {
            name: some("md-root"),
            level: some("raid1"),
            devices: members("root"),
            ..Default::default()
        });
        storage.filesystems.push(Filesystem {
            device: some("/dev/md/md-boot"),
            format: some("ext4"),
            label: some("boot"),
            wipe_filesystem: Some(true),
            ..Default::default()
        });
    }
    if want_luks {
        let luks_device = match (layout.as_str(), &device) {
            ("s390x-eckd", Some(dev)) => format!("{dev}2"),
            ("s390x-zfcp", Some(dev)) => format!("{dev}4"),
            ("s390x-eckd" | "s390x-zfcp", None) => {
                r.d.report(
                    Severity::Error,
                    &lp.key("device"),
                    node.pos,
                    format!("layout {layout} requires boot_device.luks.device"),
                );
                String::new()
            }
            _ if want_mirror => "/dev/md/md-root".into(),
            _ => "/dev/disk/by-partlabel/root".into(),
        };
        let clevis = (!cex).then_some(Clevis {
            tpm2,
            tang,
            threshold,
            custom: None,
        });
        let cex = cex.then_some(keel_ignition_config::types::Cex {
            enabled: Some(true),
        });
        storage.luks.push(Luks {
            name: some("root"),
            label: some("luks-root"),
            device: Some(luks_device),
            clevis,
            cex,
            discard,
            wipe_volume: Some(true),
            ..Default::default()
        });
    }
    let root_device = if want_luks {
        "/dev/mapper/root"
    } else {
        "/dev/md/md-root"
    };
    storage.filesystems.push(Filesystem {
        device: some(root_device),
        format: some("xfs"),
        label: some("root"),
        wipe_filesystem: Some(true),
        ..Default::default()
    });
    cfg
}

/// `grub.users`: mount the boot filesystem and append superusers to `/boot/grub2/user.cfg`.
pub fn grub(d: &mut Desugar, node: &Node, path: &JsonPath) -> Config {
    let mut r = Reader { d };
    let mut names = Vec::new();
    let mut lines = Vec::new();
    for (i, u) in r.list(node, "users", path).to_vec().iter().enumerate() {
        let up = path.key("users").index(i);
        let name = r.string(u, "name", &up);
        let hash = r.string(u, "password_hash", &up);
        match (name, hash) {
            (Some(n), Some(h)) => {
                lines.push(format!("password_pbkdf2 {n} {h}"));
                names.push(n);
            }
            (None, _) => r.d.report(
                Severity::Error,
                &up.key("name"),
                u.pos,
                "grub user name is required",
            ),
            (_, None) => r.d.report(
                Severity::Error,
                &up.key("password_hash"),
                u.pos,
                "grub user password_hash is required",
            ),
        }
    }
    if names.is_empty() {
        return Config::default();
    }
    let text = format!(
        "# Generated by Butane\n\nset superusers=\"{}\"\n{}\n",
        names.join(" "),
        lines.join("\n")
    );
    let enc = dataurl::encode(text.as_bytes(), true);
    let append = Resource {
        source: Some(enc.source),
        compression: Some(enc.compression.unwrap_or("").into()),
        ..Default::default()
    };
    let storage = Storage {
        filesystems: vec![Filesystem {
            device: some("/dev/disk/by-label/boot"),
            format: some("ext4"),
            path: some("/boot"),
            ..Default::default()
        }],
        files: vec![File {
            path: some("/boot/grub2/user.cfg"),
            append: vec![append],
            ..Default::default()
        }],
        ..Default::default()
    };
    Config {
        storage: Some(storage),
        ..Default::default()
    }
}

/// systemd-escape a path (`/var/lib/x` → `var-lib-x`).
pub fn escape_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// fcos 1.6+: a partition without number on a disk that is not wiped can only be matched by
/// label, which Ignition cannot do; warn (except on the boot disk and mirrored disks).
pub fn reuse_by_label(d: &mut Desugar, user: &Config, tree: &Node, mirrored: &[String]) {
    if d.target.level < 6 {
        return;
    }
    for (i, disk) in user.storage.iter().flat_map(|s| s.disks.iter()).enumerate() {
        let device = disk.device.as_deref().unwrap_or("");
        if device == "/dev/disk/by-id/coreos-boot-disk"
            || disk.wipe_table == Some(true)
            || mirrored.iter().any(|m| m == device)
        {
            continue;
        }
        for (p, part) in disk.partitions.iter().enumerate() {
            if part.number.unwrap_or(0) == 0 && part.label.is_some() {
                let at = JsonPath::root()
                    .key("storage")
                    .key("disks")
                    .index(i)
                    .key("partitions")
                    .index(p);
                let pos = crate::node_at(tree, &at).map_or(tree.pos, |n| n.pos);
                d.report(
                    Severity::Warning,
                    &at.key("number"),
                    pos,
                    "partitions cannot be reused by label; number must be specified except on boot disk (/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true",
                );
            }
        }
    }
}

fn enabled_unit(name: String, contents: String) -> Unit {
    Unit {
        name: Some(name),
        enabled: Some(true),
        contents: Some(contents),
        ..Default::default()
    }
}

/// Units for `with_mount_unit` filesystems of the decoded user config.
pub fn mount_units(d: &mut Desugar, user: &Config, fs_path: &JsonPath) -> Config {
    let mut units = Vec::new();
    let storage = user.storage.clone().unwrap_or_default();
    for (i, pos) in d.extras.mount_units.clone() {
        let Some(fs) = storage.filesystems.get(i) else {
            continue;
        };
        let at = fs_path.index(i);
        let device = fs.device.clone().unwrap_or_default();
        let format = fs.format.clone().unwrap_or_default();
        let netdev = storage.luks.iter().any(|l| {
            format!("/dev/mapper/{}", l.name.as_deref().unwrap_or("")) == device
                && l.clevis.as_ref().is_some_and(|c| {
                    !c.tang.is_empty()
                        || c.custom
                            .as_ref()
                            .is_some_and(|x| x.needs_network == Some(true))
                })
        });
        let mut options = fs.mount_options.clone();
        if netdev {
            options.push("_netdev".into());
        }
        let options_line = if options.is_empty() {
            String::new()
        } else {
            format!("Options={}\n", options.join(","))
        };
        if format == "swap" {
            if d.target.level < 4 {
                d.report(
                    Severity::Error,
                    &at.key("with_mount_unit"),
                    pos,
                    "with_mount_unit for swap needs fcos 1.4.0 or newer",
                );
                continue;
            }
            let contents = format!("# Generated by Butane\n[Swap]\nWhat={device}\n{options_line}\n[Install]\nRequiredBy=swap.target\n");
            units.push(enabled_unit(
                format!("{}.swap", escape_path(&device)),
                contents,
            ));
            continue;
        }
        let Some(path) = fs.path.clone() else {
            d.report(
                Severity::Error,
                &at.key("path"),
                pos,
                "path is required if with_mount_unit is true",
            );
            continue;
        };
        if d.target.level >= 6
            && !(path.starts_with("/etc/")
                || path.starts_with("/var/")
                || path == "/etc"
                || path == "/var")
        {
            d.report(
                Severity::Error,
                &at.key("path"),
                pos,
                "path must be under /etc or /var if with_mount_unit is true",
            );
            continue;
        }
        let fsck = format!("systemd-fsck@{}.service", escape_path(&device));
        let (requires, target) = if netdev {
            (String::new(), "remote-fs.target")
        } else {
            (
                format!("Requires={fsck}\nAfter={fsck}\n"),
                "local-fs.target",
            )
        };
        let contents = format!("# Generated by Butane\n[Unit]\n{requires}\n[Mount]\nWhere={path}\nWhat={device}\nType={format}\n{options_line}\n[Install]\nRequiredBy={target}\n");
        units.push(enabled_unit(
            format!("{}.mount", escape_path(&path)),
            contents,
        ));
    }
    if units.is_empty() {
        return Config::default();
    }
    Config {
        systemd: Some(Systemd { units }),
        ..Default::default()
    }
}

/// `storage.trees`: every regular file and symlink under a local directory.
pub fn trees(d: &mut Desugar, user: &Config) -> Config {
    let mut storage = Storage::default();
    let user_storage = user.storage.clone().unwrap_or_default();
    let trees_at = JsonPath::root().key("storage").key("trees");
    let mut trees_pos = Pos::default();
    for (node, at) in std::mem::take(&mut d.extras.trees) {
        trees_pos = node.pos;
        let mut r = Reader { d };
        let Some(local) = r.string(&node, "local", &at) else {
            d.report(
                Severity::Error,
                &at.key("local"),
                node.pos,
                "local is required",
            );
            continue;
        };
        let target = r.string(&node, "path", &at).unwrap_or_else(|| "/".into());
        let base = match d.files.resolve(&local) {
            Ok(b) => b,
            Err(msg) => {
                d.report(Severity::Error, &at.key("local"), node.pos, msg);
                continue;
            }
        };
        if let Err(msg) = walk(&base, &target, &mut storage) {
            d.report(Severity::Error, &at, node.pos, msg);
        }
    }
    // A tree file may only meet a user `files` entry without contents, a tree symlink only a
    // user `links` entry without target; anything else at the same path is a conflict.
    let tree_files = storage.files.iter().map(|f| (&f.path, true));
    let tree_links = storage.links.iter().map(|l| (&l.path, false));
    let clashes: Vec<String> = tree_files
        .chain(tree_links)
        .filter(|(path, is_file)| {
            let file = user_storage
                .files
                .iter()
                .any(|u| &u.path == *path && (!is_file || u.contents.is_some()));
            let link = user_storage
                .links
                .iter()
                .any(|u| &u.path == *path && (*is_file || u.target.is_some()));
            file || link || user_storage.directories.iter().any(|u| &u.path == *path)
        })
        .map(|(path, _)| path.clone().unwrap_or_default())
        .collect();
    for path in clashes {
        d.report(
            Severity::Error,
            &trees_at,
            trees_pos,
            format!("{path}: matching filesystem node has existing contents or different type"),
        );
    }
    if storage == Storage::default() {
        return Config::default();
    }
    Config {
        storage: Some(storage),
        ..Default::default()
    }
}

fn walk(dir: &Path, target: &str, out: &mut Storage) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading tree {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let dest = format!("{}/{name}", target.trim_end_matches('/'));
        let meta = std::fs::symlink_metadata(e.path())
            .map_err(|err| format!("{}: {err}", e.path().display()))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(&e.path(), &dest, out)?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(e.path())
                .map_err(|err| format!("{}: {err}", e.path().display()))?;
            out.links.push(Link {
                path: Some(dest),
                target: Some(t.to_string_lossy().into_owned()),
                ..Default::default()
            });
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let data =
                std::fs::read(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
            let enc = dataurl::encode(&data, true);
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let contents = Resource {
                source: Some(enc.source),
                compression: Some(enc.compression.unwrap_or("").into()),
                ..Default::default()
            };
            out.files.push(File {
                path: Some(dest),
                contents: Some(contents),
                mode: Some(mode),
                ..Default::default()
            });
        } else {
            return Err(format!(
                "{}: cannot embed a special file (only regular files, directories and symlinks)",
                e.path().display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_escaping() {
        for (path, want) in [
            ("/var/lib/data", "var-lib-data"),
            ("/", "-"),
            ("/var/my dir", "var-my\\x20dir"),
            ("/dev/disk/by-label/a-b", "dev-disk-by\\x2dlabel-a\\x2db"),
        ] {
            assert_eq!(escape_path(path), want, "{path}");
        }
    }
}
