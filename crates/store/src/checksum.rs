//! SHA-256 object checksums: 32 raw bytes inside objects, 64 lowercase hex characters elsewhere.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A SHA-256 object checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum(pub [u8; 32]);

/// A string that is not a 64-character lowercase hex checksum.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a checksum (expected 64 lowercase hex characters)")]
pub struct BadChecksum(pub String);

impl Checksum {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Checksum {
        Checksum(Sha256::digest(data).into())
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From the 32 raw bytes stored inside objects.
    pub fn from_bytes(b: &[u8]) -> Option<Checksum> {
        <[u8; 32]>::try_from(b).ok().map(Checksum)
    }

    /// Is `s` a 64-character lowercase hex string?
    pub fn is_hex(s: &str) -> bool {
        s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

impl FromStr for Checksum {
    type Err = BadChecksum;
    fn from_str(s: &str) -> Result<Checksum, BadChecksum> {
        if !Checksum::is_hex(s) {
            return Err(BadChecksum(s.to_string()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadChecksum(s.to_string()))?;
        Ok(Checksum(out))
    }
}

/// An incremental SHA-256 hasher producing a [`Checksum`].
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The checksum of everything fed so far.
    pub fn finish(self) -> Checksum {
        Checksum(self.0.finalize().into())
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let good = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
        for (input, ok) in [
            (good, true),
            (&good[..63], false),
            (
                "6E340B9CFFB37A989CA544E6BB780A2C78901D3FB33738768511A30617AFA01D",
                false,
            ),
            (
                "zz340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                false,
            ),
            ("", false),
        ] {
            assert_eq!(input.parse::<Checksum>().is_ok(), ok, "{input}");
        }
        assert_eq!(good.parse::<Checksum>().unwrap().to_string(), good);
    }

    #[test]
    fn empty_dirtree_vector() {
        assert_eq!(
            Checksum::of(&[0]).to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
