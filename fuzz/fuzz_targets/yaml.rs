#![no_main]
//! libFuzzer target: Butane translation must never panic or emit an invalid config.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel_butane::fuzz_yaml(data));
