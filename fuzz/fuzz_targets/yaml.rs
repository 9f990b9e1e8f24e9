#![no_main]
//! libFuzzer target: Butane translation must never panic or emit an invalid config.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_yaml(data));
