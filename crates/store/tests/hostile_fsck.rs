//! Hostile object stores: special files (a FIFO, a socket) where objects should be. fsck must
//! finish promptly, report each one as a corrupt object with its path, and go on checking the
//! rest. Before fsck looked at the file type first, opening the FIFO blocked forever.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_store::{Checksum, CommitOptions, ObjectType, Repo, RepoMode};
use keel_utils::progress::Progress;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// fsck of a few dozen objects takes milliseconds; this bound only catches a hang.
const BOUND: Duration = Duration::from_secs(20);

fn commit_tree(dir: &Path, mode: RepoMode) -> (Repo, Checksum) {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    for i in 0..6 {
        std::fs::write(tree.join(format!("f{i}")), format!("file {i}\n")).unwrap();
        std::fs::write(tree.join("sub").join(format!("g{i}")), format!("sub {i}\n")).unwrap();
    }
    let repo = Repo::init(&dir.join("repo"), mode).unwrap();
    let opts = CommitOptions {
        branch: Some("hostile/fsck".into()),
        subject: "s".into(),
        timestamp: Some(1_577_836_800),
        ..CommitOptions::default()
    };
    let c = repo
        .commit_dir(&tree, &opts, &Progress::quiet("commit"))
        .unwrap();
    (repo, c)
}

fn objects_of(repo: &Repo, t: ObjectType) -> Vec<Checksum> {
    let mut v: Vec<Checksum> = repo
        .list_objects()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| *k == t)
        .map(|(_, c)| c)
        .collect();
    v.sort();
    v
}

fn make_fifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

fn make_socket(path: &Path) -> UnixListener {
    std::fs::remove_file(path).unwrap();
    UnixListener::bind(path).unwrap()
}

/// Run fsck on another thread; fail (instead of hanging the suite) if it does not finish.
fn fsck_within(repo_path: PathBuf) -> (keel_store::FsckReport, Duration) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let repo = Repo::open(&repo_path).unwrap();
        let start = Instant::now();
        let report = repo.fsck(&Progress::quiet("fsck")).unwrap();
        let _ = tx.send((report, start.elapsed()));
    });
    match rx.recv_timeout(BOUND) {
        Ok(r) => r,
        Err(_) => panic!("fsck did not finish within {BOUND:?}: it blocked on a special file"),
    }
}

fn special_files_are_reported(mode: RepoMode) {
    let d = tempfile::tempdir().unwrap();
    let (repo, commit) = commit_tree(d.path(), mode);
    let files = objects_of(&repo, ObjectType::File);
    let trees = objects_of(&repo, ObjectType::DirTree);
    let total = repo.list_objects().unwrap().len() as u64;
    // A FIFO and a socket in place of content objects, a FIFO in place of a dirtree, and a
    // plain corrupt object, which must still be found after the special files.
    let fifo = repo.object_path(ObjectType::File, &files[0]);
    let socket = repo.object_path(ObjectType::File, &files[1]);
    let tree_fifo = repo.object_path(ObjectType::DirTree, &trees[0]);
    let damaged = repo.object_path(ObjectType::File, &files[2]);
    make_fifo(&fifo);
    let _listener = make_socket(&socket);
    make_fifo(&tree_fifo);
    std::fs::remove_file(&damaged).unwrap();
    std::fs::write(&damaged, b"not an object").unwrap();

    let (report, took) = fsck_within(repo.path().to_path_buf());
    assert!(took < Duration::from_secs(5), "fsck took {took:?}");
    assert_eq!(report.objects, total, "every object was looked at");
    let find = |c: &Checksum, t: ObjectType| {
        report
            .errors
            .iter()
            .find(|e| e.checksum == *c && e.kind == t)
            .unwrap_or_else(|| panic!("{t} {c} not reported: {:?}", report.errors))
            .message
            .clone()
    };
    let m = find(&files[0], ObjectType::File);
    assert!(
        m.starts_with("corrupt") && m.contains("a FIFO") && m.contains(&fifo.display().to_string()),
        "{m}"
    );
    let m = find(&files[1], ObjectType::File);
    assert!(
        m.contains("a socket") && m.contains(&socket.display().to_string()),
        "{m}"
    );
    let m = find(&trees[0], ObjectType::DirTree);
    assert!(
        m.contains("a FIFO") && m.contains(&tree_fifo.display().to_string()),
        "{m}"
    );
    let m = find(&files[2], ObjectType::File);
    assert!(m.starts_with("corrupt"), "{m}");
    assert_eq!(report.commits, 1, "commit {commit} was still walked");
    // The special files are still there and untouched: fsck only reports.
    use std::os::unix::fs::FileTypeExt;
    let ft = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(ft.is_fifo());
}

#[test]
fn fifo_and_socket_objects_are_reported_not_opened_archive() {
    special_files_are_reported(RepoMode::Archive);
}

#[test]
fn fifo_and_socket_objects_are_reported_not_opened_bare_user() {
    special_files_are_reported(RepoMode::BareUser);
}

#[test]
fn fifo_commit_object_does_not_block_the_walk() {
    let d = tempfile::tempdir().unwrap();
    let (repo, commit) = commit_tree(d.path(), RepoMode::Archive);
    let path = repo.object_path(ObjectType::Commit, &commit);
    make_fifo(&path);
    let (report, took) = fsck_within(repo.path().to_path_buf());
    assert!(took < Duration::from_secs(5), "fsck took {took:?}");
    let e = report
        .errors
        .iter()
        .find(|e| e.kind == ObjectType::Commit && e.checksum == commit)
        .unwrap_or_else(|| panic!("commit not reported: {:?}", report.errors));
    assert!(e.message.contains("a FIFO"), "{}", e.message);
    assert_eq!(report.commits, 0, "an unreadable commit is not walked");
}

/// A FIFO where a ref should be: fsck (and anything listing refs) stops promptly with an error
/// naming it, instead of blocking on the open.
#[test]
fn fifo_ref_is_an_error_not_a_hang() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = commit_tree(d.path(), RepoMode::Archive);
    let fifo = repo.path().join("refs/heads/stuck");
    std::fs::write(&fifo, b"").unwrap();
    make_fifo(&fifo);
    let (tx, rx) = mpsc::channel();
    let path = repo.path().to_path_buf();
    std::thread::spawn(move || {
        let repo = Repo::open(&path).unwrap();
        let _ = tx.send(repo.fsck(&Progress::quiet("fsck")).map(|_| ()));
    });
    let result = rx
        .recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("fsck blocked on the FIFO ref for {BOUND:?}"));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("a FIFO") && err.contains(&fifo.display().to_string()),
        "{err}"
    );
    assert!(
        repo.read_ref("hostile/fsck").unwrap().is_some(),
        "other refs still read"
    );
}
