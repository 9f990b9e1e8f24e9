//! `keel health check`: the checks that gate `boot-complete.target`, so that an entry is
//! blessed only when the system came up healthy. Built-in checks (no failed units except our
//! own, `/` and `/var` writable, `podman info` answers) plus executables in
//! `/usr/lib/keel/health.d` and `/etc/keel/health.d` (a file in `/etc` replaces the one of the
//! same name in `/usr/lib`; an empty file or a symlink to /dev/null there disables it).

use keel_utils::cmd;
use keel_utils::fsutil::write_atomic;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit running the checks; its own failure is not counted.
pub const HEALTH_UNIT: &str = "keel-healthcheck.service";

/// Where a failed run is recorded, below the system root (in the shared `/var`, so that
/// `keel status` on the deployment booted after a rollback can say why the other one failed).
pub const FAILURE_RECORD: &str = keel_proto::node::HEALTH_FAILURE_RECORD;

pub use keel_proto::health::{CheckResult, HealthFailure, Report};

fn result(name: &str, r: Result<String, String>) -> CheckResult {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    CheckResult {
        name: name.to_string(),
        ok,
        detail,
    }
}

fn failed_units() -> Result<String, String> {
    let out = cmd::run_stdout(Command::new("systemctl").args([
        "list-units",
        "--state=failed",
        "--plain",
        "--no-legend",
        "--no-pager",
    ]))
    .map_err(|e| e.to_string())?;
    let failed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| *u != HEALTH_UNIT)
        .collect();
    if failed.is_empty() {
        Ok("no failed units".into())
    } else {
        Err(format!("failed units: {}", failed.join(", ")))
    }
}

fn writable(dir: &Path) -> Result<String, String> {
    let probe = dir.join(format!(".keel-health-{}", std::process::id()));
    fs::write(&probe, b"ok").map_err(|e| format!("{}: not writable: {e}", dir.display()))?;
    fs::remove_file(&probe).map_err(|e| format!("{}: {e}", probe.display()))?;
    Ok(format!("{} is writable", dir.display()))
}

fn podman() -> Result<String, String> {
    cmd::run(Command::new("podman").args(["info", "--format", "{{.Version.Version}}"]))
        .map(|o| format!("podman {}", String::from_utf8_lossy(&o.stdout).trim()))
        .map_err(|e| e.to_string())
}

/// Check scripts: name → path, `/etc` replacing `/usr/lib`; disabled ones left out.
pub fn scripts(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for dir in ["usr/lib/keel/health.d", "etc/keel/health.d"] {
        let Ok(rd) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let masked = fs::read_link(&p).is_ok_and(|t| t == Path::new("/dev/null"))
                || fs::metadata(&p).is_ok_and(|m| m.len() == 0);
            if masked {
                out.remove(&name);
            } else if fs::metadata(&p)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            {
                out.insert(name, p);
            }
        }
    }
    out
}

/// Run the checks: built-ins (when `builtin`) for the system at `root`, then the scripts.
pub fn run_checks(root: &Path, builtin: bool) -> Vec<CheckResult> {
    let mut results = Vec::new();
    if builtin {
        results.push(result("failed-units", failed_units()));
        results.push(result("root-writable", writable(root)));
        results.push(result("var-writable", writable(&root.join("var"))));
        results.push(result("podman", podman()));
    }
    for (name, path) in scripts(root) {
        let r = cmd::run(&mut Command::new(&path))
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        results.push(result(&name, r.map_err(|e| e.to_string())));
    }
    results
}

/// Record the failed checks of `results` for deployment `deployment` under `root`.
pub fn record_failure(
    root: &Path,
    deployment: Option<String>,
    results: &[CheckResult],
) -> std::io::Result<()> {
    let f = HealthFailure {
        deployment,
        failed: results.iter().filter(|r| !r.ok).cloned().collect(),
    };
    let p = root.join(FAILURE_RECORD);
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir)?;
    }
    write_atomic(
        &p,
        &serde_json::to_vec_pretty(&f).expect("serializes"),
        0o644,
    )
}

/// After a failed run on the system at `root`: record it (best effort) and, with `reboot`,
/// reboot when the booted entry is still being tried ([`crate::bootfail`]).
pub fn after_failure(root: &Path, results: &[CheckResult], reboot: bool) -> anyhow::Result<()> {
    let booted = crate::Sysroot::open(root, crate::DEFAULT_STATEROOT)
        .ok()
        .and_then(|s| s.booted_name());
    if let Err(e) = record_failure(root, booted, results) {
        tracing::warn!("could not record the failed checks in {FAILURE_RECORD}: {e}");
    }
    if reboot {
        crate::bootfail::handle_failed_boot(
            Path::new(crate::bootfail::EFIVARS),
            Path::new("/proc/cmdline"),
            Some(&root.join("boot/loader/entries")),
        )?;
    }
    Ok(())
}

/// The failure recorded under `root`, if any (an unreadable record counts as none).
pub fn recorded_failure(root: &Path) -> Option<HealthFailure> {
    serde_json::from_slice(&fs::read(root.join(FAILURE_RECORD)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn script(p: &Path, body: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn scripts_run_with_etc_overrides_and_masks() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        script(&r.join("usr/lib/keel/health.d/10-ok"), "echo fine");
        script(
            &r.join("usr/lib/keel/health.d/20-bad"),
            "echo broken >&2; exit 3",
        );
        script(&r.join("usr/lib/keel/health.d/30-masked"), "exit 1");
        script(&r.join("usr/lib/keel/health.d/40-replaced"), "exit 1");
        script(&r.join("etc/keel/health.d/40-replaced"), "echo replaced");
        fs::create_dir_all(r.join("etc/keel/health.d")).unwrap();
        symlink("/dev/null", r.join("etc/keel/health.d/30-masked")).unwrap();
        fs::write(r.join("etc/keel/health.d/50-not-executable"), "x").unwrap();
        let got: Vec<(String, bool)> = run_checks(r, false)
            .into_iter()
            .map(|c| (c.name, c.ok))
            .collect();
        let want = [("10-ok", true), ("20-bad", false), ("40-replaced", true)];
        assert_eq!(got, want.map(|(n, ok)| (n.to_string(), ok)));
        let bad = run_checks(r, false)
            .into_iter()
            .find(|c| c.name == "20-bad")
            .unwrap();
        assert!(bad.detail.contains("broken"), "{}", bad.detail);
    }

    #[test]
    fn failure_record_keeps_only_failed_checks() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(recorded_failure(t.path()), None);
        let results = [
            result("ok-one", Ok("fine".into())),
            result("50-bad", Err("exit status 3: broken".into())),
        ];
        record_failure(t.path(), Some("abc.0".into()), &results).unwrap();
        let got = recorded_failure(t.path()).unwrap();
        assert_eq!(got.deployment.as_deref(), Some("abc.0"));
        assert_eq!(got.summary(), "50-bad: exit status 3: broken");
    }

    #[test]
    fn writable_check_reports_the_directory() {
        let t = tempfile::tempdir().unwrap();
        assert!(writable(t.path()).is_ok());
        let missing = t.path().join("missing");
        assert!(writable(&missing).unwrap_err().contains("missing"));
    }
}
