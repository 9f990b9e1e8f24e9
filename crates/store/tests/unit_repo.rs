//! Library-level round trips on real repositories in every mode: the reference-vector commit,
//! checkout, rev parsing, history, diff, fsck findings, prune, and refusal of special files.

use keel_store::{
    CheckoutOptions, Checksum, CommitOptions, DiffKind, ObjectType, ParentSpec, PruneOptions, Repo,
    RepoMode, StoreError, Variant,
};
use keel_utils::progress::Progress;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

const VECTOR_COMMIT: &str = "0d7f83d77a632cd6e72a212efdc0e18672d727413fd42c24214a30c7f0c2aaa8";

/// The reference tree: a.txt, link -> a.txt, empty/, sub/b (0755).
fn vector_tree(root: &Path) {
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("a.txt"), "hello\n").unwrap();
    fs::write(root.join("sub/b"), "x").unwrap();
    symlink("a.txt", root.join("link")).unwrap();
    for (p, mode) in [
        ("", 0o755),
        ("empty", 0o755),
        ("sub", 0o755),
        ("a.txt", 0o644),
        ("sub/b", 0o755),
    ] {
        fs::set_permissions(root.join(p), fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn vector_opts() -> CommitOptions {
    CommitOptions {
        branch: Some("test/x86_64".into()),
        subject: "subj".into(),
        body: "body".into(),
        timestamp: Some(1_577_836_800),
        metadata: vec![("version".into(), Variant::Str("1.0".into()))],
        owner_uid: Some(0),
        owner_gid: Some(0),
        ..CommitOptions::default()
    }
}

fn quiet() -> Progress {
    Progress::quiet("test")
}

fn modes() -> Vec<RepoMode> {
    let mut m = vec![RepoMode::Archive, RepoMode::BareUser];
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        m.push(RepoMode::Bare);
    } else {
        keel_testsupport::skip(
            "unit_repo (part): bare mode needs root; archive and bare-user only",
        );
    }
    m
}

#[test]
fn vector_commit_checkout_and_history_in_every_mode() {
    for mode in modes() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        vector_tree(&tree);
        let repo = Repo::init(&d.path().join("repo"), mode).unwrap();
        let c = repo.commit_dir(&tree, &vector_opts(), &quiet()).unwrap();
        assert_eq!(c.to_hex(), VECTOR_COMMIT, "{mode:?}");
        assert_eq!(repo.resolve_rev("test/x86_64").unwrap(), c);
        assert_eq!(repo.resolve_rev(&VECTOR_COMMIT[..10]).unwrap(), c);

        let co = d.path().join("co");
        repo.checkout(
            &c,
            &co,
            &CheckoutOptions {
                user_mode: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(fs::read_to_string(co.join("a.txt")).unwrap(), "hello\n");
        assert_eq!(fs::read_link(co.join("link")).unwrap(), Path::new("a.txt"));
        assert_eq!(
            fs::metadata(co.join("sub/b")).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert!(co.join("empty").is_dir());

        fs::write(tree.join("a.txt"), "changed\n").unwrap();
        fs::remove_dir(tree.join("empty")).unwrap();
        fs::create_dir(tree.join("new")).unwrap();
        fs::write(tree.join("new/f"), "f").unwrap();
        let c2 = repo.commit_dir(&tree, &vector_opts(), &quiet()).unwrap();
        assert_eq!(repo.read_commit(&c2).unwrap().parent, Some(c));
        assert_eq!(repo.resolve_rev("test/x86_64^").unwrap(), c);
        let diff: Vec<(DiffKind, String)> = repo
            .diff(&c, &c2)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.path))
            .collect();
        assert_eq!(
            diff,
            vec![
                (DiffKind::Modified, "/a.txt".to_string()),
                (DiffKind::Deleted, "/empty".to_string()),
                (DiffKind::Added, "/new".to_string()),
                (DiffKind::Added, "/new/f".to_string()),
            ]
        );
        let listing: Vec<String> = repo
            .ls(&c2, "/", true)
            .unwrap()
            .iter()
            .map(|e| e.ls_line())
            .collect();
        assert_eq!(listing[0], "d00755 0 0      0 /");
        assert!(
            listing.contains(&"l00777 0 0      0 /link -> a.txt".to_string()),
            "{listing:?}"
        );
        assert!(repo.fsck(&quiet()).unwrap().errors.is_empty());

        let orphan = CommitOptions {
            branch: None,
            parent: ParentSpec::None,
            ..vector_opts()
        };
        fs::write(tree.join("orphan-only"), "o").unwrap();
        repo.commit_dir(&tree, &orphan, &quiet()).unwrap();
        let kept = repo.prune(&PruneOptions::default()).unwrap();
        assert_eq!(
            kept.objects_deleted, 0,
            "without --refs-only every commit is a root"
        );
        let pruned = repo
            .prune(&PruneOptions {
                refs_only: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(pruned.commits_deleted, 1);
        assert!(pruned.objects_deleted >= 3, "{pruned:?}");
        let shallow = repo
            .prune(&PruneOptions {
                refs_only: true,
                depth: Some(0),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(shallow.commits_deleted, 1, "the parent goes with depth 0");
        assert!(repo.fsck(&quiet()).unwrap().errors.is_empty());
        assert_eq!(history_len(&repo, &c2), 1);
    }
}

/// Number of commits in the history of `c` that are present.
fn history_len(repo: &Repo, c: &Checksum) -> usize {
    let mut n = 0;
    let mut next = Some(*c);
    while let Some(c) = next.filter(|c| repo.has_object(ObjectType::Commit, c)) {
        n += 1;
        next = repo.read_commit(&c).unwrap().parent;
    }
    n
}

#[test]
fn fsck_names_every_damaged_object() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    vector_tree(&tree);
    let repo = Repo::init(&d.path().join("repo"), RepoMode::Archive).unwrap();
    let c = repo.commit_dir(&tree, &vector_opts(), &quiet()).unwrap();
    let commit = repo.read_commit(&c).unwrap();
    let file: Checksum = "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"
        .parse()
        .unwrap();
    for (kind, target) in [
        (ObjectType::Commit, c),
        (ObjectType::DirTree, commit.root_tree),
        (ObjectType::DirMeta, commit.root_meta),
        (ObjectType::File, file),
    ] {
        let p = repo.object_path(kind, &target);
        let original = fs::read(&p).unwrap();
        let mut flipped = original.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        let mut appended = original.clone();
        appended.push(0);
        for damaged in [
            Some(flipped),
            Some(original[..original.len() / 2].to_vec()),
            Some(appended),
            None,
        ] {
            match &damaged {
                Some(bytes) => fs::write(&p, bytes).unwrap(),
                None => fs::remove_file(&p).unwrap(),
            }
            let report = repo.fsck(&quiet()).unwrap();
            assert!(
                report
                    .errors
                    .iter()
                    .any(|e| e.kind == kind && e.checksum == target),
                "{kind} {damaged:?}: {:?}",
                report.errors
            );
            fs::write(&p, &original).unwrap();
        }
    }
    assert!(repo.fsck(&quiet()).unwrap().errors.is_empty());
}

#[test]
fn special_files_are_refused_and_no_ref_moves() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    vector_tree(&tree);
    let repo = Repo::init(&d.path().join("repo"), RepoMode::Archive).unwrap();
    let c = repo.commit_dir(&tree, &vector_opts(), &quiet()).unwrap();
    let fifo = tree.join("sub/fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    fs::write(tree.join("a.txt"), "new content").unwrap();
    let err = repo
        .commit_dir(&tree, &vector_opts(), &quiet())
        .unwrap_err();
    match &err {
        StoreError::Unsupported { path, .. } => assert_eq!(path, &fifo),
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("FIFO"), "{err}");
    assert_eq!(repo.read_ref("test/x86_64").unwrap(), Some(c));
    let tmp: Vec<_> = fs::read_dir(repo.path().join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("staging-"))
        .collect();
    assert!(
        tmp.is_empty(),
        "the failed commit's staging directory is removed"
    );
}

/// The one path lookup, with every case where the three copies (`keel repo ls`, checkout's
/// subpath, deploy's tree check and the image builder's file read) disagreed: a leading or
/// doubled `/` and `.` components (the image builder found nothing, checkout refused `.`), a
/// file in the middle of a path, and `..` (a name, never the parent).
#[test]
fn paths_in_a_commit_resolve_one_way() {
    use keel_store::TreeNode;
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    vector_tree(&tree);
    let repo = Repo::init(&d.path().join("repo"), RepoMode::Archive).unwrap();
    let c = repo.commit_dir(&tree, &vector_opts(), &quiet()).unwrap();
    let kind = |p: &str| match repo.resolve_path(&c, p).unwrap() {
        Some(TreeNode::Dir { .. }) => "dir",
        Some(TreeNode::File(_)) => "file",
        None => "none",
    };
    for (path, want) in [
        ("", "dir"),
        ("/", "dir"),
        ("sub", "dir"),
        ("/sub/", "dir"),
        ("./sub//b", "file"),
        ("sub/./b", "file"),
        ("/a.txt", "file"),
        ("link", "file"),
        ("a.txt/x", "none"),
        ("sub/..", "none"),
        ("sub/../a.txt", "none"),
        ("missing", "none"),
    ] {
        assert_eq!(kind(path), want, "{path:?}");
    }
    assert_eq!(repo.lookup_path(&c, "./sub//b").unwrap().path, "/sub/b");
    let out = d.path().join("co");
    let opts = CheckoutOptions {
        subpath: Some("./sub/".into()),
        user_mode: true,
        ..CheckoutOptions::default()
    };
    repo.checkout(&c, &out, &opts).unwrap();
    assert_eq!(fs::read(out.join("b")).unwrap(), b"x");
    let opts = CheckoutOptions {
        subpath: Some("a.txt".into()),
        user_mode: true,
        ..CheckoutOptions::default()
    };
    let e = repo.checkout(&c, &d.path().join("co2"), &opts);
    assert!(matches!(e, Err(StoreError::PathNotFound { .. })), "{e:?}");
}
