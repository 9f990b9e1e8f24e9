#![no_main]
//! libFuzzer target: the graph server's release index and updates metadata, and the
//! graph built from them, must never panic.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_graph_metadata(data));
