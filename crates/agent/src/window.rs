//! Weekly maintenance windows (`periodic` strategy). A window starts on given weekdays at a
//! local wall-clock time in one time zone and lasts `length_minutes`, possibly past midnight
//! and past Sunday into Monday. Membership is decided on the local wall clock: the instant is
//! converted to the zone (`jiff`, with the IANA database bundled so named zones work on nodes
//! without tzdata), reduced to "minutes since Monday 00:00", and compared with each window
//! start modulo one week.
//!
//! Daylight-saving changes follow from wall-clock semantics: on a spring-forward night the
//! skipped local hour does not exist, so a window inside it does not open that day and one
//! overlapping it is shorter; on a fall-back night the repeated local hour is in the window
//! both times, so the window is longer.

use crate::config::PeriodicSection;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const WEEK: i64 = 7 * 24 * 60;

/// One window: start as minutes since Monday 00:00 (local), and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: i64,
    length: i64,
}

/// The configured windows in one time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    tz_name: String,
    windows: Vec<Window>,
}

fn parse_day(s: &str) -> Option<Weekday> {
    let days = [
        ("mon", "monday", Weekday::Monday),
        ("tue", "tuesday", Weekday::Tuesday),
        ("wed", "wednesday", Weekday::Wednesday),
        ("thu", "thursday", Weekday::Thursday),
        ("fri", "friday", Weekday::Friday),
        ("sat", "saturday", Weekday::Saturday),
        ("sun", "sunday", Weekday::Sunday),
    ];
    let l = s.to_ascii_lowercase();
    days.iter()
        .find(|(short, long, _)| l == *short || l == *long)
        .map(|d| d.2)
}

fn parse_time(s: &str) -> Option<(i8, i8)> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

fn minute_of_week(day: Weekday, h: i8, m: i8) -> i64 {
    i64::from(day.to_monday_zero_offset()) * 1440 + i64::from(h) * 60 + i64::from(m)
}

impl Schedule {
    /// Build from `[updates.periodic]`; the error text names the bad key and value.
    pub fn from_config(p: &PeriodicSection) -> Result<Schedule, String> {
        let tz = match p.time_zone.as_str() {
            "UTC" => TimeZone::UTC,
            "localtime" => TimeZone::try_system().map_err(|e| {
                format!("updates.periodic.time_zone `localtime`: /etc/localtime: {e}")
            })?,
            name => TimeZone::get(name).map_err(|e| {
                format!("updates.periodic.time_zone `{name}` is not a known IANA time zone ({e})")
            })?,
        };
        if p.window.is_empty() {
            return Err(
                "strategy `periodic` has no window; add [[updates.periodic.window]]".into(),
            );
        }
        let mut windows = Vec::new();
        for (i, w) in p.window.iter().enumerate() {
            let (h, m) = parse_time(&w.start_time).ok_or_else(|| {
                format!(
                    "updates.periodic.window[{i}].start_time `{}` is not HH:MM (00:00-23:59)",
                    w.start_time
                )
            })?;
            if w.length_minutes == 0 {
                return Err(format!(
                    "updates.periodic.window[{i}].length_minutes must be > 0"
                ));
            }
            if w.days.is_empty() {
                return Err(format!("updates.periodic.window[{i}].days is empty"));
            }
            for d in &w.days {
                let day = parse_day(d).ok_or_else(|| {
                    format!("updates.periodic.window[{i}].days: `{d}` is not a weekday (Mon..Sun or Monday..Sunday)")
                })?;
                windows.push(Window {
                    start: minute_of_week(day, h, m),
                    length: i64::from(w.length_minutes),
                });
            }
        }
        Ok(Schedule {
            tz,
            tz_name: p.time_zone.clone(),
            windows,
        })
    }

    /// The configured time zone name.
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// Total minutes per week inside some window (overlaps counted once).
    pub fn weekly_minutes(&self) -> i64 {
        (0..WEEK)
            .filter(|m| self.windows.iter().any(|w| contains(w, *m)))
            .count() as i64
    }

    /// Is the instant (UNIX seconds) inside a window?
    pub fn contains(&self, unix: i64) -> bool {
        let Ok(ts) = Timestamp::from_second(unix) else {
            return false;
        };
        let z = ts.to_zoned(self.tz.clone());
        let m = minute_of_week(z.weekday(), z.hour(), z.minute());
        self.windows.iter().any(|w| contains(w, m))
    }

