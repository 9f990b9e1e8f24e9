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
            if !dname.ends_with(".conf") {
                c.error(
                    &dp.index(j).key("name"),
                    "invalid systemd drop-in extension",
                );
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

/// Checks a unit name's type suffix.
pub fn unit_name_problem(name: &str) -> Option<&'static str> {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return Some("no systemd unit extension");
    };
    if !UNIT_TYPES.contains(&ext) {
        return Some("invalid systemd unit extension");
    }
    None
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
    fn unit_names() {
        let cases = [
            ("a.service", None),
            ("getty@tty1.service", None),
            ("getty@.service", None),
            ("foo", Some("no systemd unit extension")),
            ("foo.conf", Some("invalid systemd unit extension")),
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
