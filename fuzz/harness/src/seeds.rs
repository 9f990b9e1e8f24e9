//! Valid inputs to start mutating from, built with the parsers' own writers, plus small
//! hostile documents (alias bombs, deep nesting) so that mutations explore their neighbours,
//! and pseudo-random noise for the binary formats.

use keel_remote::sign;
use keel_remote::summary::{Summary, SummaryRef, LAST_MODIFIED_KEY, MODE_KEY};
use keel_store::gvariant::ser_dict;
use keel_store::{Checksum, Commit, DirMeta, DirTree, FileHeader, Variant};

/// The bytes that signature inputs claim to sign.
pub const SIGNED_PAYLOAD: &[u8] = b"summary bytes under test";

/// Summaries: empty, one ref with the per-ref metadata OSTree writes, many refs.
pub fn summaries() -> Vec<Vec<u8>> {
    let r = |name: &str, n: u8, version: Option<&str>| {
        let mut meta = Vec::new();
        if let Some(v) = version {
            meta.push(("ostree.commit.version".to_string(), Variant::Str(v.into())));
        }
        meta.push((
            "ostree.commit.timestamp".to_string(),
            Variant::U64(1_700_000_000u64.to_be()),
        ));
        SummaryRef {
            name: name.into(),
            commit_size: 500 + u64::from(n),
            checksum: Checksum([n; 32]),
            meta,
        }
    };
    let global = vec![
        (MODE_KEY.to_string(), Variant::Str("archive-z2".into())),
        (
            LAST_MODIFIED_KEY.to_string(),
            Variant::U64(1_700_000_000u64.to_be()),
        ),
        (
            "ostree.summary.indexed-deltas".to_string(),
            Variant::Bool(true),
        ),
    ];
    [
        Summary::default(),
        Summary {
            refs: vec![r("keel/13/x86_64/stable", 1, Some("13.20261207.3.0"))],
            meta: global.clone(),
        },
        Summary {
            refs: (0..20)
                .map(|i| r(&format!("keel/{i}/x86_64/next"), i, None))
                .collect(),
            meta: global,
        },
    ]
    .iter()
    .map(Summary::to_bytes)
    .collect()
}

/// Signature dictionaries: one and two signatures, other entries around the signatures, and
/// signatures of the wrong length.
pub fn signatures() -> Vec<Vec<u8>> {
    let key = super::test_key();
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let one = keel_remote::summary::sign_summary(SIGNED_PAYLOAD, std::slice::from_ref(&key));
    let two = keel_remote::summary::sign_summary(SIGNED_PAYLOAD, &[other, key.clone()]);
    let mixed = keel_store::gvariant::ser_dict(&[
        ("a".to_string(), Variant::Str("x".into())),
        (
            sign::ED25519_KEY.to_string(),
            Variant::BytesList(vec![vec![1; 63], vec![2; 64], vec![3; 65]]),
        ),
        ("z".to_string(), Variant::StrList(vec!["y".into()])),
    ]);
    let mut seeds = vec![one, two, mixed];
    if let Ok((added, _)) = sign::add_signature(None, b"other payload", &key) {
        seeds.push(added);
    }
    seeds
}

/// Graph inputs: releases with commits for two architectures and every kind of update
/// metadata (barrier, dead-end, rollout with and without a duration).
pub fn graph_metadata() -> Vec<Vec<u8>> {
    let release = |v: &str, meta: &str| {
        format!(
            r#"{{"version":"{v}","commits":[{{"architecture":"x86_64","checksum":"{v}aa"}},{{"architecture":"aarch64","checksum":"{v}bb"}}],"metadata":{meta}}}"#
        )
    };
    let docs = [
        r#"{"releases":[]}"#.to_string(),
        format!(
            r#"{{"stream":"stable","releases":[{},{},{},{},{}]}}"#,
            release("1", "{}"),
            release("2", r#"{"barrier":{"reason":"https://example.com/1"}}"#),
            release("3", r#"{"deadend":{}}"#),
            release(
                "4",
                r#"{"rollout":{"start_epoch":1700000000,"start_percentage":0.2,"duration_minutes":120}}"#
            ),
            release(
                "5",
                r#"{"rollout":{"start_epoch":0,"start_percentage":1.0}}"#
            ),
        ),
    ];
    docs.into_iter().map(String::into_bytes).collect()
}

/// Small hostile Butane documents: a nested alias bomb, aliases as keys, deep nesting.
pub fn hostile_yaml() -> Vec<Vec<u8>> {
    let header = "variant: keel\nversion: 1.0.0\n";
    let mut nested = format!("{header}a0: &a0 [x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let prev = format!("*a{}", i - 1);
        nested.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 8].join(", ")));
    }
    let keys = format!("{header}k: &k key\nm: {{*k : 1}}\nn: [{{*k : 2}}, {{*k : 3}}]\n");
    let deep = format!("{header}x: {}{}\n", "[".repeat(300), "]".repeat(300));
    vec![nested.into_bytes(), keys.into_bytes(), deep.into_bytes()]
}

