//! GVariant nested without end in files a mirror serves. `summary.sig` and a commit's detached
//! metadata are parsed before any signature is checked, so anyone who can serve them (a
//! mirror, a man in the middle of plain HTTP) controls their nesting. Each `v` inside a `v`
//! took one more level of recursion: 1 000 levels (2 kB) overflowed a 2 MiB thread stack and
//! aborted the whole process (SIGABRT, "has overflowed its stack"), and so did a type string
//! of 10 000 `a`s. GLib refuses more than 128 levels; so does the store now.

use keel_remote::sign;
use keel_remote::summary::Summary;
use keel_store::gvariant::{parse_dict, ser_str, Frame};
use keel_store::Variant;

/// A `v` holding a `v` ... `depth` times, around a boolean: the bytes of a boxed value.
fn nested_boxed(depth: usize) -> Vec<u8> {
    let mut v = vec![1u8, 0, b'b'];
    for _ in 0..depth {
        v.extend_from_slice(b"\0v");
    }
    v
}

/// An `a{sv}` with one entry `key` whose boxed value is `boxed`.
fn dict_with(key: &str, boxed: &[u8]) -> Vec<u8> {
    let mut entry = Frame::new();
    entry.child(1, &ser_str(key), true);
    entry.child(8, boxed, false);
    let mut dict = Frame::new();
    dict.child(8, &entry.finish_struct(), true);
    dict.finish_array()
}

const TOO_DEEP: &str = "values nested deeper than 128 levels";
const BAD_TYPE: &str = "is not a GVariant type";

fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, String>, expected: &str) {
    match r {
        Ok(v) => panic!("{what}: accepted: {v:?}"),
        Err(e) => assert!(e.contains(expected), "{what}: {e}"),
    }
}

#[test]
fn nested_variants_in_signature_files_are_refused() {
    let key = keel_fuzz_harness::test_key().verifying_key();
    for depth in [200, 1_000, 100_000, 1_000_000] {
        let sig = dict_with(sign::ED25519_KEY, &nested_boxed(depth));
        refused(
            &format!("summary.sig nested {depth} deep"),
            sign::signatures(&sig).map_err(|e| e.0),
            TOO_DEEP,
        );
        let verdict = keel_remote::summary::verify(b"summary", Some(&sig), &[key]);
        assert!(
            matches!(verdict, Err(sign::VerifyError::Malformed(_))),
            "{verdict:?}"
        );
    }
}

#[test]
fn deep_type_strings_are_refused() {
    for depth in [200, 10_000, 1_000_000] {
        let mut boxed = vec![0u8];
        boxed.extend(std::iter::repeat_n(b'a', depth));
        boxed.push(b'b');
        refused(
            &format!("type of {depth} nested arrays"),
            parse_dict(&dict_with("k", &boxed)).map_err(|e| e.0),
            BAD_TYPE,
        );
        let parens = format!("{}b{}", "(".repeat(depth), ")".repeat(depth));
        let mut boxed = vec![0u8];
        boxed.extend_from_slice(parens.as_bytes());
        refused(
            &format!("type of {depth} nested tuples"),
            parse_dict(&dict_with("k", &boxed)).map_err(|e| e.0),
            BAD_TYPE,
        );
    }
}

#[test]
fn nested_variants_in_summary_metadata_are_refused() {
    let mut top = Frame::new();
    top.child(8, &[], true);
    top.child(8, &dict_with("x", &nested_boxed(100_000)), false);
    refused(
        "summary metadata nested 100000 deep",
        Summary::parse(&top.finish_struct()).map_err(|e| e.0),
        TOO_DEEP,
    );
}

#[test]
fn nesting_within_the_limit_still_parses() {
    let dict = dict_with("k", &nested_boxed(100));
    let parsed = parse_dict(&dict).unwrap();
    let mut v = &parsed[0].1;
    let mut depth = 0;
    while let Variant::Boxed(inner) = v {
        v = inner;
        depth += 1;
    }
    assert_eq!((depth, v), (100, &Variant::Bool(true)));
}
