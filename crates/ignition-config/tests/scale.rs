//! Large configs stay fast: a 20 000-file config on a single line (the shape machine-generated
//! configs have) must be checked in linear time. This once took minutes because each position
//! was computed by rescanning the line.

use std::time::{Duration, Instant};

#[test]
fn large_single_line_config_is_checked_quickly() {
    let files: Vec<String> = (0..20_000)
        .map(|i| {
            format!(r#"{{"path":"/etc/f{i}","mode":420,"contents":{{"source":"data:,x{i}"}}}}"#)
        })
        .collect();
    let json = format!(
        r#"{{"ignition":{{"version":"3.3.0"}},"storage":{{"files":[{}]}}}}"#,
        files.join(",")
    );
    let start = Instant::now();
    let checked = keel_ignition_config::check(json.as_bytes());
    let took = start.elapsed();
    assert!(checked.is_valid(), "{:?}", checked.reports.first());
    assert_eq!(checked.config.unwrap().storage().files.len(), 20_000);
    eprintln!("checked {} bytes with 20000 files in {took:?}", json.len());
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
