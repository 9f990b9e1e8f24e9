//! The one reader of GLib key files (`GKeyFile`), the format of OSTree's repository and remote
//! config (`config`, `[remote "NAME"]`) and of deployment origin files, read as GLib reads them:
//!
//! - leading whitespace is ignored on every line; a line starting with `#` is a comment and an
//!   empty line is blank; both are skipped;
//! - `[NAME]` starts a group; the name runs to the last `]` and keeps inner spaces; a group seen
//!   twice is one group;
//! - `KEY=VALUE`: whitespace around the key and after `=` is dropped, trailing whitespace of the
//!   value is kept; a key seen twice in a group keeps its last value;
//! - a key before any group, or a line that is none of the above, is an error (GLib refuses the
//!   whole file, so does this reader);
//! - [`KeyFile::string`] unescapes `\s`, `\n`, `\t`, `\r` and `\\` like `g_key_file_get_string`;
//!   [`KeyFile::boolean`] accepts `true`, `false`, `1` and `0` like `g_key_file_get_boolean`.

use std::borrow::Cow;

/// A key file that GLib would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// A `key=value` line before the first `[group]`.
    #[error("line {line}: key `{key}` comes before any [group]; put a group header above it")]
    NoGroup { line: usize, key: String },
    /// A line that is no group, key, comment or blank.
    #[error("line {line}: `{text}` is not a [group], a key=value pair or a # comment")]
    Invalid { line: usize, text: String },
    /// A group header with an empty name or a `[`/`]` inside.
    #[error("line {line}: invalid group name `{name}`")]
    GroupName { line: usize, name: String },
    /// A value with a backslash escape GLib does not know.
    #[error("[{group}] {key}: invalid escape in `{value}` (known: \\s \\n \\t \\r \\\\)")]
    Escape {
        group: String,
        key: String,
        value: String,
    },
    /// A boolean that is not `true`, `false`, `1` or `0`.
    #[error("[{group}] {key}: `{value}` is not a boolean (use true or false)")]
    Boolean {
        group: String,
        key: String,
        value: String,
    },
}

/// One line of a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// Empty, whitespace or a `#` comment.
    Skip,
    /// `[name]`.
    Group(&'a str),
    /// `key=value`, the value as written (escapes not yet resolved).
    Entry { key: &'a str, value: &'a str },
}

/// Classifies one line (`number` counts from 1 and only names the line in errors).
pub fn parse_line(line: &str, number: usize) -> Result<Line<'_>, KeyFileError> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return Ok(Line::Skip);
    }
    if let Some(name) = group_header(t) {
        if name.is_empty() || name.contains(['[', ']']) {
            return Err(KeyFileError::GroupName {
                line: number,
                name: name.to_string(),
            });
        }
        return Ok(Line::Group(name));
    }
    match t.split_once('=') {
        Some((key, value)) if !key.trim_end().is_empty() => Ok(Line::Entry {
            key: key.trim_end(),
            value: value.trim_start(),
        }),
        _ => Err(KeyFileError::Invalid {
            line: number,
            text: line.to_string(),
        }),
    }
}

/// The group name when `line` is a group header (`[name]`, up to the last `]`).
pub fn group_header(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('[')?;
    rest.rfind(']').map(|end| &rest[..end])
}

/// The value of `key` in `[group]` as written, without building a [`KeyFile`]; the last one wins.
pub fn lookup<'a>(text: &'a str, group: &str, key: &str) -> Result<Option<&'a str>, KeyFileError> {
    let mut current = None;
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        match parse_line(line, i + 1)? {
            Line::Skip => {}
            Line::Group(g) => current = Some(g),
            Line::Entry { key: k, .. } if current.is_none() => {
                return Err(KeyFileError::NoGroup {
                    line: i + 1,
                    key: k.to_string(),
                })
            }
            Line::Entry { key: k, value } => {
                if current == Some(group) && k == key {
                    found = Some(value);
                }
            }
        }
    }
    Ok(found)
}