/// OSTree objects as the store writes them, in the order [`ObjectSeeds`] names them.
pub struct ObjectSeeds {
    pub commit: Vec<u8>,
    pub dirtree: Vec<u8>,
    pub dirmeta: Vec<u8>,
    pub header: Vec<u8>,
    pub archive_header: Vec<u8>,
    /// A whole `.filez`: length prefix, archive header of a 3-byte file, content `[1, 2, 3]`.
    pub archive_object: Vec<u8>,
}

/// One object of each kind a pull fetches, with metadata, xattrs and several entries.
pub fn objects() -> ObjectSeeds {
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
        related: vec![("r".into(), c)],
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
    let mut archive_object = header.archive_prefix(3);
    archive_object.extend_from_slice(&[1, 2, 3]);
    ObjectSeeds {
        commit: commit.to_bytes(),
        dirtree: tree.to_bytes(),
        dirmeta: meta.to_bytes(),
        header: header.to_bytes(),
        archive_header: header.to_archive_bytes(9),
        archive_object,
    }
}

impl ObjectSeeds {
    /// Every seed, plus the degenerate inputs (empty, one byte) and a symlink's header.
    pub fn all(self) -> Vec<Vec<u8>> {
        let link = FileHeader {
            uid: 0,
            gid: 0,
            mode: 0o120777,
            rdev: 0,
            symlink_target: "../target".into(),
            xattrs: Vec::new(),
        };
        vec![
            self.commit,
            self.dirtree,
            self.dirmeta,
            self.header,
            self.archive_header,
            self.archive_object,
            link.archive_prefix(0),
            DirTree::default().to_bytes(),
            vec![0],
            Vec::new(),
        ]
    }
}

/// GVariant inputs for [`super::objects::fuzz_gvariant`]: bare `a{sv}` dictionaries, and
/// values of each type behind the byte that picks their type.
pub fn gvariants() -> Vec<Vec<u8>> {
    let dict = vec![
        ("version".to_string(), Variant::Str("13.1".into())),
        ("n".to_string(), Variant::U64(7)),
        (
            "nested".to_string(),
            Variant::Dict(vec![("b".to_string(), Variant::Bool(true))]),
        ),
        (
            "boxed".to_string(),
            Variant::Boxed(Box::new(Variant::StrList(vec!["a".into(), "".into()]))),
        ),
        (
            "other".to_string(),
            Variant::Other {
                type_str: "(uu)".into(),
                data: vec![0; 8],
            },
        ),
    ];
    let values = [
        Variant::Dict(dict.clone()),
        Variant::Boxed(Box::new(Variant::Dict(dict.clone()))),
        Variant::Str("keel".into()),
        Variant::StrList(vec!["a".into(), "bc".into()]),
        Variant::BytesList(vec![vec![1; 300], Vec::new()]),
        Variant::Bytes(vec![1, 2, 3]),
        Variant::Bool(true),
        Variant::Byte(9),
        Variant::U32(7),
        Variant::U64(1 << 40),
    ];
    let mut out = vec![ser_dict(&dict), ser_dict(&[])];
    for v in values {
        let pick = super::objects::GVARIANT_TYPES
            .iter()
            .position(|t| *t == v.type_str())
            .unwrap_or(0);
        let mut input = vec![pick as u8];
        input.extend(v.to_bytes());
        out.push(input);
    }
    out
}

/// `n` byte strings of up to 300 pseudo-random bytes (SHA-256 of a counter), for parsers of
/// binary formats that mutations of valid seeds explore only near the seeds.
pub fn noise(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let len = i * 37 % 301;
            let mut bytes = Vec::with_capacity(len + 32);
            let mut block = 0u64;
            while bytes.len() < len {
                let counter = [(i as u64).to_le_bytes(), block.to_le_bytes()].concat();
                bytes.extend_from_slice(&Checksum::of(&counter).0);
                block += 1;
            }
            bytes.truncate(len);
            bytes
        })
        .collect()
}

/// Graph responses as `keel graph serve` writes them, built from the metadata seeds, plus
/// hand-made edge cases (an edge past the nodes, a node without `age_index`).
pub fn cincinnati_graphs() -> Vec<Vec<u8>> {
    use keel_graph::graph::Graph;
    use keel_graph::metadata::{ReleaseIndex, Updates};
    let mut out = Vec::new();
    for doc in graph_metadata() {
        let (Ok(index), Ok(updates)) = (
            serde_json::from_slice::<ReleaseIndex>(&doc),
            serde_json::from_slice::<Updates>(&doc),
        ) else {
            continue;
        };
        if let Ok(g) = Graph::build(&index, &updates, "x86_64") {
            for wariness in [0.0, 1.0] {
                out.push(g.to_json(&g.visible_rollouts(wariness, 1_700_000_000)));
            }
        }
    }
    out.push(
        br#"{"nodes":[{"version":"1","payload":"a","metadata":{}}],"edges":[[0,5]]}"#.to_vec(),
    );
    out.push(
        br#"{"nodes":[{"version":"1","payload":"a","metadata":{"org.fedoraproject.coreos.releases.age_index":"0"}},{"version":"2","payload":"b"}],"edges":[[0,1]]}"#
            .to_vec(),
    );
    out
}
