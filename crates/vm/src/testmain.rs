//! The entry point a VM test file needs around its test function: skip visibly without
//! `KEEL_VMTEST_IMAGE` or when `KEEL_VMTEST_ONLY` does not name the test, find the compose
//! repository (`KEEL_VMTEST_REPO`, default `repo` next to the image), make a work directory
//! next to the image, run the test into a report, write the report as JSON
//! (`KEEL_VMTEST_<NAME>_REPORT`, default `target/vmtest-<name>-report.json`), keep the work
//! directory with `KEEL_VMTEST_KEEP`, and fail when a check failed.

use crate::harness::{Harness, Report, TestRun};
use std::path::{Path, PathBuf};

/// Run VM test `name` (`test` gets the harness, the compose repository and its record).
pub fn run(name: &str, test: impl FnOnce(&Harness, &Path, &mut TestRun) -> anyhow::Result<()>) {
    let Some(image) = std::env::var_os("KEEL_VMTEST_IMAGE").map(PathBuf::from) else {
        eprintln!("SKIP: vm_{name}: KEEL_VMTEST_IMAGE is not set (scripts/vmtest.sh builds the image and runs the VM tests)");
        return;
    };
    let only = std::env::var("KEEL_VMTEST_ONLY").unwrap_or_default();
    if !(only.is_empty() || only.split(',').any(|o| o == name)) {
        eprintln!("SKIP: vm_{name}: KEEL_VMTEST_ONLY={only} does not name `{name}`");
        return;
    }
    let repo = std::env::var_os("KEEL_VMTEST_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| image.with_file_name("repo"));
    let keel = std::env::var_os("KEEL_BIN").map_or_else(|| PathBuf::from("keel"), PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix(&format!("keel-vmtest-{name}-"))
        .tempdir_in(image.parent().unwrap_or(Path::new("/var/tmp")))
        .expect("a work directory next to the image");
    let h = Harness::new(&image, work.path(), &keel).expect("the VM harness");
    let mut report = Report {
        accel: format!("{:?}", h.accel),
        tests: Vec::new(),
    };
    let mut t = TestRun::new(name);
    if let Err(e) = test(&h, &repo, &mut t) {
        t.check("setup", || Err(e));
    }
    report.tests.push(t);
    eprintln!("{}", report.summary());
    let out = std::env::var_os(format!("KEEL_VMTEST_{}_REPORT", name.to_uppercase()))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../target/vmtest-{name}-report.json"))
        });
    report.write_json(&out).expect("writing the report");
    eprintln!("report: {}", out.display());
    if std::env::var_os("KEEL_VMTEST_KEEP").is_some() {
        eprintln!("keeping {}", work.keep().display());
    }
    assert!(report.passed(), "VM tests failed:\n{}", report.summary());
}
