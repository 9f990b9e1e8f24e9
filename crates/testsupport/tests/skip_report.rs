//! The runner's side of skipped tests (scripts/skips.sh, sourced by scripts/test.sh): skips
//! recorded by `keel_testsupport::skip` are listed, and any skip that scripts/ci-allowed-skips
//! does not allow fails the run, unless KEEL_ALLOW_SKIPS=1.

// The test runs scripts/skips.sh and asserts on its raw exit status and output.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Records `skips` in a fresh log with the real recorder, then runs `function` of
/// scripts/skips.sh on it, enforcing (the default) or with KEEL_ALLOW_SKIPS=1 when not `ci`.
fn run(skips: &[&str], ci: bool, function: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skips");
    std::fs::write(&log, "").unwrap();
    for s in skips {
        keel_utils::skip_log::record_to(Some(&log), s).unwrap();
    }
    let mut c = Command::new("bash");
    c.current_dir(workspace())
        .args([
            "-c",
            &format!("set -euo pipefail; source scripts/skips.sh; {function}"),
        ])
        .env("KEEL_SKIP_LOG", &log)
        .env_remove("CI")
        .env_remove("KEEL_ALLOW_SKIPS");
    if !ci {
        c.env("KEEL_ALLOW_SKIPS", "1");
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Skips that the code really reports and CI allows (each runs elsewhere in the suite).
const ALLOWED: [&str; 4] = [
    "vm_basic: KEEL_VMTEST_IMAGE is not set (scripts/vmtest.sh builds the image and runs the VM tests)",
    "bench_boot: set KEEL_BENCH_BOOT=1 to run the boot benchmark (scripts/bench-boot.sh)",
    "raid1_on_two_loop_devices: this kernel has no md (software RAID) driver (/proc/mdstat missing)",
    "luks2_volume_with_key_file: this kernel has no device-mapper (/dev/mapper/control missing)",
];

/// Skips that must fail a CI run.
const NOT_ALLOWED: [&str; 4] = [
    "image_build_names_a_missing_ref: needs root (the build checks for root first)",
    "vm_upgrade: KEEL_VMTEST_ONLY=basic does not name `upgrade`",
    "butane_snapshots (part): ignition-validate not installed (apt-get install ignition); outputs checked with keel's validator only",
    "raid1_on_two_loop_devices: `mdadm` is not installed (apt-get install mdadm)",
];

#[test]
fn ci_fails_on_a_skip_it_does_not_allow_and_names_it() {
    for bad in NOT_ALLOWED {
        let mut skips = ALLOWED.to_vec();
        skips.push(bad);
        let out = run(&skips, true, "skip_check");
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{bad}: {err}");
        assert!(err.contains(bad), "{bad} not named: {err}");
        for ok in ALLOWED {
            assert!(!err.contains(ok), "{ok} named as not allowed: {err}");
        }
    }
}

#[test]
fn ci_passes_when_every_skip_is_allowed_or_none_happened() {
    for skips in [&ALLOWED[..], &[]] {
        let out = run(skips, true, "skip_check");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

#[test]
fn allowed_by_the_developer_a_skip_is_counted_but_does_not_fail() {
    let out = run(&NOT_ALLOWED[..2], false, "skip_check");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("2 skipped test(s) would fail the suite"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_table_lists_each_skip_once_and_marks_those_ci_refuses() {
    let out = run(
        &[ALLOWED[0], NOT_ALLOWED[0], NOT_ALLOWED[0]],
        false,
        "skip_table",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().filter(|l| !l.is_empty()).skip(1).collect();
    assert_eq!(
        rows,
        [format!("* {}", NOT_ALLOWED[0]), format!("  {}", ALLOWED[0])],
        "{table}"
    );
}

/// The allowed examples above are the lines the tests really print: each one's text is in
/// the source that reports it (the VM files' name comes from a `vm_{file}` template).
#[test]
fn allowed_examples_are_what_the_tests_print() {
    let sources = [
        "crates/vm/src/testmain.rs",
        "crates/vm/tests/bench_boot.rs",
        "crates/provision/tests/disks.rs",
        "crates/provision/tests/disks.rs",
    ];
    for (line, file) in ALLOWED.iter().zip(sources) {
        let source = std::fs::read_to_string(workspace().join(file)).unwrap();
        let expected = line.replacen("vm_basic:", "vm_{file}:", 1);
        assert!(
            source.contains(&expected),
            "{file} does not print `{expected}`"
        );
    }
}