/// A parsed key file: groups in file order, each with its keys in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFile {
    groups: Vec<(String, Vec<(String, String)>)>,
}

impl KeyFile {
    /// Parses key-file text; comments and blank lines are dropped.
    pub fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
        let mut kf = KeyFile::default();
        let mut current: Option<usize> = None;
        for (i, line) in text.lines().enumerate() {
            match parse_line(line, i + 1)? {
                Line::Skip => {}
                Line::Group(g) => current = Some(kf.group_index(g)),
                Line::Entry { key, value } => {
                    let Some(g) = current else {
                        return Err(KeyFileError::NoGroup {
                            line: i + 1,
                            key: key.to_string(),
                        });
                    };
                    set_key(&mut kf.groups[g].1, key, value);
                }
            }
        }
        Ok(kf)
    }

    fn group_index(&mut self, group: &str) -> usize {
        match self.groups.iter().position(|(g, _)| g == group) {
            Some(i) => i,
            None => {
                self.groups.push((group.to_string(), Vec::new()));
                self.groups.len() - 1
            }
        }
    }

    /// Group names in file order.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|(g, _)| g.as_str())
    }

    /// The value of `key` in `group` as written (escapes not resolved).
    pub fn raw(&self, group: &str, key: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(g, _)| g == group)
            .and_then(|(_, kv)| kv.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.as_str())
    }

    /// The string value of `key` in `group`, escapes resolved.
    pub fn string(&self, group: &str, key: &str) -> Result<Option<Cow<'_, str>>, KeyFileError> {
        self.raw(group, key)
            .map(|v| {
                unescape(v).ok_or_else(|| KeyFileError::Escape {
                    group: group.to_string(),
                    key: key.to_string(),
                    value: v.to_string(),
                })
            })
            .transpose()
    }

    /// The boolean value of `key` in `group`.
    pub fn boolean(&self, group: &str, key: &str) -> Result<Option<bool>, KeyFileError> {
        self.raw(group, key)
            .map(|v| match v.trim_end() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(KeyFileError::Boolean {
                    group: group.to_string(),
                    key: key.to_string(),
                    value: v.to_string(),
                }),
            })
            .transpose()
    }

    /// Sets (`Some`) or removes (`None`) `key` in `group`; a group left empty is removed.
    pub fn set(&mut self, group: &str, key: &str, value: Option<&str>) {
        match value {
            Some(v) => {
                let g = self.group_index(group);
                set_key(&mut self.groups[g].1, key, v);
            }
            None => {
                for (_, kv) in self.groups.iter_mut().filter(|(g, _)| g == group) {
                    kv.retain(|(k, _)| k != key);
                }
                self.groups.retain(|(_, kv)| !kv.is_empty());
            }
        }
    }

    /// Key-file text: groups separated by a blank line, `key=value` lines as stored.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (i, (g, kv)) in self.groups.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(&format!("[{g}]\n"));
            for (k, v) in kv {
                s.push_str(&format!("{k}={v}\n"));
            }
        }
        s
    }
}

fn set_key(kv: &mut Vec<(String, String)>, key: &str, value: &str) {
    match kv.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => kv.push((key.to_string(), value.to_string())),
    }
}

