#![no_main]
//! libFuzzer target: a graph server's response as the node's agent parses and evaluates it
//! must never panic, and a chosen target must be a newer release the booted one has an edge to.

// Each target uses one of the harness's entry points.
#[allow(dead_code, unused_imports)]
#[path = "../harness/src/lib.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fuzz_cincinnati_graph(data));
