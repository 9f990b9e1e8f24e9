//! Config spec versions: which exist, which this crate accepts, and what each one allows.

use std::fmt;

/// A spec version `3.MINOR.0`, possibly `-experimental`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub experimental: bool,
}

/// The newest stable spec; the typed model is this version's.
pub const NEWEST: Version = Version {
    major: 3,
    minor: 5,
    patch: 0,
    experimental: false,
};
/// The one experimental spec accepted (same schema as 3.5.0; special mode bits allowed).
pub const EXPERIMENTAL: Version = Version {
    major: 3,
    minor: 6,
    patch: 0,
    experimental: true,
};

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("invalid config version (couldn't parse)")]
    Invalid,
    #[error("unsupported config version")]
    Unsupported,
}

impl Version {
    /// Parses a semantic version (`3.4.0`, `3.6.0-experimental`).
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.len() != 3 {
            return Err(VersionError::Invalid);
        }
        let mut parsed = [0u64; 3];
        for (slot, n) in parsed.iter_mut().zip(&nums) {
            let valid = !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'));
            if !valid {
                return Err(VersionError::Invalid);
            }
            *slot = n.parse().map_err(|_| VersionError::Invalid)?;
        }
        let experimental = match pre {
            None => false,
            Some("experimental") => true,
            Some(p)
                if !p.is_empty()
                    && p.split('.').all(|x| {
                        !x.is_empty() && x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }) =>
            {
                return Err(VersionError::Unsupported)
            }
            Some(_) => return Err(VersionError::Invalid),
        };
        Ok(Version {
            major: parsed[0],
            minor: parsed[1],
            patch: parsed[2],
            experimental,
        })
    }

    /// Parses and checks that this crate accepts the version: 3.0.0 to 3.5.0 and 3.6.0-experimental.
    pub fn parse_supported(s: &str) -> Result<Version, VersionError> {
        let v = Version::parse(s)?;
        if v.is_supported() {
            Ok(v)
        } else {
            Err(VersionError::Unsupported)
        }
    }

    pub fn is_supported(&self) -> bool {
        *self == EXPERIMENTAL
            || (self.major == 3
                && self.minor <= NEWEST.minor
                && self.patch == 0
                && !self.experimental)
    }

    /// True when this version has everything spec `3.minor.0` introduced.
    pub fn at_least(&self, minor: u64) -> bool {
        self.minor >= minor
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if self.experimental {
            f.write_str("-experimental")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_table() {
        let cases: &[(&str, Result<&str, VersionError>)] = &[
            ("3.0.0", Ok("3.0.0")),
            ("3.5.0", Ok("3.5.0")),
            ("3.6.0-experimental", Ok("3.6.0-experimental")),
            ("3.6.0", Err(VersionError::Unsupported)),
            ("3.4.0-experimental", Err(VersionError::Unsupported)),
            ("3.7.0-experimental", Err(VersionError::Unsupported)),
            ("2.3.0", Err(VersionError::Unsupported)),
            ("3.1.1", Err(VersionError::Unsupported)),
            ("3.0.0-rc1", Err(VersionError::Unsupported)),
            ("invalid.semver", Err(VersionError::Invalid)),
            ("", Err(VersionError::Invalid)),
            ("3.01.0", Err(VersionError::Invalid)),
            ("3.0", Err(VersionError::Invalid)),
        ];
        for (input, want) in cases {
            let got = Version::parse_supported(input).map(|v| v.to_string());
            assert_eq!(got, want.clone().map(String::from), "{input}");
        }
    }
}
