#![no_main]
//! libFuzzer target: an archive `.filez` object's header from a mirror must parse or be refused.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_file_object(data));
