#![no_main]
//! libFuzzer target: the Ignition JSON pipeline must never panic.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel_ignition_config::fuzz::fuzz_json(data));
