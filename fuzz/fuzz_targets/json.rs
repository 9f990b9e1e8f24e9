#![no_main]
//! libFuzzer target: the Ignition JSON pipeline must never panic, and a serialized config parses again.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_json(data));
