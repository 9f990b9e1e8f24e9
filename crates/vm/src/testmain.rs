//! The entry point a VM test file needs around its tests: skip visibly without
//! `KEEL_VMTEST_IMAGE` or when `KEEL_VMTEST_ONLY` names none of the file's tests, find the
//! compose repository (`KEEL_VMTEST_REPO`, default `repo` next to the image), make a work
//! directory next to the image, run the selected tests into a report, write the report as JSON
//! (see [`ReportPath`]), keep the work directory with `KEEL_VMTEST_KEEP`, and fail when a check
//! failed.

use crate::harness::{Harness, Report, TestRun};
use anyhow::Context;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where a test file's JSON report goes; the defaults are in the workspace's `target/`.
#[derive(Clone, Copy, Debug)]
pub enum ReportPath {
    /// `KEEL_VMTEST_<FILE>_REPORT`, default `vmtest-<file>-report.json`.
    Own,
    /// `KEEL_VMTEST_REPORT` (scripts/vmtest.sh sets it), default `vmtest-report.json`.
    Suite,
    /// `vmtest-<file>-report.json` in the directory of `KEEL_VMTEST_REPORT`, default `target/`.
    BesideSuite,
}

impl ReportPath {
    /// The report's path for file `vm_<file>.rs`, with `env` looking up environment variables.
    fn resolve(self, file: &str, env: impl Fn(&str) -> Option<OsString>) -> PathBuf {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
        let own = format!("vmtest-{file}-report.json");
        match self {
            ReportPath::Own => env(&format!("KEEL_VMTEST_{}_REPORT", file.to_uppercase()))
                .map_or_else(|| target.join(&own), PathBuf::from),
            ReportPath::Suite => env("KEEL_VMTEST_REPORT")
                .map_or_else(|| target.join("vmtest-report.json"), PathBuf::from),
            ReportPath::BesideSuite => env("KEEL_VMTEST_REPORT").map_or_else(
                || target.join(&own),
                |p| PathBuf::from(p).with_file_name(&own),
            ),
        }
    }
}

/// One test of a file with several.
#[derive(Clone, Copy, Debug)]
pub struct Test {
    /// The record that holds the error when the test fails before adding its own.
    pub name: &'static str,
    /// The `KEEL_VMTEST_ONLY` names that select it (several for cases sharing one VM).
    pub covers: &'static [&'static str],
    /// Boots its VMs for the selected names (all the file's selected names are passed) and adds
    /// its records to the report.
    pub run: fn(&Harness, &mut Report, &[&str]) -> anyhow::Result<()>,
}

/// Run VM test `name` of file `vm_<name>.rs` (`test` gets the harness, the compose repository
/// and its record); the report is [`ReportPath::Own`].
pub fn run(name: &str, test: impl FnOnce(&Harness, &Path, &mut TestRun) -> anyhow::Result<()>) {
    main(name, &[name], ReportPath::Own, |h, repo, _, report| {
        let mut t = TestRun::new(name);
        if let Err(e) = test(h, repo, &mut t) {
            t.check("setup", || Err(e));
        }
        report.tests.push(t);
    });
}

/// Run the tests of file `vm_<file>.rs` that `KEEL_VMTEST_ONLY` selects, in order.
pub fn run_many(file: &str, report: ReportPath, tests: &[Test]) {
    let names: Vec<&str> = tests
        .iter()
        .flat_map(|t| t.covers.iter().copied())
        .collect();
    main(file, &names, report, |h, _, chosen, report| {
        for test in tests
            .iter()
            .filter(|t| t.covers.iter().any(|n| chosen.contains(n)))
        {
            let name = test.name;
            if let Err(e) =
                (test.run)(h, report, chosen).with_context(|| format!("setting up test {name}"))
            {
                let mut t = TestRun::new(name);
                t.check("setup", || Err(e));
                report.tests.push(t);
            }
        }
    });
}