/// GLib's string unescaping; `None` for an unknown escape or a trailing backslash.
fn unescape(v: &str) -> Option<Cow<'_, str>> {
    if !v.contains('\\') {
        return Some(Cow::Borrowed(v));
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            's' => ' ',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '\\' => '\\',
            _ => return None,
        });
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case where the three readers (store's config lookup, remote's config parser,
    /// deploy's origin file) disagreed, read as GLib reads it.
    #[test]
    fn reads_like_glib() {
        // (text, group, key, value)
        let table: &[(&str, &str, &str, Option<&str>)] = &[
            // comments, also indented ones, and comments that look like keys or groups
            (
                "[core]\n# mode=bare\nmode=archive-z2\n",
                "core",
                "mode",
                Some("archive-z2"),
            ),
            ("[core]\n  #[x]\nmode=bare\n", "core", "mode", Some("bare")),
            ("# c\n[core]\nmode=bare\n", "core", "mode", Some("bare")),
            // the last of two values wins (store and origin took the first)
            (
                "[core]\nmode=bare\nmode=archive-z2\n",
                "core",
                "mode",
                Some("archive-z2"),
            ),
            // a group seen twice is one group
            ("[a]\nx=1\n[b]\ny=2\n[a]\nz=3\n", "a", "x", Some("1")),
            ("[a]\nx=1\n[b]\ny=2\n[a]\nz=3\n", "a", "z", Some("3")),
            // whitespace: around the key and after `=` dropped, trailing kept
            ("[W]\nkey1 = value1\n", "W", "key1", Some("value1")),
            ("[W]\nkey2\t=\tvalue2\n", "W", "key2", Some("value2")),
            (
                " [ another group ] \nkey3 = value3  \n",
                " another group ",
                "key3",
                Some("value3  "),
            ),
            ("[W]\n  key5  =  value5\n", "W", "key5", Some("value5")),
            // quoted group names of remotes, `=` in values
            (
                "[remote \"o\"]\nurl=http://x/?a=b\n",
                "remote \"o\"",
                "url",
                Some("http://x/?a=b"),
            ),
            ("[core]\nmode=bare\n", "nope", "mode", None),
            ("[core]\nmode=\n", "core", "mode", Some("")),
        ];
        for (text, group, key, want) in table {
            let kf = KeyFile::parse(text).unwrap();
            assert_eq!(kf.raw(group, key), *want, "{text:?} [{group}] {key}");
            assert_eq!(lookup(text, group, key).unwrap(), *want, "{text:?}");
        }
    }

    #[test]
    fn refuses_what_glib_refuses() {
        for (text, want) in [
            ("mode=bare\n", "line 1: key `mode` comes before any [group]"),
            ("[core]\nmode\n", "line 2: `mode` is not a [group]"),
            ("[core]\n=x\n", "line 2: `=x` is not a [group]"),
            ("[]\n", "line 1: invalid group name ``"),
            ("[a]b]\n", "line 1: invalid group name `a]b`"),
        ] {
            let e = KeyFile::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
            assert!(lookup(text, "core", "mode").is_err(), "{text:?}");
        }
    }

    #[test]
    fn escapes_and_booleans() {
        let kf = KeyFile::parse(
            "[g]\ns=\\sa\\tb\\nc\\\\d\\r\nbad=a\\qb\nend=a\\\nt=true\no=1\nf=0\ny=yes\n",
        )
        .unwrap();
        assert_eq!(
            kf.string("g", "s").unwrap().as_deref(),
            Some(" a\tb\nc\\d\r")
        );
        assert_eq!(kf.raw("g", "s"), Some("\\sa\\tb\\nc\\\\d\\r"));
        assert!(kf
            .string("g", "bad")
            .unwrap_err()
            .to_string()
            .contains("[g] bad"));
        assert!(kf.string("g", "end").is_err());
        assert_eq!(kf.boolean("g", "t").unwrap(), Some(true));
        assert_eq!(kf.boolean("g", "o").unwrap(), Some(true));
        assert_eq!(kf.boolean("g", "f").unwrap(), Some(false));
        assert_eq!(kf.boolean("g", "missing").unwrap(), None);
        let e = kf.boolean("g", "y").unwrap_err().to_string();
        assert_eq!(e, "[g] y: `yes` is not a boolean (use true or false)");
    }

    #[test]
    fn edits_and_prints() {
        let mut kf = KeyFile::parse("# c\n[origin]\nrefspec = r\n[x]\ny=z\n").unwrap();
        kf.set("t", "pinned", Some("true"));
        kf.set("origin", "refspec", Some("s"));
        assert_eq!(
            kf.to_text(),
            "[origin]\nrefspec=s\n\n[x]\ny=z\n\n[t]\npinned=true\n"
        );
        kf.set("t", "pinned", None);
        assert_eq!(kf.groups().collect::<Vec<_>>(), ["origin", "x"]);
    }
}
