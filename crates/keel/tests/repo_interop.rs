//! Byte compatibility of `keel repo` with the real `ostree` CLI (2022.7), both ways, on a
//! generated tricky tree (see keel_testsupport::gen::tricky_tree), in the bare, bare-user and
//! archive modes.
//!
//! What "identical checkout" means here:
//! - normal checkouts (root, every mode): type, all mode bits incl. set-id/sticky, uid/gid,
//!   content, symlink targets and all xattrs (user, security, trusted) equal the source tree;
//! - user-mode checkouts (`ostree checkout -U` / `keel repo checkout --user-mode`): files belong
//!   to the caller and no xattrs are applied, so type, content, symlink targets and permission
//!   bits (by the rule in keel_testsupport::compare::ModeRule::UserMode) are compared.

use keel_testsupport::gen::{self, TrickyOptions};
use keel_testsupport::tools::{assert_success, CommitOpts, Tool, MODES};
use keel_testsupport::{checkouts, compare};
use keel_testsupport::{require, scratch_dir};
use std::path::{Path, PathBuf};

fn keel() -> Tool {
    Tool::Keel(env!("CARGO_BIN_EXE_keel").into())
}

/// Tree with the given large-file size and number of small files, and a recorded skip per
/// xattr namespace the scratch filesystem does not support.
fn tricky(dir: &Path, large_file_bytes: u64, small_files: usize) -> PathBuf {
    let tree = dir.join("tree");
    let opts = TrickyOptions {
        large_file_bytes,
        small_files,
        ..Default::default()
    };
    let generated = gen::tricky_tree(&tree, &opts).expect("generate tricky tree");
    for ns in ["user", "security", "trusted"] {
        if !generated.xattr_namespaces.contains(&ns) {
            keel_testsupport::skip(&format!(
                "repo_interop (part): {ns}.* xattrs not supported on {}; trees checked without them",
                dir.display()
            ));
        }
    }
    tree
}