    /// The next instant (UNIX seconds) after `unix` at which a window starts.
    pub fn next_start(&self, unix: i64) -> Option<i64> {
        let ts = Timestamp::from_second(unix).ok()?;
        let today: Date = ts.to_zoned(self.tz.clone()).date();
        let mut best: Option<i64> = None;
        for offset in 0..=7 {
            let date = today.checked_add(offset.days()).ok()?;
            let day = i64::from(date.weekday().to_monday_zero_offset()) * 1440;
            for w in self.windows.iter().filter(|w| w.start / 1440 * 1440 == day) {
                let mins = w.start - day;
                let dt = date.at((mins / 60) as i8, (mins % 60) as i8, 0, 0);
                let Ok(z) = dt.to_zoned(self.tz.clone()) else {
                    continue;
                };
                let t = z.timestamp().as_second();
                if t > unix && best.is_none_or(|b| t < b) {
                    best = Some(t);
                }
            }
        }
        best
    }
}

fn contains(w: &Window, minute: i64) -> bool {
    (minute - w.start).rem_euclid(WEEK) < w.length
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WindowSection;

    /// (days, start time, length) per window.
    type Windows = [(&'static [&'static str], &'static str, u32)];

    fn schedule(tz: &str, windows: &Windows) -> Schedule {
        Schedule::from_config(&PeriodicSection {
            time_zone: tz.into(),
            window: windows
                .iter()
                .map(|(d, s, l)| WindowSection {
                    days: d.iter().map(|x| x.to_string()).collect(),
                    start_time: s.to_string(),
                    length_minutes: *l,
                })
                .collect(),
        })
        .unwrap()
    }

    fn at(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn membership_on_a_fake_clock() {
        // (time zone, windows, instant, inside?)
        type Case = (&'static str, &'static Windows, &'static str, bool);
        let cases: &[Case] = &[
            // 2026-11-28 is a Saturday.
            (
                "UTC",
                &[(&["Sat"], "23:30", 60)],
                "2026-11-28T23:29:59Z",
                false,
            ),
            (
                "UTC",
                &[(&["Sat"], "23:30", 60)],
                "2026-11-28T23:30:00Z",
                true,
            ),
            // Crosses midnight into Sunday.
            (
                "UTC",
                &[(&["Sat"], "23:30", 60)],
                "2026-11-29T00:29:59Z",
                true,
            ),
            (
                "UTC",
                &[(&["Sat"], "23:30", 60)],
                "2026-11-29T00:30:00Z",
                false,
            ),
            // Crosses the end of the week: Sunday 23:00 + 2 h ends Monday 01:00.
            (
                "UTC",
                &[(&["Sunday"], "23:00", 120)],
                "2026-11-30T00:59:00Z",
                true,
            ),
            (
                "UTC",
                &[(&["sun"], "23:00", 120)],
                "2026-11-30T01:00:00Z",
                false,
            ),
            (
                "UTC",
                &[(&["Sun"], "23:00", 120)],
                "2026-11-29T22:59:00Z",
                false,
            ),
            // Several days and windows.
            (
                "UTC",
                &[(&["Mon", "Wed"], "04:00", 30), (&["Fri"], "12:00", 10)],
                "2026-11-25T04:10:00Z",
                true,
            ),
            (
                "UTC",
                &[(&["Mon", "Wed"], "04:00", 30), (&["Fri"], "12:00", 10)],
                "2026-11-26T04:10:00Z",
                false,
            ),
            (
                "UTC",
                &[(&["Mon", "Wed"], "04:00", 30), (&["Fri"], "12:00", 10)],
                "2026-11-27T12:05:00Z",
                true,
            ),
            // A named zone: Berlin is UTC+1 in winter, UTC+2 in summer.
            (
                "Europe/Berlin",
                &[(&["Sat"], "03:00", 60)],
                "2026-11-28T02:30:00Z",
                true,
            ),
            (
                "Europe/Berlin",
                &[(&["Sat"], "03:00", 60)],
                "2026-11-28T03:30:00Z",
                false,
            ),
            (
                "Europe/Berlin",
                &[(&["Sat"], "03:00", 60)],
                "2026-07-04T01:30:00Z",
                true,
            ),
            (
                "Europe/Berlin",
                &[(&["Sat"], "03:00", 60)],
                "2026-07-04T02:30:00Z",
                false,
            ),
            // Spring forward (2026-03-29 02:00 CET -> 03:00 CEST): 02:00-03:00 does not exist,
            // so a window there never opens that night...
            (
                "Europe/Berlin",
                &[(&["Sun"], "02:00", 60)],
                "2026-03-29T00:59:00Z",
                false,
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "02:00", 60)],
                "2026-03-29T01:00:00Z",
                false,
            ),
            // ...and 01:30-03:00 lasts 30 real minutes.
            (
                "Europe/Berlin",
                &[(&["Sun"], "01:30", 90)],
                "2026-03-29T00:30:00Z",
                true,
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "01:30", 90)],
                "2026-03-29T00:59:00Z",
                true,
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "01:30", 90)],
                "2026-03-29T01:00:00Z",
                false,
            ),
            // Fall back (2026-10-25 03:00 CEST -> 02:00 CET): 02:00-02:30 happens twice.
            (
                "Europe/Berlin",
                &[(&["Sun"], "02:00", 30)],
                "2026-10-25T00:10:00Z",
                true,
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "02:00", 30)],
                "2026-10-25T00:45:00Z",
                false,
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "02:00", 30)],
                "2026-10-25T01:10:00Z",
                true,
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "02:00", 30)],
                "2026-10-25T01:30:00Z",
                false,
            ),
            // West of UTC, crossing the UTC date line: Friday 22:00 New York is Saturday UTC.
            (
                "America/New_York",
                &[(&["Fri"], "22:00", 60)],
                "2026-11-28T03:30:00Z",
                true,
            ),
            (
                "America/New_York",
                &[(&["Fri"], "22:00", 60)],
                "2026-11-28T02:30:00Z",
                false,
            ),
        ];
        for (tz, windows, instant, inside) in cases {
            let s = schedule(tz, windows);
            assert_eq!(
                s.contains(at(instant)),
                *inside,
                "{tz} {windows:?} at {instant}"
            );
        }
    }

    #[test]
    fn next_start_and_weekly_length() {
        let cases: &[(&str, &Windows, &str, &str)] = &[
            (
                "UTC",
                &[(&["Sat"], "23:30", 60)],
                "2026-11-25T10:00:00Z",
                "2026-11-28T23:30:00Z",
            ),
            // Exactly at a start: the next one is a week later.
            (
                "UTC",
                &[(&["Sat"], "23:30", 60)],
                "2026-11-28T23:30:00Z",
                "2026-12-05T23:30:00Z",
            ),
            (
                "UTC",
                &[(&["Mon", "Thu"], "01:00", 5)],
                "2026-11-27T00:00:00Z",
                "2026-11-30T01:00:00Z",
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "03:00", 60)],
                "2026-03-28T12:00:00Z",
                "2026-03-29T01:00:00Z",
            ),
            (
                "Europe/Berlin",
                &[(&["Sun"], "03:00", 60)],
                "2026-11-28T12:00:00Z",
                "2026-11-29T02:00:00Z",
            ),
        ];
        for (tz, windows, now, next) in cases {
            let s = schedule(tz, windows);
            assert_eq!(
                s.next_start(at(now)),
                Some(at(next)),
                "{tz} {windows:?} after {now}"
            );
        }
        assert_eq!(
            schedule("UTC", &[(&["Sat", "Sun"], "23:00", 120)]).weekly_minutes(),
            240
        );
        // Overlapping windows count once; a window longer than the rest of the week wraps.
        assert_eq!(
            schedule("UTC", &[(&["Mon"], "00:00", 90), (&["Mon"], "01:00", 60)]).weekly_minutes(),
            120
        );
        assert_eq!(
            schedule("UTC", &[(&["Sun"], "00:00", 20000)]).weekly_minutes(),
            WEEK
        );
    }

    #[test]
    fn bad_windows_are_refused() {
        let cases: &[(&str, &[&str], &str, u32, &str)] = &[
            ("Mars/Olympus", &["Mon"], "01:00", 5, "Mars/Olympus"),
            ("UTC", &["Mon"], "1:0", 5, "start_time"),
            ("UTC", &["Mon"], "24:00", 5, "start_time"),
            ("UTC", &["Mon"], "10:60", 5, "start_time"),
            ("UTC", &["Mon"], "10:00", 0, "length_minutes"),
            ("UTC", &["Lundi"], "10:00", 5, "Lundi"),
            ("UTC", &[], "10:00", 5, "days is empty"),
        ];
        for (tz, days, start, len, want) in cases {
            let e = Schedule::from_config(&PeriodicSection {
                time_zone: tz.to_string(),
                window: vec![WindowSection {
                    days: days.iter().map(|d| d.to_string()).collect(),
                    start_time: start.to_string(),
                    length_minutes: *len,
                }],
            })
            .unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
