//! Helpers shared by the corpus and edge-case tests.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// `file -> keel's exit code` from a KNOWN-DIFFERENCES.md ("- `FILE` keel exit N: why").
pub fn known_differences(dir: &Path) -> HashMap<String, i32> {
    let text = std::fs::read_to_string(dir.join("KNOWN-DIFFERENCES.md")).unwrap();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("- `")?;
            let (file, tail) = rest.split_once('`')?;
            let code = tail
                .split("keel exit ")
                .nth(1)?
                .chars()
                .next()?
                .to_digit(10)? as i32;
            Some((file.to_string(), code))
        })
        .collect()
}

/// The exit code of the real `ignition-validate` on a file, or `None` when it is not installed.
pub fn oracle_exit(path: &Path) -> Option<i32> {
    if !Path::new("/usr/bin/ignition-validate").exists() {
        return None;
    }
    Some(
        Command::new("/usr/bin/ignition-validate")
            .arg(path)
            .output()
            .unwrap()
            .status
            .code()
            .unwrap(),
    )
}

/// keel's verdict (0 valid, 1 invalid) and report lines.
pub fn keel_verdict(bytes: &[u8]) -> (i32, Vec<String>) {
    let checked = keel_ignition_config::check(bytes);
    (
        if checked.is_valid() { 0 } else { 1 },
        checked.reports.iter().map(|r| r.to_string()).collect(),
    )
}
