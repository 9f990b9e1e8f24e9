//! `keel image build` and `keel run` errors a person can act on: a missing ref is named, a
//! format that cannot be guessed is asked for, a missing image points at `keel image build`.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Output};

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("running keel")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn image_build_names_a_missing_ref() {
    if !keel_testsupport::is_root() {
        keel_testsupport::skip(
            "image_build_names_a_missing_ref: needs root (the build checks for root first)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let init = keel(&["repo", "--repo", repo_s, "init", "--mode", "archive"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let out_s = dir.path().join("keel.qcow2");
    let o = keel(&[
        "image",
        "build",
        "--repo",
        repo_s,
        "--ref",
        "keel/testing/x86_64",
        "--platform",
        "qemu",
        "-o",
        out_s.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("keel/testing/x86_64") && e.contains("keel compose"),
        "{e}"
    );
    assert!(!out_s.exists(), "no output on failure");
}

#[test]
fn image_build_asks_for_a_format_and_run_for_an_image() {
    let o = keel(&[
        "image",
        "build",
        "--repo",
        "/nonexistent",
        "--platform",
        "metal",
        "-o",
        "disk.vmdk",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--format qcow2|raw|raw.xz"),
        "{}",
        stderr(&o)
    );
    let o = keel(&["run", "/nonexistent/keel.qcow2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("keel image build"), "{}", stderr(&o));
    for help in [&["image", "build", "--help"][..], &["run", "--help"][..]] {
        let o = keel(help);
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Example"));
    }
}
