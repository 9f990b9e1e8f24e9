//! Valid inputs to start mutating from, built with the parsers' own writers, plus small
//! hostile documents (alias bombs, deep nesting) so that mutations explore their neighbours.

use keel_remote::sign;
use keel_remote::summary::{Summary, SummaryRef, LAST_MODIFIED_KEY, MODE_KEY};
use keel_store::{Checksum, Variant};

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
