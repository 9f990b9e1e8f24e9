//! Bounded mutation fuzzing of the JSON front end, seeded from the corpus and edge cases: no
//! input may panic.

use keel_ignition_config::fuzz::{fuzz_json, Mutator};
use std::path::Path;
use std::time::Duration;

#[test]
fn json_front_end_never_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut seeds = Vec::new();
    for dir in ["corpus", "edge"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                seeds.push(std::fs::read(p).unwrap());
            }
        }
    }
    for s in &seeds {
        fuzz_json(s);
    }
    let n = Mutator::new(0x5eed_1234, seeds).run(30_000, Duration::from_secs(15), fuzz_json);
    eprintln!("fuzz_json: {n} mutated inputs without a panic");
    assert!(n >= 500, "too few fuzz iterations ran ({n})");
}
