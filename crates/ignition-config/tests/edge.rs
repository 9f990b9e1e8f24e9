//! keel's own edge cases (tests/edge/*.json): keel's report lines must equal the committed
//! insta snapshot `NAME.snap`, and for configs of spec 3.0-3.3 (and unreadable ones) the verdict
//! must equal the real `ignition-validate`'s, except for the cases in edge/KNOWN-DIFFERENCES.md.
//! Set INSTA_UPDATE=always to write missing or changed snapshots (then review the diff).

mod common;

use common::{keel_verdict, known_differences, oracle_exit};
use keel_testsupport::snapshot;
use std::path::Path;

#[test]
fn edge_cases_match_snapshots_and_ignition() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/edge");
    let known = known_differences(&dir);
    let mut problems = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "edge cases missing from {}",
        dir.display()
    );
    let mut live = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let (keel, lines) = keel_verdict(&bytes);
        let got = format!(
            "exit {keel}\n{}",
            lines.iter().map(|l| format!("{l}\n")).collect::<String>()
        );
        let stem = path.file_stem().unwrap().to_string_lossy();
        if let Err(diff) = snapshot::check(&dir, &path, &stem, &got) {
            problems.push(format!("{name}: {diff}"));
        }
        let checked = keel_ignition_config::check(&bytes);
        let oracle_knows = checked
            .version
            .is_none_or(|v| v.minor <= 3 && !v.experimental);
        if let Some(code) = oracle_exit(&path).filter(|_| oracle_knows) {
            live += 1;
            let expected = known.get(&name).copied().unwrap_or(code);
            if keel != expected {
                problems.push(format!(
                    "{name}: keel exit {keel}, ignition-validate exit {code}"
                ));
            }
        }
    }
    eprintln!("edge cases: {live} compared live with ignition-validate");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
