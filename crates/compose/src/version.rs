//! Versions: `<debian major>.<YYYYMMDD>.<stream code>.<respin>`, e.g. `12.20261125.3.0`.
//!
//! The date is the UTC day of the compose's timestamp (`SOURCE_DATE_EPOCH` when set). The respin
//! is one more than the highest respin already on the ref's history for the same prefix, date and
//! stream, or 0 for the first compose of the day.

/// The UTC calendar date of a Unix timestamp as `YYYYMMDD`.
pub fn yyyymmdd(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The next version for `prefix`, `date` and `stream_code`, given the versions already on the
/// ref's history (in any order; unrelated versions are ignored).
pub fn next_version<'a>(
    prefix: &str,
    date: &str,
    stream_code: u32,
    existing: impl IntoIterator<Item = &'a str>,
) -> String {
    let stem = format!("{prefix}.{date}.{stream_code}.");
    let respin = existing
        .into_iter()
        .filter_map(|v| v.strip_prefix(&stem)?.parse::<u64>().ok())
        .max()
        .map_or(0, |r| r + 1);
    format!("{stem}{respin}")
}

/// Check a version given with `--release-version`: four dot-separated numbers.
pub fn check_version(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!(
            "version {v:?} is not <debian major>.<YYYYMMDD>.<stream code>.<respin>, e.g. 12.20261125.3.0"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        for (secs, want) in [
            (0, "19700101"),
            (951_782_400, "20000229"),
            (1_764_028_800, "20251125"),
            (1_795_564_799, "20261124"),
            (1_795_564_800, "20261125"),
            (4_102_444_800, "21000101"),
            (4_107_542_400, "21000301"),
        ] {
            assert_eq!(yyyymmdd(secs), want, "{secs}");
        }
    }

    #[test]
    fn respins() {
        for (existing, want) in [
            (vec![], "12.20261125.3.0"),
            (vec!["12.20261125.3.0"], "12.20261125.3.1"),
            (
                vec!["12.20261125.3.4", "12.20261125.3.1"],
                "12.20261125.3.5",
            ),
            (vec!["12.20261124.3.7"], "12.20261125.3.0"),
            (vec!["12.20261125.2.3"], "12.20261125.3.0"),
            (vec!["12.20261125.3.x", "garbage"], "12.20261125.3.0"),
            (
                vec!["12.20261125.3.10", "12.20261125.3.9"],
                "12.20261125.3.11",
            ),
        ] {
            assert_eq!(
                next_version("12", "20261125", 3, existing.clone()),
                want,
                "{existing:?}"
            );
        }
    }

    #[test]
    fn version_syntax() {
        for (v, ok) in [
            ("12.20261125.3.0", true),
            ("12.20261125.3", false),
            ("12.2026x125.3.0", false),
            ("12..3.0", false),
        ] {
            assert_eq!(check_version(v).is_ok(), ok, "{v}");
        }
    }
}
