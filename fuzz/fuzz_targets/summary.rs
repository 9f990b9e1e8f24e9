#![no_main]
//! libFuzzer target: the OSTree `summary` a mirror serves must parse or be refused,
//! never panic or abort.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_summary(data));
