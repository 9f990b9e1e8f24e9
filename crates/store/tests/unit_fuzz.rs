//! Fuzz-style robustness: every parser of untrusted bytes must return Ok or Err, never panic,
//! on random and mutated input. Deterministic (`keel_testsupport::rng` with a fixed seed) and bounded.

use keel_store::gvariant::{parse_dict, Variant};
use keel_store::objects::{split_length_prefixed, Commit, DirMeta, DirTree, FileHeader};
use keel_store::{split_archive_object, Checksum};
use keel_testsupport::rng::Rng;

fn seeds() -> Vec<Vec<u8>> {
    let c = Checksum::of(b"x");
    let header = FileHeader {
        uid: 1,
        gid: 2,
        mode: 0o100644,
        rdev: 0,
        symlink_target: String::new(),
        xattrs: vec![(b"user.a".to_vec(), b"v".to_vec())],
    };
    let commit = Commit {
        metadata: vec![
            ("version".into(), Variant::Str("1".into())),
            (
                "ostree.ref-binding".into(),
                Variant::StrList(vec!["a/b".into()]),
            ),
            (
                "sigs".into(),
                Variant::BytesList(vec![vec![1; 70], vec![2; 3]]),
            ),
        ],
        parent: Some(c),
        related: vec![],
        subject: "s".into(),
        body: "b".into(),
        timestamp: 5,
        root_tree: c,
        root_meta: c,
    };
    let tree = DirTree {
        files: vec![("f".into(), c), ("g".into(), c)],
        dirs: vec![("d".into(), c, c)],
    };
    let meta = DirMeta {
        uid: 0,
        gid: 0,
        mode: 0o40755,
        xattrs: header.xattrs.clone(),
    };
    let mut archive = header.archive_prefix(3);
    archive.extend_from_slice(&[1, 2, 3]);
    vec![
        commit.to_bytes(),
        tree.to_bytes(),
        meta.to_bytes(),
        header.to_bytes(),
        header.to_archive_bytes(9),
        archive,
        vec![0],
        Vec::new(),
    ]
}

fn parse_all(data: &[u8]) {
    let _ = parse_dict(data);
    let _ = Commit::parse(data);
    let _ = DirTree::parse(data);
    let _ = DirMeta::parse(data);
    let _ = DirMeta::parse_any(data);
    let _ = FileHeader::parse(data);
    let _ = FileHeader::parse_archive(data);
    let _ = split_length_prefixed(data);
    let _ = split_archive_object(data);
    for t in ["v", "as", "aay", "a{sv}", "(uu)", "s", "t", "a(say)"] {
        let _ = Variant::parse(t, data);
    }
}

#[test]
fn parsers_survive_mutations_and_noise() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    for seed in &seeds {
        parse_all(seed);
    }
    for _ in 0..20_000 {
        let mut data = seeds[rng.index(seeds.len())].clone();
        match rng.index(4) {
            0 => {
                for _ in 0..=rng.index(4) {
                    if !data.is_empty() {
                        let i = rng.index(data.len());
                        data[i] = rng.next_u64() as u8;
                    }
                }
            }
            1 => data.truncate(rng.index(data.len() + 1)),
            2 => {
                let extra = rng.index(16);
                data.extend((0..extra).map(|_| rng.next_u64() as u8));
            }
            _ => data = (0..rng.index(300)).map(|_| rng.next_u64() as u8).collect(),
        }
        parse_all(&data);
    }
}

#[test]
fn valid_seeds_parse() {
    let s = seeds();
    assert!(Commit::parse(&s[0]).is_ok());
    assert!(DirTree::parse(&s[1]).is_ok());
    assert!(DirMeta::parse(&s[2]).is_ok());
    assert!(FileHeader::parse(&s[3]).is_ok());
    assert_eq!(FileHeader::parse_archive(&s[4]).unwrap().0, 9);
    assert_eq!(split_archive_object(&s[5]).unwrap().2, &[1, 2, 3]);
}
