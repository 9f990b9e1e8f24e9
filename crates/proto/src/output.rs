//! Machine-readable output: every `--json` result (`keel status`, `upgrade`, `deploy`,
//! `compose`, `update check`, `ignition validate`, `agent status`, `health check`, `image
//! build`) is one object on stdout whose first member is `"schema_version"`, and is described
//! by the JSON Schema file `schemas/<name>.json` of the repository (tests validate real output
//! against it). Progress goes to stderr as JSON lines (`keel_utils::progress`).
//!
//! The version rises when a member is removed, renamed or changes meaning; adding a member
//! does not raise it, so consumers must ignore members they do not know.

use serde::{Deserialize, Serialize};

/// The schema version of every output below.
pub const SCHEMA_VERSION: u32 = 1;

/// An output body with its schema version in front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Versioned<T> {
    /// [`SCHEMA_VERSION`] of the program that wrote it.
    pub schema_version: u32,
    /// The output.
    #[serde(flatten)]
    pub body: T,
}

impl<T> Versioned<T> {
    /// Wrap `body` at the current version.
    pub fn new(body: T) -> Versioned<T> {
        Versioned {
            schema_version: SCHEMA_VERSION,
            body,
        }
    }
}

/// The machine-readable outputs and their schema files (below `schemas/` in the repository).
pub const SCHEMAS: &[(&str, &str)] = &[
    ("status", "`keel status --json`"),
    ("upgrade", "`keel upgrade --json` and `keel deploy --json`"),
    (
        "compose",
        "`keel compose --json` (its result, the last line on stdout)",
    ),
    ("update-check", "`keel update check --json`"),
    ("ignition-validate", "`keel ignition validate --json`"),
    ("agent-status", "`keel agent status --json`"),
    ("health-check", "`keel health check --json`"),
    ("image-build", "`keel image build --json`"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_first() {
        #[derive(Serialize)]
        struct Body {
            a: u8,
        }
        let json = serde_json::to_string(&Versioned::new(Body { a: 1 })).unwrap();
        assert_eq!(json, r#"{"schema_version":1,"a":1}"#);
    }
}
