//! Differential test over the upstream corpus: for every config whose recorded verdict comes
//! from Ignition 2.14, run the real `ignition-validate` now and require the same verdict from
//! keel; for the others (specs 2.14 does not know) require the recorded verdict. Cases listed in
//! corpus/KNOWN-DIFFERENCES.md expect keel's own verdict.

mod common;

use common::{keel_verdict, known_differences, oracle_exit};
use std::path::{Path, PathBuf};

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

#[test]
fn corpus_verdicts_match_ignition() {
    let have_oracle = Path::new("/usr/bin/ignition-validate").exists();
    if !have_oracle {
        keel_testsupport::skip("corpus_verdicts_match_ignition (part): ignition-validate not installed (apt-get install ignition); checking recorded verdicts only");
    }
    let known = known_differences(&corpus_dir());
    let mut mismatches = Vec::new();
    let (mut live, mut same_first_line, mut total) = (0, 0, 0);
    for row in rows() {
        let path = corpus_dir().join(&row.file);
        let bytes = std::fs::read(&path).unwrap();
        let (keel, lines) = keel_verdict(&bytes);
        total += 1;
        let mut want = row.exit_code;
        if let Some(code) = oracle_exit(&path).filter(|_| row.oracle == "ignition-2.14") {
            live += 1;
            want = code;
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
