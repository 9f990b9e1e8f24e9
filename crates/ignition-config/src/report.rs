//! Validation reports: `error|warning at $.json.path, line L col C: message`, like
//! `ignition-validate` prints them.

use crate::tree::Pos;
use std::fmt;

/// How bad a report is. Errors make a config invalid; warnings do not.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One step of a JSON path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into the config such as `$.storage.files.0.path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath(pub Vec<Segment>);

impl JsonPath {
    pub fn root() -> Self {
        JsonPath(Vec::new())
    }

    /// This path extended by an object key.
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.to_string()));
        JsonPath(v)
    }

    /// This path extended by an array index.
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        JsonPath(v)
    }

    /// The path one step up, or `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        let mut v = self.0.clone();
        v.pop().map(|_| JsonPath(v))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.0 {
            match s {
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(i) => write!(f, ".{i}")?,
            }
        }
        Ok(())
    }
}

/// One problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Report {
    /// `error` (the config is invalid) or `warning`.
    pub severity: Severity,
    /// Where in the config; `None` for problems with the document as a whole (syntax errors).
    #[serde(serialize_with = "ser_path")]
    #[schemars(with = "Option<String>")]
    pub path: Option<JsonPath>,
    /// Where in the file; `None` when the problem has no place in the source (merged configs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<Pos>,
    /// What is wrong and what to do.
    pub message: String,
}

fn ser_path<S: serde::Serializer>(p: &Option<JsonPath>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&p.to_string()),
        None => s.serialize_none(),
    }
}

impl Report {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev} at ")?;
        match (&self.path, &self.pos) {
            (Some(p), Some(pos)) => write!(f, "{p}, {pos}")?,
            (Some(p), None) => write!(f, "{p}")?,
            (None, Some(pos)) => write!(f, "{pos}")?,
            (None, None) => f.write_str("$")?,
        }
        write!(f, ": {}", self.message)
    }
}

/// True when any report is an error.
pub fn has_errors(reports: &[Report]) -> bool {
    reports.iter().any(Report::is_error)
}
