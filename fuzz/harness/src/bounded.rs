//! Bounded fuzzing for the test suite: a seeded mutation loop (the deterministic
//! [`Mutator`]) that stops at an iteration count or a time budget,
//! and records the slowest single input so that a test can bound the cost of each one.

use super::mutator::Mutator;
use std::time::{Duration, Instant};

/// What a bounded run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Inputs run (seeds included).
    pub inputs: usize,
    /// The longest time one input took.
    pub slowest: Duration,
    /// The length of that input.
    pub slowest_len: usize,
}

/// Runs every seed, then mutations of them from `rng_seed`, until `max` inputs ran or
/// `budget` is spent. A panic in `target` propagates (the test fails with the input's run).
pub fn run(
    seeds: Vec<Vec<u8>>,
    rng_seed: u64,
    max: usize,
    budget: Duration,
    mut target: impl FnMut(&[u8]),
) -> Stats {
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut timed = |input: &[u8], stats: &mut Stats| {
        let t = Instant::now();
        target(input);
        let took = t.elapsed();
        stats.inputs += 1;
        if took > stats.slowest {
            stats.slowest = took;
            stats.slowest_len = input.len();
        }
    };
    for s in &seeds {
        timed(s, &mut stats);
    }
    let mut mutator = Mutator::new(rng_seed, seeds);
    while stats.inputs < max && start.elapsed() < budget {
        let input = mutator.generate();
        timed(&input, &mut stats);
    }
    stats
}
