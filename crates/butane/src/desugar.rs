//! Rewrites a Butane tree into an Ignition tree: snake_case keys become Ignition's camelCase,
//! `inline`/`local` resources become data URLs, `contents_local` and
//! `ssh_authorized_keys_local` are read from the files directory, and the sugar that expands
//! into whole config sections (`boot_device`, `grub`, `storage.trees`, `with_mount_unit`) is
//! set aside for [`crate::sugar`].

use crate::dataurl;
use crate::files::FilesDir;
use crate::variant::Target;
use keel_ignition_config::tree::{Entry, Node, Pos, Value};
use keel_ignition_config::{JsonPath, Report, Severity};
use std::collections::HashSet;

/// Sugar set aside for expansion after the main config is decoded.
#[derive(Default)]
pub struct Extras {
    pub boot_device: Option<(Node, JsonPath)>,
    pub grub: Option<(Node, JsonPath)>,
    /// `storage.trees` entries with their YAML paths.
    pub trees: Vec<(Node, JsonPath)>,
    /// Indexes of `storage.filesystems` entries with `with_mount_unit: true`, and where that is.
    pub mount_units: Vec<(usize, Pos)>,
}

pub struct Desugar<'a> {
    pub target: Target,
    pub files: FilesDir<'a>,
    pub plain_decimal_ints: &'a HashSet<Pos>,
    pub reports: Vec<Report>,
    pub extras: Extras,
}

