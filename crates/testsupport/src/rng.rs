//! A tiny deterministic PRNG (SplitMix64) so generated trees depend only on their seed.

/// SplitMix64: fast, well distributed, and stable across Rust and crate versions.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index in `0..n` (0 when `n` is 0).
    pub fn index(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A moment in the `k`-th of `n` equal slices of `[0, window)`: stratified sampling, so
    /// that `n` power cuts of one kind land from the start of an operation to its end.
    pub fn in_slice(
        &mut self,
        window: std::time::Duration,
        k: usize,
        n: usize,
    ) -> std::time::Duration {
        let slice = (window.as_millis() as u64 / n.max(1) as u64).max(1);
        std::time::Duration::from_millis(slice * k as u64 + self.below(slice))
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The seed in environment variable `var`, or one from the clock; printed with how to replay.
pub fn seed_from_env(var: &str, what: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    eprintln!("{what}: seed {seed} ({var}={seed} replays it)");
    seed
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn slices_cover_the_window_in_order() {
        let w = std::time::Duration::from_millis(1000);
        let mut r = Rng::new(7);
        for k in 0..4 {
            let d = r.in_slice(w, k, 4).as_millis() as usize;
            assert!((k * 250..(k + 1) * 250).contains(&d), "slice {k}: {d} ms");
        }
    }

    #[test]
    fn same_seed_same_stream_and_bounds_hold() {
        let cases: [(u64, u64); 3] = [(0, 7), (42, 1), (u64::MAX, 1000)];
        for (seed, bound) in cases {
            let (mut a, mut b) = (Rng::new(seed), Rng::new(seed));
            for _ in 0..100 {
                let x = a.below(bound);
                assert_eq!(x, b.below(bound), "seed {seed}");
                assert!(x < bound, "seed {seed}: {x} >= {bound}");
            }
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        let mut r = Rng::new(3);
        assert_eq!(r.index(0), 0);
        assert!((0..100).all(|_| r.index(5) < 5));
    }
}