/// Like [`run_many`], but the selected tests run at the same time, each in its own thread with
/// its own VMs of one virtual CPU each (two single-CPU guests on the two-core machine finish
/// sooner than the same guests with two CPUs one after the other); the report keeps the
/// tests' order.
pub fn run_concurrently(file: &str, report: ReportPath, tests: &[Test]) {
    let names: Vec<&str> = tests
        .iter()
        .flat_map(|t| t.covers.iter().copied())
        .collect();
    main(file, &names, report, |h, _, chosen, report| {
        crate::harness::limit_vcpus(1);
        let selected: Vec<&Test> = tests
            .iter()
            .filter(|t| t.covers.iter().any(|n| chosen.contains(n)))
            .collect();
        let parts: Vec<Report> = std::thread::scope(|scope| {
            let handles: Vec<_> = selected
                .iter()
                .map(|test| {
                    let h = &h;
                    let accel = report.accel.clone();
                    scope.spawn(move || {
                        let mut part = Report {
                            accel,
                            tests: Vec::new(),
                        };
                        let name = test.name;
                        if let Err(e) = (test.run)(h, &mut part, chosen)
                            .with_context(|| format!("setting up test {name}"))
                        {
                            let mut t = TestRun::new(name);
                            t.check("setup", || Err(e));
                            part.tests.push(t);
                        }
                        part
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&selected)
                .map(|(handle, test)| {
                    handle.join().unwrap_or_else(|_| {
                        let mut t = TestRun::new(test.name);
                        t.check("setup", || anyhow::bail!("the test's thread panicked"));
                        Report {
                            accel: String::new(),
                            tests: vec![t],
                        }
                    })
                })
                .collect()
        });
        for part in parts {
            report.tests.extend(part.tests);
        }
    });
}

/// The one code path of [`run`], [`run_many`] and [`run_concurrently`]: `body` gets the
/// harness, the compose repository, the selected names of `names` and the report.
fn main(
    file: &str,
    names: &[&str],
    report_path: ReportPath,
    body: impl FnOnce(&Harness, &Path, &[&str], &mut Report),
) {
    let Some(image) = std::env::var_os("KEEL_VMTEST_IMAGE").map(PathBuf::from) else {
        return skip(&format!("vm_{file}: KEEL_VMTEST_IMAGE is not set (scripts/vmtest.sh builds the image and runs the VM tests)"));
    };
    let only = std::env::var("KEEL_VMTEST_ONLY").unwrap_or_default();
    let chosen: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| only.is_empty() || only.split(',').any(|o| o == *n))
        .collect();
    if chosen.is_empty() {
        match names {
            [name] => skip(&format!(
                "vm_{file}: KEEL_VMTEST_ONLY={only} does not name `{name}`"
            )),
            _ => skip(&format!(
                "vm_{file}: KEEL_VMTEST_ONLY={only} names none of {names:?}"
            )),
        }
        return;
    }
    let repo = std::env::var_os("KEEL_VMTEST_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| image.with_file_name("repo"));
    let keel = std::env::var_os("KEEL_BIN").map_or_else(|| PathBuf::from("keel"), PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix(&format!("keel-vmtest-{file}-"))
        .tempdir_in(image.parent().unwrap_or(Path::new("/var/tmp")))
        .expect("a work directory next to the image");
    let h = Harness::new(&image, work.path(), &keel).expect("the VM harness");
    let mut report = Report {
        accel: format!("{:?}", h.accel),
        tests: Vec::new(),
    };
    body(&h, &repo, &chosen, &mut report);
    eprintln!("{}", report.summary());
    let out = report_path.resolve(file, |k| std::env::var_os(k));
    report.write_json(&out).expect("writing the report");
    eprintln!("report: {}", out.display());
    if std::env::var_os("KEEL_VMTEST_KEEP").is_some() {
        eprintln!("keeping {}", work.keep().display());
    }
    assert!(report.passed(), "VM tests failed:\n{}", report.summary());
}

/// Records a skipped VM test file in the skip log ([`keel_utils::skip_log`]); panics when the
/// log cannot be written, so a skip never goes unrecorded.
fn skip(what: &str) {
    if let Err(e) = keel_utils::skip_log::record(what) {
        panic!("cannot record the skip `{what}` in the skip log: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_paths() {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
        let cases = [
            (
                ReportPath::Own,
                "upgrade",
                None,
                target.join("vmtest-upgrade-report.json"),
            ),
            (
                ReportPath::Own,
                "rollback",
                Some(("KEEL_VMTEST_ROLLBACK_REPORT", "/w/rb.json")),
                PathBuf::from("/w/rb.json"),
            ),
            (
                ReportPath::Own,
                "fleet",
                Some(("KEEL_VMTEST_REPORT", "/w/vmtest-report.json")),
                target.join("vmtest-fleet-report.json"),
            ),
            (
                ReportPath::Suite,
                "suite",
                None,
                target.join("vmtest-report.json"),
            ),
            (
                ReportPath::Suite,
                "suite",
                Some(("KEEL_VMTEST_REPORT", "/w/vmtest-report.json")),
                PathBuf::from("/w/vmtest-report.json"),
            ),
            (
                ReportPath::BesideSuite,
                "disks",
                None,
                target.join("vmtest-disks-report.json"),
            ),
            (
                ReportPath::BesideSuite,
                "disks",
                Some(("KEEL_VMTEST_REPORT", "/w/vmtest-report.json")),
                PathBuf::from("/w/vmtest-disks-report.json"),
            ),
        ];
        for (at, file, var, want) in cases {
            let got = at.resolve(file, |k| {
                var.filter(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
            });
            assert_eq!(got, want, "{at:?} for vm_{file}.rs with {var:?}");
        }
    }
}