/// `size_mib` → `sizeMiB`, `ssh_authorized_keys` → `sshAuthorizedKeys`.
pub fn to_camel(key: &str) -> String {
    let mut out = String::new();
    for (i, part) in key.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else if part == "mib" {
            out.push_str("MiB");
        } else {
            let mut chars = part.chars();
            if let Some(c) = chars.next() {
                out.extend(c.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// The inverse of [`to_camel`], for showing Ignition paths as Butane paths.
pub fn to_snake(key: &str) -> String {
    let key = key.replace("MiB", "_mib");
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_reasonable_mode(m: i64) -> bool {
    let (u, g, o) = ((m >> 6) & 7, (m >> 3) & 7, m & 7);
    (0..=0o777).contains(&m) && (o & !g) == 0 && (g & !u) == 0
}

impl Desugar<'_> {
    pub fn report(
        &mut self,
        severity: Severity,
        path: &JsonPath,
        pos: Pos,
        message: impl Into<String>,
    ) {
        self.reports.push(Report {
            severity,
            path: Some(path.clone()),
            pos: Some(pos),
            message: message.into(),
        });
    }

    /// Converts the whole document (without `variant`/`version`).
    pub fn document(&mut self, root: &Node) -> Node {
        self.node(root, &JsonPath::root())
    }

    fn node(&mut self, node: &Node, path: &JsonPath) -> Node {
        match &node.value {
            Value::Object(entries) => Node::new(
                node.pos,
                Value::Object(self.object(node.pos, entries, path)),
            ),
            Value::Array(items) => Node::new(
                node.pos,
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| self.node(n, &path.index(i)))
                        .collect(),
                ),
            ),
            _ => node.clone(),
        }
    }

    fn object(&mut self, pos: Pos, entries: &[Entry], path: &JsonPath) -> Vec<Entry> {
        let level = self.target.level;
        let depth = path.0.len();
        let parent_key = |n: usize| {
            path.0.get(depth.wrapping_sub(n)).and_then(|s| match s {
                keel_ignition_config::report::Segment::Key(k) => Some(k.as_str()),
                _ => None,
            })
        };
        let mut out = Vec::new();
        let mut ssh_local: Option<&Entry> = None;
        // Resources: file contents and appends, merged/replacing configs, CAs and LUKS key files.
        let at_resource = matches!(parent_key(1), Some("contents" | "replace" | "key_file"))
            || (matches!(
                path.0.last(),
                Some(keel_ignition_config::report::Segment::Index(_))
            ) && matches!(
                parent_key(2),
                Some("append" | "merge" | "certificate_authorities")
            ));
        let is_resource = at_resource
            && entries
                .iter()
                .any(|e| e.key == "inline" || (e.key == "local" && level >= 1));
        for e in entries {
            let at = path.key(&e.key);
            let camel = to_camel(&e.key);
            match e.key.as_str() {
                k if k.chars().any(|c| c.is_ascii_uppercase()) => {
                    self.report(Severity::Warning, &at, e.key_pos, format!("Unused key {k}"));
                    continue;
                }
                "boot_device" if depth == 0 && level >= 3 => {
                    self.extras.boot_device = Some((e.value.clone(), at));
                    continue;
                }
                "grub" if depth == 0 && level >= 5 => {
                    self.extras.grub = Some((e.value.clone(), at));
                    continue;
                }
                "trees" if depth == 1 && parent_key(1) == Some("storage") && level >= 1 => {
                    match &e.value.value {
                        Value::Array(items) => self.extras.trees.extend(
                            items
                                .iter()
                                .enumerate()
                                .map(|(i, n)| (n.clone(), at.index(i))),
                        ),
                        Value::Null => {}
                        _ => self.report(Severity::Error, &at, e.value.pos, "trees must be a list"),
                    }
                    continue;
                }
                "with_mount_unit" if parent_key(2) == Some("filesystems") && level >= 1 => {
                    match (&e.value.value, path.0.last()) {
                        (
                            Value::Bool(true),
                            Some(keel_ignition_config::report::Segment::Index(i)),
                        ) => self.extras.mount_units.push((*i, e.value.pos)),
                        (Value::Bool(_) | Value::Null, _) => {}
                        _ => self.report(
                            Severity::Error,
                            &at,
                            e.value.pos,
                            "with_mount_unit must be a boolean",
                        ),
                    }
                    continue;
                }
                "contents_local" if level >= 5 => {
                    if entries.iter().any(|o| o.key == "contents") {
                        self.report(
                            Severity::Error,
                            &at,
                            e.key_pos,
                            "only one of the following can be set: contents, contents_local",
                        );
                        continue;
                    }
                    if let Some(text) = self.local_text(&e.value, &at) {
                        out.push(Entry {
                            key: "contents".into(),
                            key_pos: e.key_pos,
                            value: Node::new(e.value.pos, Value::String(text)),
                        });
                    }
                    continue;
                }
                "ssh_authorized_keys_local" if level >= 5 => {
                    ssh_local = Some(e);
                    continue;
                }
                "inline" | "local" if is_resource => continue,
                "mode" | "file_mode" | "dir_mode" => self.check_mode(&e.value, &at),
                _ => {}
            }
            out.push(Entry {
                key: camel,
                key_pos: e.key_pos,
                value: self.node(&e.value, &at),
            });
        }
        if is_resource {
            self.resource(pos, entries, path, &mut out);
        }
        if let Some(e) = ssh_local {
            self.ssh_keys_local(e, path, &mut out);
        }
        out
    }

    /// Warns about modes like `644` that only make sense in octal.
    fn check_mode(&mut self, value: &Node, at: &JsonPath) {
        let Value::Number(n) = &value.value else {
            return;
        };
        let Ok(m) = n.parse::<i64>() else { return };
        if !self.plain_decimal_ints.contains(&value.pos) || is_reasonable_mode(m) {
            return;
        }
        if i64::from_str_radix(n, 8).is_ok_and(is_reasonable_mode) {
            self.report(Severity::Warning, at, value.pos, "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero");
        }
    }

    /// `inline` / `local` → `source` (+ `compression`).
    fn resource(&mut self, pos: Pos, entries: &[Entry], path: &JsonPath, out: &mut Vec<Entry>) {
        let set: Vec<&Entry> = entries
            .iter()
            .filter(|e| {
                matches!(e.key.as_str(), "inline" | "local" | "source")
                    && e.value.value != Value::Null
            })
            .collect();
        if set.len() > 1 {
            self.report(
                Severity::Error,
                path,
                pos,
                "only one of the following can be set: inline, local, source",
            );
            return;
        }
        let Some(e) = set.first() else { return };
        let at = path.key(&e.key);
        let data = match (e.key.as_str(), &e.value.value) {
            ("source", _) => return,
            ("inline", Value::String(s)) => s.clone().into_bytes(),
            ("local", Value::String(rel)) => match self.files.read(rel) {
                Ok(d) => d,
                Err(msg) => return self.report(Severity::Error, &at, e.value.pos, msg),
            },
            (k, _) => {
                return self.report(
                    Severity::Error,
                    &at,
                    e.value.pos,
                    format!("{k} must be a string"),
                )
            }
        };
        // Configs embedded for merge/replace must themselves be valid Ignition configs.
        let key = |i: usize| match path.0.get(i) {
            Some(keel_ignition_config::report::Segment::Key(k)) => k.as_str(),
            _ => "",
        };
        if key(0) == "ignition" && key(1) == "config" {
            let checked = keel_ignition_config::check(&data);
            if let Some(first) = checked
                .reports
                .iter()
                .find(|r| r.is_error())
                .filter(|_| !checked.is_valid())
            {
                self.report(
                    Severity::Error,
                    &at,
                    e.value.pos,
                    format!("the embedded config is not a valid Ignition config: {first}"),
                );
            }
        }
        // Spec 3.0.0 only has `compression` on file contents and appends.
        let in_files = matches!(path.0.first(), Some(keel_ignition_config::report::Segment::Key(k)) if k == "storage")
            && path.0.len() >= 3;
        let can_compress = self.target.spec.minor >= 1 || in_files;
        let user_compression = entries.iter().any(|e| e.key == "compression");
        let enc = dataurl::encode(&data, can_compress && !user_compression);
        out.push(Entry {
            key: "source".into(),
            key_pos: e.key_pos,
            value: Node::new(e.value.pos, Value::String(enc.source)),
        });
        if can_compress && !user_compression {
            out.push(Entry {
                key: "compression".into(),
                key_pos: e.key_pos,
                value: Node::new(
                    e.value.pos,
                    Value::String(enc.compression.unwrap_or("").into()),
                ),
            });
        }
    }

    /// Appends the keys from `ssh_authorized_keys_local` files (one per non-blank line).
    fn ssh_keys_local(&mut self, e: &Entry, path: &JsonPath, out: &mut Vec<Entry>) {
        let at = path.key(&e.key);
        let Value::Array(items) = &e.value.value else {
            return self.report(
                Severity::Error,
                &at,
                e.value.pos,
                "ssh_authorized_keys_local must be a list of file names",
            );
        };
        let mut keys = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(text) = self.local_text(item, &at.index(i)) {
                keys.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| Node::new(item.pos, Value::String(l.to_string()))),
                );
            }
        }
        match out.iter_mut().find(|o| o.key == "sshAuthorizedKeys") {
            Some(Entry {
                value:
                    Node {
                        value: Value::Array(existing),
                        ..
                    },
                ..
            }) => existing.extend(keys),
            _ => out.push(Entry {
                key: "sshAuthorizedKeys".into(),
                key_pos: e.key_pos,
                value: Node::new(e.value.pos, Value::Array(keys)),
            }),
        }
    }

    /// Reads a local file named by a string node as UTF-8 text.
    fn local_text(&mut self, name: &Node, at: &JsonPath) -> Option<String> {
        let Value::String(rel) = &name.value else {
            self.report(
                Severity::Error,
                at,
                name.pos,
                "expected a file name (string)",
            );
            return None;
        };
        let data = self
            .files
            .read(rel)
            .map_err(|msg| self.report(Severity::Error, at, name.pos, msg))
            .ok()?;
        String::from_utf8(data)
            .map_err(|_| {
                self.report(
                    Severity::Error,
                    at,
                    name.pos,
                    format!("local file {rel:?} is not UTF-8 text"),
                )
            })
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_case_round_trip() {
        for (snake, camel) in [
            ("size_mib", "sizeMiB"),
            ("ssh_authorized_keys", "sshAuthorizedKeys"),
            ("type_guid", "typeGuid"),
            ("http_response_headers", "httpResponseHeaders"),
            ("path", "path"),
            ("start_mib", "startMiB"),
        ] {
            assert_eq!(to_camel(snake), camel);
            assert_eq!(to_snake(camel), snake);
        }
    }

    #[test]
    fn reasonable_modes() {
        for (m, ok) in [
            (0o644, true),
            (0o755, true),
            (0o600, true),
            (644, false),
            (0o4755, false),
            (0o466, false),
        ] {
            assert_eq!(is_reasonable_mode(m), ok, "{m:o}");
        }
    }
}
