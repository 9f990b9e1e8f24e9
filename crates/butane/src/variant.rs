//! Butane variants and versions this crate accepts, and the Ignition spec each produces.

use keel_ignition_config::Version;

/// A supported `variant`/`version` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The Ignition spec version of the output.
    pub spec: Version,
    /// Which sugar is available, as the equivalent fcos minor version (fcos 1.N → N).
    pub level: u64,
}

/// fcos 1.0.0–1.6.0 as upstream Butane maps them; keel 1.0.0 has all of fcos 1.6.0's sugar and
/// produces the newest stable spec this project supports (3.5.0).
const TABLE: &[(&str, &str, u64, u64)] = &[
    ("fcos", "1.0.0", 0, 0),
    ("fcos", "1.1.0", 1, 1),
    ("fcos", "1.2.0", 2, 2),
    ("fcos", "1.3.0", 2, 3),
    ("fcos", "1.4.0", 3, 4),
    ("fcos", "1.5.0", 4, 5),
    ("fcos", "1.6.0", 5, 6),
    ("keel", "1.0.0", 5, 6),
];

/// Why a variant/version pair was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariantError {
    #[error("unsupported config variant {0:?}; supported: fcos (1.0.0 to 1.6.0) and keel (1.0.0)")]
    Variant(String),
    #[error(
        "unsupported config version {version:?} for variant {variant}; supported: {supported}"
    )]
    Version {
        variant: String,
        version: String,
        supported: String,
    },
}

pub fn lookup(variant: &str, version: &str) -> Result<Target, VariantError> {
    let rows: Vec<_> = TABLE.iter().filter(|r| r.0 == variant).collect();
    if rows.is_empty() {
        return Err(VariantError::Variant(variant.to_string()));
    }
    match rows.iter().find(|r| r.1 == version) {
        Some(&&(_, _, spec_minor, level)) => Ok(Target {
            spec: Version {
                major: 3,
                minor: spec_minor,
                patch: 0,
                experimental: false,
            },
            level,
        }),
        None => Err(VariantError::Version {
            variant: variant.to_string(),
            version: version.to_string(),
            supported: rows.iter().map(|r| r.1).collect::<Vec<_>>().join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let cases = [
            ("fcos", "1.0.0", Ok("3.0.0")),
            ("fcos", "1.1.0", Ok("3.1.0")),
            ("fcos", "1.2.0", Ok("3.2.0")),
            ("fcos", "1.3.0", Ok("3.2.0")),
            ("fcos", "1.4.0", Ok("3.3.0")),
            ("fcos", "1.5.0", Ok("3.4.0")),
            ("fcos", "1.6.0", Ok("3.5.0")),
            ("keel", "1.0.0", Ok("3.5.0")),
            ("fcos", "1.7.0", Err("unsupported config version")),
            ("rhcos", "0.1.0", Err("unsupported config variant")),
        ];
        for (variant, version, want) in cases {
            let got = lookup(variant, version)
                .map(|t| t.spec.to_string())
                .map_err(|e| e.to_string());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w),
                (Err(g), Err(w)) => assert!(g.starts_with(w), "{g}"),
                (g, w) => panic!("{variant} {version}: got {g:?}, want {w:?}"),
            }
        }
    }
}
