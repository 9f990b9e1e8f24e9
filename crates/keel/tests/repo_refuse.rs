//! `keel repo commit` refuses what OSTree cannot store (device nodes, fifos, sockets) and files
//! it cannot read, with an error naming the path, and moves no ref.
//!
//! The unreadable file: root reads any file regardless of its mode, so the commit runs as user
//! 65534 (`setpriv --reuid=65534 --regid=65534 --clear-groups`) into a bare-user repository it
//! owns, and the tree holds a root-owned mode-0600 file: `open()` fails with EACCES for real.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_testsupport::gen::{special_file, Special};
use keel_testsupport::tools::{assert_success, CommitOpts, Tool};
use keel_testsupport::{require, scratch_dir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn keel() -> Tool {
    Tool::Keel(env!("CARGO_BIN_EXE_keel").into())
}

/// A small tree whose first commit succeeds.
fn base_tree(tree: &Path) {
    std::fs::create_dir_all(tree.join("etc/sub")).unwrap();
    std::fs::write(tree.join("etc/hostname"), b"keel\n").unwrap();
    std::fs::write(tree.join("etc/sub/file"), b"content\n").unwrap();
}

fn assert_refused(out: &std::process::Output, path: &Path, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: commit succeeded but must fail"
    );
    assert!(
        stderr.contains(&path.display().to_string())
            || stderr.contains(path.file_name().unwrap().to_str().unwrap()),
        "{what}: error does not name {}:\n{stderr}",
        path.display()
    );
}

#[test]
fn special_files_are_refused_with_their_path_and_no_ref_moves() {
    if !require(
        "special_files_are_refused_with_their_path_and_no_ref_moves",
        &["ostree"],
    ) {
        return;
    }
    let cases = [
        (Special::CharDevice, "etc/sub/null-device"),
        (Special::BlockDevice, "etc/loop-device"),
        (Special::Fifo, "etc/sub/a fifo"),
        (Special::Socket, "socket"),
    ];
    let dir = scratch_dir("refuse");
    let keel = keel();
    for (kind, rel) in cases {
        let case = dir.path().join(rel.replace('/', "_"));
        let (tree, repo) = (case.join("tree"), case.join("repo"));
        base_tree(&tree);
        keel.init(&repo, "bare");
        let before = keel.commit(&repo, "os/base", &tree, &CommitOpts::default());
        let special = tree.join(rel);
        special_file(&special, kind)
            .unwrap_or_else(|e| panic!("{kind:?} at {}: {e}", special.display()));
        let args = keel.commit_args("os/base", &tree, &CommitOpts::default());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = keel.output(&repo, "commit", &args);
        assert_refused(&out, &special, &format!("{kind:?}"));
        assert_eq!(
            keel.rev_parse(&repo, "os/base"),
            before,
            "{kind:?}: the ref moved"
        );
        assert_success(
            &keel.fsck(&repo),
            &format!("{kind:?}: keel fsck after the refused commit"),
        );
        assert_success(
            &Tool::Ostree.fsck(&repo),
            &format!("{kind:?}: ostree fsck after the refused commit"),
        );
    }
}

#[test]
fn unreadable_file_aborts_the_commit_with_its_path_and_no_ref_moves() {
    if !require(
        "unreadable_file_aborts_the_commit_with_its_path_and_no_ref_moves",
        &["setpriv"],
    ) {
        return;
    }
    let dir = scratch_dir("unreadable");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (tree, repo) = (dir.path().join("tree"), dir.path().join("repo"));
    base_tree(&tree);
    std::fs::create_dir(&repo).unwrap();
    std::os::unix::fs::chown(&repo, Some(65534), Some(65534)).unwrap();
    // The build tree may sit below a directory user 65534 cannot enter (e.g. /root): run a copy.
    let bin = dir.path().join("keel");
    std::fs::copy(env!("CARGO_BIN_EXE_keel"), &bin).expect("copy the keel binary");
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["repo", "--repo"])
            .arg(&repo)
            .args(args);
        c.output().expect("run setpriv")
    };
    assert_success(
        &as_nobody(&["init", "--mode", "bare-user"]),
        "init as nobody",
    );
    let first = as_nobody(&["commit", "-b", "os/base", tree.to_str().unwrap()]);
    assert_success(&first, "first commit as nobody");
    let before = String::from_utf8_lossy(&first.stdout).trim().to_string();

    let secret = tree.join("etc/sub/secret");
    std::fs::write(&secret, b"only root may read this\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = as_nobody(&["commit", "-b", "os/base", tree.to_str().unwrap()]);
    assert_refused(&out, &secret, "unreadable file");
    let now = as_nobody(&["rev-parse", "os/base"]);
    assert_success(&now, "rev-parse as nobody");
    assert_eq!(
        String::from_utf8_lossy(&now.stdout).trim(),
        before,
        "the ref moved"
    );
    assert_success(&as_nobody(&["fsck"]), "keel fsck after the aborted commit");
}
