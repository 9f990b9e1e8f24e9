//! Corruption: `keel repo fsck` reports a flipped byte, a truncated object and a missing object
//! of every object type (commit, dirtree, dirmeta, content file), in bare and archive modes, by
//! checksum and kind, and exits non-zero. `ostree fsck` must reject the same damage (so the
//! damage is real, not an artefact of the test).

use keel_testsupport::gen::bulk_tree;
use keel_testsupport::tools::{assert_success, CommitOpts, Tool};
use keel_testsupport::{require, scratch_dir};
use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

fn keel() -> Tool {
    Tool::Keel(env!("CARGO_BIN_EXE_keel").into())
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// XOR 0xff into the middle byte.
    FlipByte,
    /// Cut to half its length.
    Truncate,
    /// Delete it.
    Remove,
}

/// The largest object of `kind` (an object-type name, also its file extension except `file`
/// in archive repos) and its checksum.
fn pick_object(repo: &Path, ext: &str) -> (PathBuf, String) {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(repo.join("objects")).unwrap() {
        let dir = dir.unwrap().path();
        for obj in std::fs::read_dir(&dir).unwrap() {
            let obj = obj.unwrap().path();
            if obj.extension().and_then(|e| e.to_str()) == Some(ext) {
                let meta = std::fs::symlink_metadata(&obj).unwrap();
                if meta.is_file() {
                    let checksum = format!(
                        "{}{}",
                        dir.file_name().unwrap().to_str().unwrap(),
                        obj.file_stem().unwrap().to_str().unwrap()
                    );
                    found.push((meta.len(), checksum, obj));
                }
            }
        }
    }
    found.sort();
    let (_, checksum, path) = found
        .pop()
        .unwrap_or_else(|| panic!("no .{ext} object in {}", repo.display()));
    (path, checksum)
}

fn damage(path: &Path, how: Damage) {
    match how {
        Damage::FlipByte => {
            let mut bytes = std::fs::read(path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(path, &bytes).unwrap();
        }
        Damage::Truncate => {
            let len = std::fs::metadata(path).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }
        Damage::Remove => std::fs::remove_file(path).unwrap(),
    }
}

#[test]
fn fsck_reports_each_damaged_object_by_checksum_and_kind() {
    if !require(
        "fsck_reports_each_damaged_object_by_checksum_and_kind",
        &["ostree"],
    ) {
        return;
    }
    let dir = scratch_dir("corrupt");
    let tree = dir.path().join("tree");
    bulk_tree(&tree, 3, 100, 8 << 10).expect("generate tree");
    std::fs::create_dir(tree.join("d000/empty-dir")).unwrap();
    let keel = keel();
    let mut cases = 0;
    for mode in ["bare", "archive"] {
        let base = dir.path().join(format!("base-{mode}"));
        keel.init(&base, mode);
        keel.commit(&base, "os/x86_64", &tree, &CommitOpts::default());
        assert_success(
            &keel.fsck(&base),
            &format!("{mode}: keel fsck before damage"),
        );
        let file_ext = if mode == "archive" { "filez" } else { "file" };
        for (kind, ext) in [
            ("commit", "commit"),
            ("dirtree", "dirtree"),
            ("dirmeta", "dirmeta"),
            ("file", file_ext),
        ] {
            for how in [Damage::FlipByte, Damage::Truncate, Damage::Remove] {
                let context = format!("{mode} repo, {how:?} on a {kind} object");
                let repo = dir.path().join("case");
                cmd::run(Command::new("cp").arg("-a").arg(&base).arg(&repo)).expect("copy repo");
                let (path, checksum) = pick_object(&repo, ext);
                damage(&path, how);

                let out = keel.fsck(&repo);
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    !out.status.success(),
                    "{context}: keel fsck exited 0:\n{text}"
                );
                assert!(
                    text.lines()
                        .any(|l| l.contains(&checksum) && l.contains(kind)),
                    "{context}: keel fsck output has no line naming {kind} {checksum}:\n{text}"
                );
                let ostree = Tool::Ostree.fsck(&repo);
                assert!(!ostree.status.success(), "{context}: ostree fsck accepts the damage, so the test did not damage anything");
                std::fs::remove_dir_all(&repo).unwrap();
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 24);
}
