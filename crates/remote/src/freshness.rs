//! Is a remote's summary recent? A mirror that stops updating (or an attacker who keeps serving
//! an old, validly signed summary) hides every update published since, without any signature
//! failing. As TUF's timestamp role does, a summary older than a limit (the remote's
//! `summary-max-age-secs`, default 7 days) is reported as stale, and one past its
//! `ostree.summary.expires` as expired. Its age comes from `ostree.summary.last-modified`, which
//! `keel repo summary --update` writes; a summary without it is of unknown age.
//!
//! [`SummarySeen`] (a `keel_proto` type) is what a pull or a check read (recorded by the caller,
//! e.g. for `keel status`); [`SummarySeen::assess`] turns it into a [`Freshness`] at a given time.

use crate::summary::Summary;
pub use keel_proto::freshness::{format_duration, format_time, now, Freshness, State, SummarySeen};

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
            let f = seen("keel", "http://m/", &read, max, now).assess(now);
            assert_eq!(f.state, state, "{name}: {}", f.message);
            assert!(f.message.contains(text), "{name}: {}", f.message);
            assert!(f.message.contains("`keel`"), "{name}: {}", f.message);
        }
    }
}
