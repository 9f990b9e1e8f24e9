//! Shared by the CLI tests that drive a node's directory sysroot with `keel … --sysroot`.

// The helpers run keel and assert on its raw exit status and output.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

pub const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// The ref the tests publish and the node follows (remote `keel`).
pub const REF: &str = "keel/test";

/// stdout then stderr of a finished command.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A node's directory sysroot, driven through the `keel` binary.
pub struct NodeCli {
    pub sysroot: PathBuf,
}

impl NodeCli {
    /// `keel ARGS --sysroot SYSROOT`.
    pub fn node(&self, args: &[&str]) -> Output {
        Command::new(KEEL)
            .args(args)
            .arg("--sysroot")
            .arg(&self.sysroot)
            .output()
            .unwrap()
    }

    /// The same, which must succeed; its stdout.
    pub fn node_ok(&self, args: &[&str]) -> String {
        let out = self.node(args);
        assert!(out.status.success(), "keel {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The same, whose stdout is a JSON document.
    pub fn node_json(&self, args: &[&str]) -> Value {
        let v: Value = serde_json::from_str(&self.node_ok(args)).expect("JSON on stdout");
        match args.first() {
            Some(&"status") => keel_testsupport::schema::assert_valid("status", &v),
            Some(&"upgrade" | &"deploy") => keel_testsupport::schema::assert_valid("upgrade", &v),
            _ => {}
        }
        v
    }

    /// The system repository.
    pub fn repo(&self) -> PathBuf {
        self.sysroot.join("ostree/repo")
    }

    /// The deployments' directory names, sorted.
    pub fn deployments(&self) -> Vec<String> {
        let d = self.sysroot.join("ostree/deploy/keel/deploy");
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".origin"))
            .collect();
        v.sort();
        v
    }

    /// Where `keel:REF` points in the system repository.
    pub fn remote_ref(&self) -> Option<String> {
        fs::read_to_string(self.repo().join("refs/remotes/keel").join(REF))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Whether a deployment is staged.
    pub fn staged(&self) -> bool {
        self.sysroot.join("run/keel/staged-deployment").exists()
    }

    /// What a refused upgrade must leave as it was: the remote ref, the deployments, staging.
    pub fn snapshot(&self) -> (Option<String>, Vec<String>, bool) {
        (self.remote_ref(), self.deployments(), self.staged())
    }
}
