//! HTTP pull interop with the real `ostree` 2022.7, both ways, through a plain static server
//! (`python3 -m http.server` on 127.0.0.1, started and stopped by each test):
//! - `keel repo pull` from archive repos written by ostree (with a summary) and by keel
//!   (without one) into bare, bare-user and archive repos;
//! - `ostree pull` from a keel-written archive repo into the same three modes.
//!
//! Every result must pass both `ostree fsck` and `keel repo fsck` and check out identically:
//! from bare repos a normal checkout equals the source tree exactly (owners, all mode bits,
//! xattrs); from bare-user and archive repos each tool's user-mode checkout of the pulled repo
//! equals the same tool's user-mode checkout of the source repo, by the user-mode rule
//! (keel_testsupport::compare::ModeRule::UserMode: `-U` drops sticky and set-id bits of files
//! when it hardlinks bare-user objects, keeps them when it copies from archive).
//!
//! The generated tree has its empty-valued xattrs removed: ostree 2022.7 drops them when it
//! commits and ignores them when it hashes a bare object, so a keel-committed object carrying
//! one fails `ostree fsck` in a bare repo however it got there (a store-level difference, not a
//! pull one; see the store's notes).

use keel_testsupport::checkouts::{exact, user_mode};
use keel_testsupport::compare::{self, ModeRule, Options};
use keel_testsupport::gen::{self, TrickyOptions};
use keel_testsupport::http::PyServer;
use keel_testsupport::tools::{assert_success, CommitOpts, Tool, MODES};
use keel_testsupport::{require, scratch_dir};
use std::path::Path;

fn keel() -> Tool {
    Tool::Keel(env!("CARGO_BIN_EXE_keel").into())
}

fn assert_same(a: &Path, b: &Path, opts: &Options, what: &str) {
    let diffs = compare::compare(a, b, opts).unwrap();
    assert!(
        diffs.is_empty(),
        "{what}: {} vs {}: {diffs:#?}",
        a.display(),
        b.display()
    );
}

fn small_tree(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    let opts = TrickyOptions {
        seed: 5,
        small_files: 40,
        large_file_bytes: 3 << 20,
        depth: 12,
    };
    gen::tricky_tree(&tree, &opts).unwrap();
    drop_empty_xattrs(&tree);
    tree
}

fn drop_empty_xattrs(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        for (name, value) in keel_testsupport::xattr::list(&p).unwrap_or_default() {
            if value.is_empty() {
                let mut c = std::process::Command::new("setfattr");
                c.arg("-h")
                    .arg("-x")
                    .arg(String::from_utf8_lossy(&name).as_ref())
                    .arg(&p);
                keel_utils::cmd::run(&mut c).unwrap();
            }
        }
        if p.symlink_metadata().unwrap().is_dir() {
            drop_empty_xattrs(&p);
        }
    }
}

/// Both fscks pass, and checkouts by `reader` from the pulled `repo` match the source: the
/// tree itself for bare repos, `reader`'s user-mode checkout of `src` otherwise.
fn check_result(
    repo: &Path,
    src: &Path,
    rev: &str,
    mode: &str,
    tree: &Path,
    reader: &Tool,
    dir: &Path,
) {
    assert_success(&Tool::Ostree.fsck(repo), &format!("ostree fsck {mode}"));
    assert_success(&keel().fsck(repo), &format!("keel fsck {mode}"));
    let name = |what: &str| dir.join(format!("co-{}-{what}", reader.name()));
    let co = name(&repo.file_name().unwrap().to_string_lossy());
    if mode == "bare" {
        reader.checkout(repo, rev, &co, false);
        assert_same(
            tree,
            &co,
            &exact(),
            &format!("{} checkout of pulled {mode}", reader.name()),
        );
    } else {
        let reference = name(&format!(
            "src-{}",
            src.file_name().unwrap().to_string_lossy()
        ));
        if !reference.exists() {
            reader.checkout(src, rev, &reference, true);
        }
        reader.checkout(repo, rev, &co, true);
        let what = format!("{} -U checkout of pulled {mode}", reader.name());
        // Same mode as the (archive) source: identical; bare-user: hardlinked, by the user-mode rule.
        let rule = if mode == "archive" {
            ModeRule::Exact
        } else {
            ModeRule::UserMode
        };
        assert_same(
            &reference,
            &co,
            &Options {
                modes: rule,
                ..user_mode()
            },
            &what,
        );
    }
}

#[test]
fn keel_pulls_archive_repos_written_by_ostree_and_keel() {
    if !require("keel_pulls_archive_repos", &["ostree", "python3"]) {
        return;
    }
    let d = scratch_dir("remote-interop-keel");
    let tree = small_tree(d.path());
    for writer in [Tool::Ostree, keel()] {
        let src = d.path().join(format!("src-{}", writer.name()));
        writer.init(&src, "archive");
        let rev = writer.commit(&src, "test/interop", &tree, &CommitOpts::default());
        if matches!(writer, Tool::Ostree) {
            writer.ok(&src, "summary", &["-u"]);
        }
        let server = PyServer::start(&src);
        for mode in MODES {
            let client = d.path().join(format!("client-{}-{mode}", writer.name()));
            keel().init(&client, mode);
            keel().ok(
                &client,
                "remote",
                &["add", "--no-sign-verify", "origin", &server.url],
            );
            let out = keel().ok(&client, "pull", &["origin", "test/interop"]);
            assert!(out.contains(&format!("origin:test/interop {rev}")), "{out}");
            assert_eq!(keel().rev_parse(&client, "origin:test/interop"), rev);
            check_result(&client, &src, &rev, mode, &tree, &keel(), d.path());
            check_result(&client, &src, &rev, mode, &tree, &Tool::Ostree, d.path());
        }
        let gets = server.get_paths();
        assert!(
            gets.iter().any(|p| p.ends_with(".filez")),
            "served by python: {gets:?}"
        );
    }
}

#[test]
fn ostree_pulls_an_archive_repo_written_by_keel() {
    if !require("ostree_pulls_keel_repo", &["ostree", "python3"]) {
        return;
    }
    let d = scratch_dir("remote-interop-ostree");
    let tree = small_tree(d.path());
    let src = d.path().join("src");
    keel().init(&src, "archive");
    let rev = keel().commit(&src, "test/interop", &tree, &CommitOpts::default());
    keel().ok(&src, "summary", &["--update"]);
    let server = PyServer::start(&src);
    for mode in MODES {
        let client = d.path().join(format!("client-{mode}"));
        Tool::Ostree.init(&client, mode);
        let mut add = std::process::Command::new("ostree");
        add.args(["remote", "add", "--no-gpg-verify"])
            .arg(format!("--repo={}", client.display()))
            .args(["origin", &server.url]);
        keel_utils::cmd::run(&mut add).unwrap();
        Tool::Ostree.ok(&client, "pull", &["origin", "test/interop"]);
        assert_eq!(Tool::Ostree.rev_parse(&client, "origin:test/interop"), rev);
        check_result(&client, &src, &rev, mode, &tree, &Tool::Ostree, d.path());
        check_result(&client, &src, &rev, mode, &tree, &keel(), d.path());
    }
    let view = Tool::Ostree.ok(&src, "summary", &["--view"]);
    assert!(
        view.contains("test/interop") && view.contains(&rev),
        "{view}"
    );
}
