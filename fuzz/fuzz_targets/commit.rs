#![no_main]
//! libFuzzer target: a `.commit` object from a mirror must parse or be refused, never panic.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_commit(data));
