//! Bounded fuzzing of every parser of untrusted bytes: the seeds, then mutations of them from
//! a fixed seed, until an iteration count or a time budget is reached. (The object parsers'
//! runs replace the store's own mutation test, `crates/store/tests/unit_fuzz.rs`, and the
//! Butane and Ignition runs the two crates' `tests/fuzz.rs`.) No input may panic,
//! and no single input may take longer than `PER_INPUT` (a parser with unbounded cost shows
//! up here as a slow input long before it shows up as a hang).

use keel_fuzz_harness as harness;
use keel_fuzz_harness::{bounded, seeds};
use keel_store::gvariant::parse_dict;
use keel_store::{split_archive_object, Commit, DirMeta, DirTree, FileHeader, Variant};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most one input may take (debug build on a shared machine; inputs are a few kB).
const PER_INPUT: Duration = Duration::from_secs(2);
/// The same for Butane: a few hundred bytes of anchors and aliases may expand up to the
/// 16 MiB alias limit, and `fuzz_yaml` translates each input twice (with and without
/// `--strict`); about 1.6 s in a debug build.
const YAML_PER_INPUT: Duration = Duration::from_secs(5);
/// Time budget of one parser's run.
const BUDGET: Duration = Duration::from_secs(15);
/// A run that did fewer inputs than this did not fuzz anything worth the name.
const AT_LEAST: usize = 500;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file with extension `ext` in the directories `dirs` (relative to the workspace).
fn files(dirs: &[&str], ext: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in dirs {
        let dir = workspace().join(dir);
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == ext) {
                out.push(std::fs::read(p).unwrap());
            }
        }
    }
    assert!(!out.is_empty(), "no .{ext} seeds in {dirs:?}");
    out
}

/// Runs `target` on the seeds and their mutations and checks the run.
fn fuzz(
    name: &str,
    seeds: Vec<Vec<u8>>,
    rng_seed: u64,
    per_input: Duration,
    target: impl FnMut(&[u8]),
) {
    let stats = bounded::run(seeds, rng_seed, 20_000, BUDGET, target);
    eprintln!(
        "{name}: {} inputs, slowest {:?} ({} bytes)",
        stats.inputs, stats.slowest, stats.slowest_len
    );
    assert!(
        stats.inputs >= AT_LEAST,
        "{name}: only {} inputs ran",
        stats.inputs
    );
    assert!(
        stats.slowest < per_input,
        "{name}: one input of {} bytes took {:?}",
        stats.slowest_len,
        stats.slowest
    );
}

#[test]
fn butane_yaml() {
    let mut seeds = files(&["crates/butane/tests/snapshots"], "bu");
    seeds.extend(seeds::hostile_yaml());
    fuzz(
        "butane yaml",
        seeds,
        0x0b07_a9e1,
        YAML_PER_INPUT,
        harness::fuzz_yaml,
    );
}

#[test]
fn ignition_json() {
    let dirs = [
        "crates/ignition-config/tests/corpus",
        "crates/ignition-config/tests/edge",
    ];
    let seeds = files(&dirs, "json");
    fuzz(
        "ignition json",
        seeds,
        0x5eed_0014,
        PER_INPUT,
        harness::fuzz_json,
    );
}

#[test]
fn ostree_summary() {
    let seeds = seeds::summaries();
    fuzz(
        "ostree summary",
        seeds,
        0x5_0000_1414,
        PER_INPUT,
        harness::fuzz_summary,
    );
}

#[test]
fn ostree_signatures() {
    let seeds = seeds::signatures();
    fuzz(
        "ostree signatures",
        seeds,
        0x51_6e_a7,
        PER_INPUT,
        harness::fuzz_signatures,
    );
}

#[test]
fn graph_metadata() {
    let mut seeds = seeds::graph_metadata();
    seeds.extend(files(&["crates/graph/tests/data"], "json"));
    fuzz(
        "graph metadata",
        seeds,
        0x00c1_4c14,
        PER_INPUT,
        harness::fuzz_graph_metadata,
    );
}

#[test]
fn agent_graph_responses() {
    let seeds = seeds::cincinnati_graphs();
    assert!(seeds.len() >= 4, "{} seeds", seeds.len());
    fuzz(
        "agent graph responses",
        seeds,
        0x0a9e_4761,
        PER_INPUT,
        harness::fuzz_cincinnati_graph,
    );
}

/// Objects of every kind plus noise, so each object parser also sees the others' layouts.
fn object_seeds() -> Vec<Vec<u8>> {
    let mut seeds = seeds::objects().all();
    seeds.extend(seeds::noise(64));
    seeds
}

#[test]
fn gvariant_values() {
    let mut seeds = seeds::gvariants();
    seeds.extend(object_seeds());
    fuzz(
        "gvariant",
        seeds,
        0x9e37_79b9,
        PER_INPUT,
        harness::fuzz_gvariant,
    );
}

#[test]
fn ostree_commit() {
    fuzz(
        "commit",
        object_seeds(),
        0xc0_3317,
        PER_INPUT,
        harness::fuzz_commit,
    );
}

#[test]
fn ostree_dirtree() {
    fuzz(
        "dirtree",
        object_seeds(),
        0xd1_7733,
        PER_INPUT,
        harness::fuzz_dirtree,
    );
}

#[test]
fn ostree_dirmeta() {
    fuzz(
        "dirmeta",
        object_seeds(),
        0xd1_4e7a,
        PER_INPUT,
        harness::fuzz_dirmeta,
    );
}

#[test]
fn ostree_file_object() {
    fuzz(
        "file object",
        object_seeds(),
        0xf1_1e02,
        PER_INPUT,
        harness::fuzz_file_object,
    );
}

/// The object seeds are what they claim: each parses as its kind (a harness whose seeds all
/// failed to parse would only fuzz the error paths).
#[test]
fn object_seeds_parse() {
    let s = seeds::objects();
    assert!(Commit::parse(&s.commit).is_ok());
    assert!(DirTree::parse(&s.dirtree).is_ok());
    assert!(DirMeta::parse(&s.dirmeta).is_ok());
    assert!(FileHeader::parse(&s.header).is_ok());
    assert_eq!(FileHeader::parse_archive(&s.archive_header).unwrap().0, 9);
    assert_eq!(
        split_archive_object(&s.archive_object).unwrap().2,
        &[1, 2, 3]
    );
    for input in seeds::gvariants() {
        let typed = harness::objects::typed_value(&input);
        assert!(
            parse_dict(&input).is_ok()
                || typed.is_some_and(|(ty, value)| Variant::parse(ty, value).is_ok()),
            "seed {input:?} parses neither as a{{sv}} nor as {typed:?}"
        );
    }
}
