//! A small deterministic mutation fuzzer for the bounded runs of the test suite (cargo-fuzz
//! brings libFuzzer's own for longer runs).

/// A deterministic byte-level mutator (a seeded `fastrand` generator): flips, insertions of
/// interesting tokens, deletions, duplications and splices between seed inputs.
pub struct Mutator {
    rng: fastrand::Rng,
    seeds: Vec<Vec<u8>>,
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"0644",
    b"\\u0000",
    b"\xff",
    b"\n  ",
    b"- ",
    b"&a ",
    b"*a",
    b"!!str ",
    b"'",
    b"|\n",
    b"\"3.5.0\"",
    b"data:,",
    b"../",
    b"\0",
    b"\0v",
    b"\0a{sv}",
    b"\xff\xff\xff\xff",
    b"\x08",
];

impl Mutator {
    pub fn new(seed: u64, seeds: Vec<Vec<u8>>) -> Self {
        Mutator {
            rng: fastrand::Rng::with_seed(seed),
            seeds,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.rng.usize(..n)
        }
    }

    /// A new input derived from a random seed by 1-4 mutations.
    pub fn generate(&mut self) -> Vec<u8> {
        let pick = self.below(self.seeds.len());
        let mut data = self.seeds[pick].clone();
        for _ in 0..1 + self.below(4) {
            let at = self.below(data.len() + 1);
            match self.below(5) {
                0 if !data.is_empty() => {
                    let i = at.min(data.len() - 1);
                    data[i] ^= 1 << self.below(8);
                }
                1 => {
                    let tok = TOKENS[self.below(TOKENS.len())];
                    data.splice(at..at, tok.iter().copied());
                }
                2 => {
                    let end = (at + self.below(16)).min(data.len());
                    data.drain(at..end);
                }
                3 => {
                    let end = (at + self.below(64)).min(data.len());
                    let chunk = data[at..end].to_vec();
                    data.splice(at..at, chunk);
                }
                _ => {
                    let pick = self.below(self.seeds.len());
                    let other = self.seeds[pick].clone();
                    let from = self.below(other.len() + 1);
                    data.truncate(at);
                    data.extend_from_slice(&other[from..]);
                }
            }
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutator_is_deterministic() {
        let seeds = vec![b"{\"a\": [1, 2]}".to_vec()];
        let mut m1 = Mutator::new(7, seeds.clone());
        let mut m2 = Mutator::new(7, seeds);
        let a: Vec<_> = (0..20).map(|_| m1.generate()).collect();
        let b: Vec<_> = (0..20).map(|_| m2.generate()).collect();
        assert_eq!(a, b);
    }
}
