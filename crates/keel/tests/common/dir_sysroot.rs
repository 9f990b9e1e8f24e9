//! A directory sysroot driven through the `keel` binary, shared by the node-command tests
//! (`deploy.rs`, `node_habits.rs`).

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const KEEL: &str = env!("CARGO_BIN_EXE_keel");

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Run `cmd`, which must succeed; its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory sysroot (`keel init-sysroot`) whose repository gets commits from `ostree commit`.
pub struct DirSysroot {
    _dir: tempfile::TempDir,
    pub base: PathBuf,
    pub sysroot: PathBuf,
}

impl DirSysroot {
    /// A fresh sysroot, or `None` (the test is skipped) without ostree, cp or chattr.
    pub fn new(test: &str) -> Option<DirSysroot> {
        if !keel_testsupport::require(test, &["ostree", "cp", "chattr"]) {
            return None;
        }
        let dir = keel_testsupport::scratch_dir("deploy");
        let base = dir.path().to_path_buf();
        let sysroot = base.join("sysroot");
        ok(Command::new(KEEL)
            .args(["init-sysroot", "--sysroot"])
            .arg(&sysroot));
        Some(DirSysroot {
            _dir: dir,
            base,
            sysroot,
        })
    }

    /// `keel ARGS --sysroot SYSROOT`.
    pub fn keel(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KEEL);
        c.args(args).arg("--sysroot").arg(&self.sysroot);
        c
    }

    /// Commit a tree (the base defaults, then `edit`) as `version` on ref keel/test.
    pub fn commit(&self, version: &str, edit: impl Fn(&Path)) -> String {
        let t = self.base.join(format!("tree-{version}"));
        let _ = fs::remove_dir_all(&t);
        let k = t.join("usr/lib/modules/6.1.0-test");
        fs::create_dir_all(&k).unwrap();
        fs::create_dir_all(t.join("usr/etc/sub")).unwrap();
        fs::write(k.join("vmlinuz"), format!("kernel {version}")).unwrap();
        fs::write(k.join("initramfs.img"), "initramfs").unwrap();
        for (p, c) in [
            ("foo.conf", "foo1"),
            ("bar.conf", "bar1"),
            ("same.conf", "same1"),
            ("sub/x", "x1"),
        ] {
            fs::write(t.join("usr/etc").join(p), c).unwrap();
        }
        edit(&t);
        let out = ok(Command::new("ostree")
            .arg(format!(
                "--repo={}",
                self.sysroot.join("ostree/repo").display()
            ))
            .args(["commit", "-b", "keel/test", "-s", version])
            .arg(format!("--add-metadata-string=version={version}"))
            .arg(format!("--tree=dir={}", t.display())));
        out.trim().to_string()
    }

    /// `keel status --json`, checked against its schema.
    pub fn status(&self, booted: Option<&str>) -> Value {
        let mut c = self.keel(&["status", "--json"]);
        if let Some(b) = booted {
            c.args(["--assume-booted", b]);
        }
        let v = serde_json::from_str(&ok(&mut c)).expect("status JSON");
        keel_testsupport::schema::assert_valid("status", &v);
        v
    }

    /// The deployments' names, default first.
    pub fn names(&self) -> Vec<String> {
        self.status(None)["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["deployment"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for DirSysroot {
    /// ostree makes deployment roots immutable: clear that so the scratch directory goes away.
    fn drop(&mut self) {
        if let Ok(rd) = fs::read_dir(self.sysroot.join("ostree/deploy/keel/deploy")) {
            for e in rd.flatten() {
                let _ = Command::new("chattr").arg("-i").arg(e.path()).status();
            }
        }
    }
}
