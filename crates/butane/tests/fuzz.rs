//! Bounded mutation fuzzing of the YAML front end, seeded from the snapshot inputs: no input
//! may panic, and every successful translation must be a valid Ignition config.

use keel_butane::fuzz_yaml;
use keel_ignition_config::fuzz::Mutator;
use std::path::Path;
use std::time::Duration;

#[test]
fn yaml_front_end_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut seeds = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bu") {
            seeds.push(std::fs::read(p).unwrap());
        }
    }
    for s in &seeds {
        fuzz_yaml(s);
    }
    let n = Mutator::new(0x00b0_7a9e, seeds).run(20_000, Duration::from_secs(15), fuzz_yaml);
    eprintln!("fuzz_yaml: {n} mutated inputs without a panic");
    assert!(n >= 500, "too few fuzz iterations ran ({n})");
}
