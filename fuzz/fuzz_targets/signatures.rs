#![no_main]
//! libFuzzer target: `summary.sig` and detached commit metadata, parsed before any
//! signature is checked, must never panic or abort.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_signatures(data));
