//! systemd rules: unit and drop-in names, unit file syntax, and enable without `[Install]`.

use super::Checker;
use crate::report::JsonPath;
use crate::types::Systemd;

const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "snapshot",
    "slice",
    "scope",
];

pub fn check(c: &mut Checker, sd: &Systemd, p: &JsonPath) {
    let up = p.key("units");
    c.duplicates(
        up.clone(),
        sd.units.iter().map(|u| u.name.clone().unwrap_or_default()),
    );
    for (i, u) in sd.units.iter().enumerate() {
        let at = up.index(i);
        let name = u.name.as_deref().unwrap_or("");
        if let Some(msg) = unit_name_problem(name) {
            c.error(&at.key("name"), msg);
        }
        if let Some(contents) = &u.contents {
            match parse_unit(contents) {
                Err(msg) => c.error(&at.key("contents"), &format!("invalid unit content: {msg}")),
                Ok(sections) => {
                    check_install(c, contents, &at.key("contents"));
                    if u.enabled == Some(true) && !sections.iter().any(|s| s == "Install") {
                        c.warn(&at.key("contents"), &format!("unit {name:?} is enabled, but has no install section so enable does nothing"));
                    }
                }
            }
        }
        let dp = at.key("dropins");
        c.duplicates(
            dp.clone(),
            u.dropins.iter().map(|d| d.name.clone().unwrap_or_default()),
        );
        for (j, d) in u.dropins.iter().enumerate() {
            let dname = d.name.as_deref().unwrap_or("");
            if let Some(msg) = dropin_name_problem(dname) {
                c.error(&dp.index(j).key("name"), msg);
            }
            if let Some(Err(msg)) = d.contents.as_deref().map(parse_unit) {
                c.error(
                    &dp.index(j).key("contents"),
                    &format!("invalid unit content: {msg}"),
                );
            }
        }
    }
}

/// systemd's longest unit name.
const UNIT_NAME_MAX: usize = 255;

/// Checks a unit name as systemd does (`unit_name_is_valid`): a type suffix, a non-empty
/// prefix, and only letters, digits, `:-_.\\` and `@` (so never a `/`, and never a name that
/// would leave the unit directory).
pub fn unit_name_problem(name: &str) -> Option<&'static str> {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return Some("no systemd unit extension");
    };
    if !UNIT_TYPES.contains(&ext) {
        return Some("invalid systemd unit extension");
    }
    if name.len() > UNIT_NAME_MAX {
        return Some("systemd unit names may not be longer than 255 bytes");
    }
    if stem.is_empty() || stem.starts_with('@') {
        return Some(
            "invalid systemd unit name: the part before \"@\" or the type suffix is empty",
        );
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if !stem.chars().all(allowed) {
        return Some("invalid systemd unit name: only letters, digits and \":-_.\\@\" are allowed (no \"/\")");
    }
    None
}

/// Checks a drop-in name: one file name ending in `.conf`.
pub fn dropin_name_problem(name: &str) -> Option<&'static str> {
    if !name.ends_with(".conf") {
        return Some("invalid systemd drop-in extension");
    }
    if name.contains(['/', '\0']) || name == ".conf" {
        return Some("invalid systemd drop-in name: it must be one file name (no \"/\")");
    }
    None
}

/// Reports `[Install]` values that are not unit names enablement could link (a `/` or `..`
/// would put the link outside the unit directory), naming the key.
fn check_install(c: &mut Checker, contents: &str, at: &JsonPath) {
    for (key, value) in parse_install(contents).values() {
        if value.contains('/') || value.contains("..") || value.contains('\0') {
            c.error(
                at,
                &format!(
                    "invalid [Install] {key}={value}: unit names cannot contain \"/\" or \"..\""
                ),
            );
        }
    }
}

/// The `[Install]` settings of a unit file that enablement uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Install {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    pub alias: Vec<String>,
    pub also: Vec<String>,
    pub default_instance: Option<String>,
}

impl Install {
    /// Every value with its key, for checks that name the key.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let lists = [
            ("WantedBy", &self.wanted_by),
            ("RequiredBy", &self.required_by),
            ("Alias", &self.alias),
            ("Also", &self.also),
        ];
        lists
            .into_iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k, v.as_str())))
            .chain(
                self.default_instance
                    .as_deref()
                    .map(|v| ("DefaultInstance", v)),
            )
    }
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

/// Parses unit file syntax and returns the section names, or why it is not a unit file.
pub fn parse_unit(contents: &str) -> Result<Vec<String>, String> {
    let mut sections = Vec::new();
    let mut continued = false;
    for (n, raw) in contents.lines().enumerate() {
        let line = raw.trim();
        if continued {
            continued = line.ends_with('\\');
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: section header is not closed with ']'", n + 1))?;
            sections.push(name.to_string());
            continue;
        }
        if !sections.is_empty() && !line.contains('=') {
            return Err(format!(
                "line {}: expected KEY=VALUE, found {line:?}",
                n + 1
            ));
        }
        continued = line.ends_with('\\');
    }
    Ok(sections)
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
    fn unit_names() {
        let cases = [
            ("a.service", None),
            ("getty@tty1.service", None),
            ("getty@.service", None),
            ("foo", Some("no systemd unit extension")),
            ("foo.conf", Some("invalid systemd unit extension")),
            ("../../x.service", Some("invalid systemd unit name: only letters, digits and \":-_.\\@\" are allowed (no \"/\")")),
            ("a/b.service", Some("invalid systemd unit name: only letters, digits and \":-_.\\@\" are allowed (no \"/\")")),
            (".service", Some("invalid systemd unit name: the part before \"@\" or the type suffix is empty")),
            ("@x.service", Some("invalid systemd unit name: the part before \"@\" or the type suffix is empty")),
            ("a b.service", Some("invalid systemd unit name: only letters, digits and \":-_.\\@\" are allowed (no \"/\")")),
            ("dev-disk-by\\x2dlabel-root.device", None),
        ];
        for (name, want) in cases {
            assert_eq!(unit_name_problem(name), want, "{name}");
        }
    }

    #[test]
    fn unit_contents() {
        assert_eq!(
            parse_unit("[Unit]\nA=b\n[Install]\nWantedBy=x\\\n  y\n").unwrap(),
            vec!["Unit", "Install"]
        );
        assert!(parse_unit("[Unit]\nfoo").is_err());
        assert!(parse_unit("[Unit\nA=b").is_err());
        assert_eq!(
            parse_unit("# only a comment\n").unwrap(),
            Vec::<String>::new()
        );
    }
}
