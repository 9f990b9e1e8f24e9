//! Differential test over the upstream corpus: for every config whose recorded verdict comes
//! from Ignition 2.14, run the real `ignition-validate` now and require the same verdict from
//! keel; for the others (specs 2.14 does not know) require the recorded verdict. Cases listed in
//! corpus/KNOWN-DIFFERENCES.md expect keel's own verdict.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

struct Row {
    file: String,
    exit_code: i32,
    first_error: String,
    oracle: String,
}

fn rows() -> Vec<Row> {
    let tsv = std::fs::read_to_string(corpus_dir().join("expected.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Row {
                file: cols[0].into(),
                exit_code: cols[1].parse().unwrap(),
                first_error: cols[2].into(),
                oracle: cols[3].into(),
            }
        })
        .collect()
}

/// `file -> keel's exit code` for the documented deliberate differences.
fn known_differences() -> HashMap<String, i32> {
    let text = std::fs::read_to_string(corpus_dir().join("KNOWN-DIFFERENCES.md")).unwrap();
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

fn keel_verdict(bytes: &[u8]) -> (i32, Vec<String>) {
    let checked = keel_ignition_config::check(bytes);
    (
        if checked.is_valid() { 0 } else { 1 },
        checked.reports.iter().map(|r| r.to_string()).collect(),
    )
}

#[test]
fn corpus_verdicts_match_ignition() {
    let have_oracle = Path::new("/usr/bin/ignition-validate").exists();
    if !have_oracle {
        eprintln!("SKIP: ignition-validate not installed (Debian package `ignition`); checking recorded verdicts only");
    }
    let known = known_differences();
    let mut mismatches = Vec::new();
    let (mut live, mut same_first_line, mut total) = (0, 0, 0);
    for row in rows() {
        let path = corpus_dir().join(&row.file);
        let bytes = std::fs::read(&path).unwrap();
        let (keel, lines) = keel_verdict(&bytes);
        total += 1;
        let mut want = row.exit_code;
        if row.oracle == "ignition-2.14" && have_oracle {
            let out = Command::new("ignition-validate")
                .arg(&path)
                .output()
                .unwrap();
            live += 1;
            want = out.status.code().unwrap();
            assert_eq!(
                want, row.exit_code,
                "{}: ignition-validate now disagrees with expected.tsv",
                row.file
            );
        }
        if let Some(k) = known.get(&row.file) {
            want = *k;
        }
        if keel != want {
            mismatches.push(format!(
                "{}: keel exit {keel}, expected {want} ({}); keel said: {lines:?}",
                row.file, row.first_error
            ));
        }
        let first_error = lines
            .iter()
            .find(|l| l.starts_with("error"))
            .cloned()
            .unwrap_or_default();
        if !row.first_error.is_empty() && first_error == row.first_error {
            same_first_line += 1;
        }
    }
    eprintln!("corpus: {total} configs, {live} checked live against ignition-validate, {same_first_line} with an identical first error line");
    assert!(
        mismatches.is_empty(),
        "{} verdict mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
