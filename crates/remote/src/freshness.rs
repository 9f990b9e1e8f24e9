//! Is a remote's summary recent? A mirror that stops updating (or an attacker who keeps serving
//! an old, validly signed summary) hides every update published since, without any signature
//! failing. As TUF's timestamp role does, a summary older than a limit (the remote's
//! `summary-max-age-secs`, default 7 days) is reported as stale, and one past its
//! `ostree.summary.expires` as expired. Its age comes from `ostree.summary.last-modified`, which
//! `keel repo summary --update` writes; a summary without it is of unknown age.
//!
//! [`SummarySeen`] (a `keel_proto` type) is what a pull or a check read (recorded by the caller,
//! e.g. for `keel status`); [`assess`] turns it into a [`Freshness`] at a given time.

use crate::summary::Summary;
pub use keel_proto::freshness::{Freshness, State, SummarySeen};
use std::time::{Duration, UNIX_EPOCH};

/// Default for `summary-max-age-secs`: 7 days.
pub const DEFAULT_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// The summary a source read while resolving refs.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRead {
    /// The summary, when the server offers one.
    pub summary: Option<Summary>,
    /// Its signature was checked against the remote's trusted keys.
    pub verified: bool,
}

/// Record what `read` holds for remote `remote` at `url`, seen at `now`.
pub fn seen(
    remote: &str,
    url: &str,
    read: &SummaryRead,
    max_age_secs: u64,
    now: u64,
) -> SummarySeen {
    let s = read.summary.as_ref();
    SummarySeen {
        remote: remote.to_string(),
        url: url.to_string(),
        present: s.is_some(),
        verified: read.verified && s.is_some(),
        last_modified: s.and_then(Summary::last_modified),
        expires: s.and_then(Summary::expires),
        max_age_secs,
        checked_at: now,
    }
}

/// Judge what was seen at `now` (seconds since the epoch).
pub fn assess(seen: &SummarySeen, now: u64) -> Freshness {
    let who = format!("the summary of remote `{}` ({})", seen.remote, seen.url);
    let age = seen.last_modified.map(|t| now.saturating_sub(t));
    let (state, mut message) = match (seen.present, seen.last_modified, age) {
        (false, _, _) => (
            State::UnknownAge,
            format!(
                "remote `{}` ({}) offers no summary, so its age is unknown and a frozen \
                 mirror cannot be detected; publish one with `keel repo summary --update \
                 --sign-key KEYFILE`",
                seen.remote, seen.url
            ),
        ),
        _ if seen.expires.is_some_and(|e| e <= now) => (
            State::Expired,
            format!(
                "{who} expired at {} (ostree.summary.expires): the mirror may be frozen or \
                 replaying an old summary; updates published since are not seen",
                format_time(seen.expires.unwrap_or(0))
            ),
        ),
        (true, Some(t), Some(a)) if seen.max_age_secs > 0 && a > seen.max_age_secs => (
            State::Stale,
            format!(
                "{who} was last modified {} ({} ago), more than the {} limit \
                 (summary-max-age-secs): the mirror may be frozen or replaying an old \
                 summary; updates published since are not seen",
                format_time(t),
                format_duration(a),
                format_duration(seen.max_age_secs)
            ),
        ),
        (true, Some(t), Some(a)) => (
            State::Fresh,
            format!(
                "{who} was last modified {} ({} ago)",
                format_time(t),
                format_duration(a)
            ),
        ),
        (true, _, _) => (
            State::UnknownAge,
            format!(
                "{who} has no ostree.summary.last-modified, so its age is unknown and a \
                 frozen mirror cannot be detected; the publisher should regenerate it with \
                 `keel repo summary --update`"
            ),
        ),
    };
    if seen.present && !seen.verified {
        message.push_str(
            " (its signature is not checked: sign-verify-summary is off, so these dates \
             prove nothing)",
        );
    }
    Freshness {
        seen: seen.clone(),
        state,
        age_secs: age,
        message,
    }
}

/// Now, in seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the epoch as RFC 3339 (UTC); the bare number when out of range.
pub fn format_time(secs: u64) -> String {
    // humantime formats years up to 9999.
    const MAX: u64 = 253_402_300_799;
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(t) if secs <= MAX => humantime::format_rfc3339_seconds(t).to_string(),
        _ => format!("{secs} s after the epoch"),
    }
}

/// A duration in the largest whole unit: `9 days`, `5 h`, `3 min`, `12 s`.
pub fn format_duration(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 3600 => format!("{} h", s / 3600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_store::Variant;

    fn summary(meta: &[(&str, u64)]) -> Summary {
        Summary {
            refs: Vec::new(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), Variant::U64(v.to_be())))
                .collect(),
        }
    }

    #[test]
    fn states_table() {
        let day = 86_400;
        let now = 100 * day;
        let lm = crate::summary::LAST_MODIFIED_KEY;
        let ex = crate::summary::EXPIRES_KEY;
        /// (name, summary, verified, limit, expected state, text in the message)
        type Case<'a> = (&'a str, Option<Summary>, bool, u64, State, &'a str);
        let cases: Vec<Case> = vec![
            (
                "fresh",
                Some(summary(&[(lm, now - day)])),
                true,
                7 * day,
                State::Fresh,
                "24 h ago",
            ),
            (
                "stale",
                Some(summary(&[(lm, now - 9 * day)])),
                true,
                7 * day,
                State::Stale,
                "9 days ago",
            ),
            (
                "no limit",
                Some(summary(&[(lm, now - 90 * day)])),
                true,
                0,
                State::Fresh,
                "90 days",
            ),
            (
                "expired",
                Some(summary(&[(lm, now - day), (ex, now - 1)])),
                true,
                7 * day,
                State::Expired,
                "expired at",
            ),
            (
                "not yet expired",
                Some(summary(&[(lm, now - day), (ex, now + 1)])),
                true,
                7 * day,
                State::Fresh,
                "ago",
            ),
            (
                "no timestamp",
                Some(summary(&[])),
                true,
                7 * day,
                State::UnknownAge,
                "no ostree.summary.last-modified",
            ),
            (
                "no summary",
                None,
                false,
                7 * day,
                State::UnknownAge,
                "offers no summary",
            ),
            (
                "unverified",
                Some(summary(&[(lm, now - day)])),
                false,
                7 * day,
                State::Fresh,
                "prove nothing",
            ),
            (
                "future",
                Some(summary(&[(lm, now + day)])),
                true,
                7 * day,
                State::Fresh,
                "0 s ago",
            ),
        ];
        for (name, s, verified, max, state, text) in cases {
            let read = SummaryRead {
                summary: s,
                verified,
            };
            let f = assess(&seen("keel", "http://m/", &read, max, now), now);
            assert_eq!(f.state, state, "{name}: {}", f.message);
            assert!(f.message.contains(text), "{name}: {}", f.message);
            assert!(f.message.contains("`keel`"), "{name}: {}", f.message);
        }
    }

    #[test]
    fn times_out_of_range_do_not_panic() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert!(format_time(u64::MAX).contains("after the epoch"));
    }
}