/// Commit `tree` with `writer` into a fresh `mode` repo under `dir`, run both fscks, compare
/// both tools' `ls -R -C` of it, check it out with each reader (normal and user mode) and
/// compare every checkout with the source.
/// Returns every failure (so one run reports all of them), each with its context.
fn roundtrip(writer: &Tool, readers: &[Tool], mode: &str, tree: &Path, dir: &Path) -> Vec<String> {
    let repo = dir.join(format!("{}-{mode}", writer.name()));
    writer.init(&repo, mode);
    let rev = writer.commit(&repo, "test/tricky", tree, &CommitOpts::default());
    let mut failures = Vec::new();
    for fsck in [Tool::Ostree, keel()] {
        let out = fsck.fsck(&repo);
        if !out.status.success() {
            failures.push(format!(
                "{} fsck of the {mode} repo written by {} failed:\n{}{}",
                fsck.name(),
                writer.name(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let listings: Vec<String> = [Tool::Ostree, keel()]
        .iter()
        .map(|t| t.ok(&repo, "ls", &["-R", "-C", &rev]))
        .collect();
    if listings[0] != listings[1] {
        failures.push(format!(
            "`ls -R -C` of the {mode} repo written by {}: ostree and keel list it differently",
            writer.name()
        ));
    }
    for reader in readers {
        for (user_mode, opts) in [(false, checkouts::exact()), (true, checkouts::user_mode())] {
            let context = format!(
                "{mode} repo written by {}, checked out by {}{}",
                writer.name(),
                reader.name(),
                if user_mode { " in user mode" } else { "" }
            );
            let dest = dir.join(format!(
                "co-{}-{mode}-{}-{user_mode}",
                writer.name(),
                reader.name()
            ));
            reader.checkout(&repo, &rev, &dest, user_mode);
            let diffs = compare::compare(tree, &dest, &opts).expect("compare trees");
            if !diffs.is_empty() {
                let list: Vec<String> = diffs.iter().map(|d| format!("  {d}")).collect();
                failures.push(format!(
                    "{context}: differs from the source:\n{}",
                    list.join("\n")
                ));
            }
        }
    }
    failures
}

fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The harness itself: ostree commit then ostree checkout reproduces the generated tree under
/// the comparator, in every mode. If this fails, the generator or comparator is wrong.
#[test]
fn harness_ostree_roundtrip_reproduces_tree() {
    if !require("harness_ostree_roundtrip_reproduces_tree", &["ostree"]) {
        return;
    }
    let dir = scratch_dir("harness");
    let tree = tricky(dir.path(), 1 << 20, 20);
    let mut failures = Vec::new();
    for mode in MODES {
        failures.extend(roundtrip(
            &Tool::Ostree,
            &[Tool::Ostree],
            mode,
            &tree,
            dir.path(),
        ));
    }
    assert_no_failures(&failures);
}

/// Keel writes every mode; `ostree fsck` and keel's fsck pass, and checkouts by ostree and by
/// keel, normal and user-mode, reproduce the source tree (incl. a 30 MB sparse-ish file).
#[test]
fn keel_written_repos_pass_ostree_fsck_and_check_out_identically() {
    if !require(
        "keel_written_repos_pass_ostree_fsck_and_check_out_identically",
        &["ostree"],
    ) {
        return;
    }
    let dir = scratch_dir("keel-writes");
    let tree = tricky(dir.path(), 30 << 20, 100);
    let mut failures = Vec::new();
    for mode in MODES {
        failures.extend(roundtrip(
            &keel(),
            &[Tool::Ostree, keel()],
            mode,
            &tree,
            dir.path(),
        ));
    }
    assert_no_failures(&failures);
}

/// ostree writes every mode; keel's fsck passes and keel's checkouts reproduce the source.
#[test]
fn ostree_written_repos_pass_keel_fsck_and_check_out_identically() {
    if !require(
        "ostree_written_repos_pass_keel_fsck_and_check_out_identically",
        &["ostree"],
    ) {
        return;
    }
    let dir = scratch_dir("ostree-writes");
    let tree = tricky(dir.path(), 4 << 20, 100);
    let mut failures = Vec::new();
    for mode in MODES {
        failures.extend(roundtrip(&Tool::Ostree, &[keel()], mode, &tree, dir.path()));
    }
    assert_no_failures(&failures);
}

/// Same tree, ref, subject, body, timestamp (and metadata) give the same commit checksum from
/// both tools, for a root commit and for a second commit on the same ref (auto parent). All
/// metadata variants in bare mode; checksums do not depend on the mode, so the other modes are
/// checked with one variant each.
#[test]
fn commit_checksums_equal_ostree() {
    if !require("commit_checksums_equal_ostree", &["ostree"]) {
        return;
    }
    let dir = scratch_dir("checksums");
    let tree = tricky(dir.path(), 1 << 20, 20);
    let plain: Vec<(&str, &str)> = vec![];
    let version = vec![("version", "12.20260101.0")];
    let two_keys = vec![("version", "1.0"), ("keel.channel", "stable")];
    let cases = [
        ("bare", "plain", plain),
        ("bare", "version", version.clone()),
        ("bare", "two-keys", two_keys),
        ("bare-user", "version", version.clone()),
        ("archive", "version", version),
    ];
    for (mode, name, metadata) in cases {
        let opts = CommitOpts {
            subject: Some("Release ✓"),
            body: Some("Body line one\nline two"),
            timestamp: Some(1_577_836_800),
            metadata,
            parent: None,
        };
        let second = CommitOpts {
            subject: Some("second"),
            timestamp: Some(1_577_840_000),
            ..opts.clone()
        };
        let mut sums = Vec::new();
        for tool in [Tool::Ostree, keel()] {
            let repo = dir.path().join(format!("{}-{mode}-{name}", tool.name()));
            tool.init(&repo, mode);
            let first = tool.commit(&repo, "os/x86_64", &tree, &opts);
            let next = tool.commit(&repo, "os/x86_64", &tree.join("names"), &second);
            sums.push((first, next));
        }
        assert_eq!(
            sums[0], sums[1],
            "{mode} repo, metadata {name}: (root commit, second commit) checksums ostree vs keel"
        );
    }
}

/// Modify the tree between two commits: change content, mode and owner, delete and add.
fn second_version(tree: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(tree.join("names/a"), b"changed content\n").unwrap();
    std::fs::set_permissions(tree.join("names/A"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(tree.join("hard/dup-a"), Some(4242), None).unwrap();
    std::fs::remove_file(tree.join("links/dangling")).unwrap();
    std::fs::remove_dir_all(tree.join("empty/a")).unwrap();
    std::fs::write(tree.join("empty/new file"), b"new\n").unwrap();
}

fn stdout_of(tool: &Tool, repo: &Path, sub: &str, args: &[&str]) -> Vec<u8> {
    let out = tool.output(repo, sub, args);
    assert_success(&out, &format!("{} {sub} {args:?}", tool.name()));
    out.stdout
}

fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// keel's read commands on ostree-written repos give the same information as ostree's own:
/// `ls` (-R, -C, subpaths), `cat`, `log`, `show`, `rev-parse` (incl. `^`), `refs` and `diff`.
#[test]
fn keel_reads_ostree_repos_like_ostree() {
    if !require("keel_reads_ostree_repos_like_ostree", &["ostree"]) {
        return;
    }
    let dir = scratch_dir("reads");
    let tree = tricky(dir.path(), 2 << 20, 20);
    for mode in MODES {
        let repo = dir.path().join(format!("ostree-{mode}"));
        let ostree = Tool::Ostree;
        ostree.init(&repo, mode);
        let opts = CommitOpts {
            subject: Some("first"),
            body: Some("the body\nsecond line"),
            timestamp: Some(1_577_836_800),
            metadata: vec![("version", "1.0")],
            parent: None,
        };
        ostree.commit(&repo, "os/stable", &tree, &opts);
        let work = dir.path().join(format!("tree2-{mode}"));
        ostree.checkout(&repo, "os/stable", &work, false);
        second_version(&work);
        let second = CommitOpts {
            subject: Some("second"),
            timestamp: Some(1_600_000_000),
            metadata: vec![("version", "2.0")],
            ..opts
        };
        ostree.commit(&repo, "os/stable", &work, &second);
        ostree.commit(
            &repo,
            "other/ref",
            &tree.join("modes"),
            &CommitOpts::default(),
        );

        let same = |sub: &str, args: &[&str], sort: bool| {
            let (o, k) = (
                stdout_of(&ostree, &repo, sub, args),
                stdout_of(&keel(), &repo, sub, args),
            );
            if sort {
                assert_eq!(
                    sorted_lines(&o),
                    sorted_lines(&k),
                    "{mode}: {sub} {args:?} (sorted lines), ostree vs keel"
                );
            } else {
                assert_eq!(
                    String::from_utf8_lossy(&o),
                    String::from_utf8_lossy(&k),
                    "{mode}: {sub} {args:?}, ostree vs keel"
                );
            }
        };
        for args in [
            &["-R", "os/stable"][..],
            &["-R", "-C", "os/stable"],
            &["os/stable", "/modes"],
            &["-R", "-C", "os/stable^", "/xattrs"],
            &["os/stable", "/links/absolute"],
        ] {
            same("ls", args, false);
        }
        for path in [
            "/names/héllo wörld",
            "/names/a",
            "/large/sparse.bin",
            "/empty/file",
            "/modes/zero",
        ] {
            assert_eq!(
                stdout_of(&ostree, &repo, "cat", &["os/stable^", path]),
                stdout_of(&keel(), &repo, "cat", &["os/stable^", path]),
                "{mode}: cat {path}"
            );
        }
        same("log", &["os/stable"], false);
        same("rev-parse", &["os/stable"], false);
        same("rev-parse", &["os/stable^"], false);
        same("refs", &[], true);
        same("diff", &["os/stable^", "os/stable"], true);
        let ostree_show =
            String::from_utf8_lossy(&stdout_of(&ostree, &repo, "show", &["os/stable"]))
                .into_owned();
        let keel_show = String::from_utf8_lossy(&stdout_of(&keel(), &repo, "show", &["os/stable"]))
            .into_owned();
        for line in ostree_show.lines() {
            assert!(
                keel_show.lines().any(|l| l == line),
                "{mode}: keel show lacks ostree show's line {line:?}:\n{keel_show}"
            );
        }
        assert!(
            keel_show.contains("2.0"),
            "{mode}: keel show does not print the version metadata:\n{keel_show}"
        );
    }
}
