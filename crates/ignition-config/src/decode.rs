//! Maps the positioned tree onto the typed model, recording a report for every type mismatch
//! and unknown key, and the source position of every decoded value.
//!
//! Like Ignition, keys match case-insensitively and the last duplicate wins; a key that only
//! matches case-insensitively, or that the config's spec version does not have yet, is reported
//! as `Unused key`.

use crate::report::{JsonPath, Report, Severity};
use crate::tree::{Entry, Node, Pos, Value};
use crate::version::Version;
use std::collections::HashMap;

/// Source positions of decoded values, by JSON path.
#[derive(Debug, Clone, Default)]
pub struct Positions(HashMap<JsonPath, Pos>);

impl Positions {
    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &JsonPath) -> Option<Pos> {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(pos) = self.0.get(&cur) {
                return Some(*pos);
            }
            p = cur.parent();
        }
        None
    }

    fn insert(&mut self, path: &JsonPath, pos: Pos) {
        self.0.insert(path.clone(), pos);
    }
}

/// Decoding state: the spec version being read, the reports so far and the positions seen.
pub struct Decoder {
    pub version: Version,
    pub reports: Vec<Report>,
    pub positions: Positions,
}

impl Decoder {
    pub fn new(version: Version) -> Self {
        Decoder {
            version,
            reports: Vec::new(),
            positions: Positions::default(),
        }
    }

    fn report(&mut self, severity: Severity, path: JsonPath, pos: Pos, message: String) {
        self.reports.push(Report {
            severity,
            path: Some(path),
            pos: Some(pos),
            message,
        });
    }

    fn type_error(&mut self, node: &Node, path: &JsonPath, expected: &str) {
        let found = match &node.value {
            Value::Number(n) => format!("number {n}"),
            v => v.type_name().to_string(),
        };
        self.report(
            Severity::Error,
            path.clone(),
            node.pos,
            format!("json: cannot unmarshal {found} into a value of type {expected}"),
        );
    }

    /// Reports an object member that the model does not use.
    pub fn unused_key(&mut self, entry: &Entry, path: &JsonPath) {
        self.report(
            Severity::Warning,
            path.key(&entry.key),
            entry.key_pos,
            format!("Unused key {}", entry.key),
        );
    }

    /// The members of an object node, or a type error.
    pub fn object<'n>(
        &mut self,
        node: &'n Node,
        path: &JsonPath,
        type_name: &str,
    ) -> Option<&'n [Entry]> {
        self.positions.insert(path, node.pos);
        match &node.value {
            Value::Object(entries) => Some(entries),
            _ => {
                self.type_error(node, path, type_name);
                None
            }
        }
    }

    /// Whether a field introduced in spec `3.since.0` exists in the version being decoded.
    pub fn has_field(&self, since: u64) -> bool {
        self.version.at_least(since)
    }
}

/// A type that can be read from a positioned node. `None` means a type error was reported.
pub trait Decode: Sized {
    fn decode(node: &Node, path: &JsonPath, d: &mut Decoder) -> Option<Self>;
}

/// Whether a field is left out when serializing (absent option, empty list).
pub trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<T> IsEmpty for Option<T> {
    fn is_empty(&self) -> bool {
        self.is_none()
    }
}

impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(node: &Node, path: &JsonPath, d: &mut Decoder) -> Option<Self> {
        if node.value == Value::Null {
            d.positions.insert(path, node.pos);
            return Some(None);
        }
        T::decode(node, path, d).map(Some)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(node: &Node, path: &JsonPath, d: &mut Decoder) -> Option<Self> {
        d.positions.insert(path, node.pos);
        match &node.value {
            Value::Null => Some(Vec::new()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| T::decode(item, &path.index(i), d))
                    .collect(),
            ),
            _ => {
                d.type_error(node, path, "array");
                None
            }
        }
    }
}

impl Decode for String {
    fn decode(node: &Node, path: &JsonPath, d: &mut Decoder) -> Option<Self> {
        d.positions.insert(path, node.pos);
        match &node.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                d.type_error(node, path, "string");
                None
            }
        }
    }
}

impl Decode for bool {
    fn decode(node: &Node, path: &JsonPath, d: &mut Decoder) -> Option<Self> {
        d.positions.insert(path, node.pos);
        match &node.value {
            Value::Bool(b) => Some(*b),
            _ => {
                d.type_error(node, path, "bool");
                None
            }
        }
    }
}

impl Decode for i64 {
    fn decode(node: &Node, path: &JsonPath, d: &mut Decoder) -> Option<Self> {
        d.positions.insert(path, node.pos);
        match &node.value {
            Value::Number(n) => match n.parse::<i64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    d.type_error(node, path, "int");
                    None
                }
            },
            _ => {
                d.type_error(node, path, "int");
                None
            }
        }
    }
}

/// Declares a config object: the struct (serde-serializable with Ignition's JSON names, empty
/// fields left out) and its [`Decode`] impl. `since N` marks a field introduced in spec 3.N.0.
macro_rules! config_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $json:literal $(since $since:literal)? => $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(rename = $json, default, skip_serializing_if = "crate::decode::IsEmpty::is_empty")]
                pub $field: $ty,
            )*
        }

        impl crate::decode::Decode for $name {
            fn decode(node: &crate::tree::Node, path: &crate::report::JsonPath, d: &mut crate::decode::Decoder) -> Option<Self> {
                let entries = d.object(node, path, stringify!($name))?;
                let mut out = Self::default();
                for entry in entries {
                    $(
                        if entry.key.eq_ignore_ascii_case($json) && d.has_field(0 $(+ $since)?) {
                            if entry.key != $json {
                                d.unused_key(entry, path);
                            }
                            if let Some(v) = crate::decode::Decode::decode(&entry.value, &path.key($json), d) {
                                out.$field = v;
                            }
                            continue;
                        }
                    )*
                    d.unused_key(entry, path);
                }
                Some(out)
            }
        }
    };
}
pub(crate) use config_object;

#[cfg(test)]
mod tests {
    use crate::check;

    #[test]
    fn duplicate_and_case_variant_keys_last_one_wins_like_ignition() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/a","path":"/b"}]}}"#,
                "/b",
                &[],
            ),
            (
                r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/a","PATH":"/b"}]}}"#,
                "/b",
                &["Unused key PATH"],
            ),
            (
                r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"Path":"/a","path":"/b"}]}}"#,
                "/b",
                &["Unused key Path"],
            ),
            (
                r#"{"Ignition":{"VERSION":"3.3.0"},"storage":{"files":[{"path":"/c"}]}}"#,
                "/c",
                &["Unused key Ignition", "Unused key VERSION"],
            ),
        ];
        for (json, path, warnings) in cases {
            let checked = check(json.as_bytes());
            let cfg = checked.config.as_ref().unwrap();
            assert_eq!(
                cfg.storage().files[0].path.as_deref(),
                Some(*path),
                "{json}"
            );
            let got: Vec<&str> = checked.reports.iter().map(|r| r.message.as_str()).collect();
            assert_eq!(got, *warnings, "{json}");
        }
    }
}
