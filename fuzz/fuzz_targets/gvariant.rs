#![no_main]
//! libFuzzer target: GVariant values from a mirror (commit metadata, `.commitmeta`, boxed values
//! of any type) must parse or be refused, and what parses serializes back to itself.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_gvariant(data));
