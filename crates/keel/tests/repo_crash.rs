//! Crash safety of `keel repo commit`: SIGKILL it at many points spread over its duration; after
//! every kill both `ostree fsck` and `keel repo fsck` pass, the ref is the old or the new
//! commit, and the repository still takes new commits.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_testsupport::gen::bulk_tree;
use keel_testsupport::tools::{assert_success, CommitOpts, Tool};
use keel_testsupport::{require, scratch_dir};
use keel_utils::cmd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Kills per repository mode (two modes, so 22 kill points in all).
const KILLS_PER_MODE: u32 = 11;

fn keel() -> Tool {
    Tool::Keel(env!("CARGO_BIN_EXE_keel").into())
}

fn copy_repo(from: &Path, to: &Path) {
    cmd::run(Command::new("cp").arg("-a").arg(from).arg(to)).expect("copy the base repo");
}

#[test]
fn killed_commits_leave_a_consistent_repo_and_the_old_or_new_ref() {
    if !require(
        "killed_commits_leave_a_consistent_repo_and_the_old_or_new_ref",
        &["ostree"],
    ) {
        return;
    }
    let dir = scratch_dir("crash");
    let keel = keel();
    let (small, big) = (dir.path().join("small"), dir.path().join("big"));
    bulk_tree(&small, 1, 20, 1024).expect("small tree");
    bulk_tree(&big, 2, 600, 32 << 10).expect("big tree");
    let new_opts = CommitOpts {
        timestamp: Some(1_700_000_000),
        ..Default::default()
    };
    let args = keel.commit_args("os/x86_64", &big, &new_opts);

    for mode in ["bare", "archive"] {
        let base = dir.path().join(format!("base-{mode}"));
        keel.init(&base, mode);
        let old = keel.commit(
            &base,
            "os/x86_64",
            &small,
            &CommitOpts {
                timestamp: Some(1),
                ..Default::default()
            },
        );

        // The uninterrupted commit: gives the new checksum and the duration to spread kills over.
        let reference = dir.path().join(format!("reference-{mode}"));
        copy_repo(&base, &reference);
        let start = Instant::now();
        let new = keel.commit(&reference, "os/x86_64", &big, &new_opts);
        let duration = start.elapsed();
        eprintln!("{mode}: uninterrupted commit took {duration:?}");

        let (mut saw_old, mut saw_new) = (0, 0);
        for i in 0..KILLS_PER_MODE {
            let repo = dir.path().join(format!("kill-{mode}-{i}"));
            copy_repo(&base, &repo);
            let delay = duration.mul_f64((f64::from(i) + 0.5) / f64::from(KILLS_PER_MODE) * 1.1);
            let mut c = keel.command(&repo, "commit");
            let mut child = c
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn keel repo commit");
            std::thread::sleep(delay);
            let _ = child.kill();
            child.wait().expect("reap keel");
            let context = format!(
                "{mode}: killed after {delay:?} ({}/{KILLS_PER_MODE})",
                i + 1
            );

            assert_success(
                &Tool::Ostree.fsck(&repo),
                &format!("{context}: ostree fsck"),
            );
            assert_success(&keel.fsck(&repo), &format!("{context}: keel fsck"));
            let now = keel.rev_parse(&repo, "os/x86_64");
            assert!(
                now == old || now == new,
                "{context}: ref is {now}, neither old {old} nor new {new}"
            );
            if now == old {
                saw_old += 1;
            } else {
                saw_new += 1;
            }
            let after = keel.commit(
                &repo,
                "os/x86_64",
                &small,
                &CommitOpts {
                    timestamp: Some(2),
                    ..Default::default()
                },
            );
            assert_eq!(
                keel.rev_parse(&repo, "os/x86_64"),
                after,
                "{context}: commit after the kill"
            );
            std::fs::remove_dir_all(&repo).expect("remove the killed repo");
        }
        eprintln!("{mode}: {saw_old} kills left the old commit, {saw_new} the new one");
        assert!(
            saw_old > 0,
            "{mode}: no kill landed before the ref moved; the kill points do not cover the commit"
        );
    }
}
