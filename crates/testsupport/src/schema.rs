//! Machine-readable output checked against the repository's JSON Schema files (`schemas/`,
//! one per `--json` output; see `keel_proto::output`). Tests that run a command with `--json`
//! pass what it printed here, so an output that drifts from its published schema fails.

use serde_json::Value;
use std::path::PathBuf;

/// The repository's `schemas/` directory.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// Panic unless `output` is valid against `schemas/<name>.json`, listing every violation.
pub fn assert_valid(name: &str, output: &Value) {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid JSON Schema: {e}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(output)
        .map(|e| format!("  at `{}`: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "this output does not match {}:\n{}\noutput: {output:#}",
        path.display(),
        errors.join("\n")
    );
}
