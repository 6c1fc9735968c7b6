//! Recurring schedules and blackout windows, in a named IANA time zone: pure calendar
//! arithmetic over times given by the caller.
//!
//! A [`Cron`] is the classic five fields, `minute hour day-of-month month day-of-week`, with
//! `*`, lists, ranges, steps and names (`JAN`..`DEC`, `SUN`..`SAT`; day 0 and 7 are Sunday).
//! When both day fields are restricted, a day matching either one matches (as in cron).
//! Times are wall-clock times of the zone, and daylight saving changes are handled as cron
//! implementations on Linux handle them:
//! - a time that does not exist that day (the clocks jumped over it) fires once, at the first
//!   instant after the jump;
//! - a time that exists twice (the clocks went back over it) fires once, at its first
//!   occurrence.
//!
//! A [`Blackout`] is a span in which no experiment starts and running ones are stopped: once
//! (between two instants), or daily between two wall-clock times, which may cross midnight
//! (`22:00`–`06:00` covers the night after each listed day).

use std::collections::BTreeSet;
use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::spec::{Problem, SpecError};

fn problem(field: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        problems: vec![Problem {
            field: field.to_owned(),
            message: message.into(),
        }],
    }
}

/// An IANA time zone name (`Europe/Berlin`, `UTC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Zone(Tz);

impl Zone {
    /// Parses a zone name.
    pub fn parse(name: &str) -> Result<Zone, SpecError> {
        name.parse::<Tz>().map(Zone).map_err(|_| {
            problem(
                "time_zone",
                format!("{name:?} is not an IANA time zone name (like Europe/Berlin or UTC)"),
            )
        })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    fn local(self, at: Timestamp) -> DateTime<Tz> {
        at.to_datetime().with_timezone(&self.0)
    }

    /// The instant of a wall-clock time: the earlier one when it exists twice, the first instant
    /// after the jump when it does not exist.
    fn instant(self, local: chrono::NaiveDateTime) -> Option<Timestamp> {
        // In a gap, the first wall-clock minute after it resolves: that is the jump itself.
        let resolved = (0..=24 * 60).find_map(|m| {
            match self.0.from_local_datetime(&(local + Duration::minutes(m))) {
                chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => Some(t),
                chrono::LocalResult::None => None,
            }
        })?;
        Some(Timestamp::from_datetime(resolved.with_timezone(&Utc)))
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cron expression: `minute hour day-of-month month day-of-week`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    days: BTreeSet<u32>,
    months: BTreeSet<u32>,
    weekdays: BTreeSet<u32>,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field(
    text: &str,
    name: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<(BTreeSet<u32>, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            return Ok(u32::try_from(i).unwrap_or(0) + min);
        }
        let n: u32 = s
            .parse()
            .map_err(|_| format!("{name}: {s:?} is not a number or a name"))?;
        if n < min || n > max {
            return Err(format!("{name}: {n} is outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut set = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step {step:?} must be a number above 0"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("{name}: range {range} runs backwards"));
            }
            (a, b)
        } else {
            let a = value(range)?;
            (a, if part.contains('/') { max } else { a })
        };
        set.extend((from..=to).step_by(step as usize));
    }
    if set.is_empty() {
        return Err(format!("{name}: {text:?} matches nothing"));
    }
    Ok((set, text != "*"))
}

impl Cron {
    /// Parses an expression, saying what is wrong with one that does not parse.
    pub fn parse(text: &str) -> Result<Cron, SpecError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let bad = |message: String| problem("cron", message);
        let [minute, hour, day, month, weekday] = parts.as_slice() else {
            return Err(bad(format!(
                "{text:?} has {} fields; a cron expression has five: minute hour day-of-month month day-of-week",
                parts.len()
            )));
        };
        let (minutes, _) = field(minute, "minute", 0, 59, &[]).map_err(bad)?;
        let (hours, _) = field(hour, "hour", 0, 23, &[]).map_err(bad)?;
        let (days, days_restricted) = field(day, "day of month", 1, 31, &[]).map_err(bad)?;
        let (months, _) = field(month, "month", 1, 12, &MONTHS).map_err(bad)?;
        let (mut weekdays, weekdays_restricted) =
            field(weekday, "day of week", 0, 7, &WEEKDAYS).map_err(bad)?;
        if weekdays.remove(&7) {
            weekdays.insert(0);
        }
        let cron = Cron {
            text: parts.join(" "),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        };
        // A date that never comes (30 February) is a mistake, not a schedule.
        let possible = cron.months.iter().any(|m| {
            let longest = match m {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            cron.weekdays_restricted || cron.days.iter().any(|d| *d <= longest)
        });
        if !possible {
            return Err(bad(format!("{text:?} names a day that never comes")));
        }
        Ok(cron)
    }

    /// The expression, normalized.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches_day(&self, date: NaiveDate) -> bool {
        if !self.months.contains(&date.month()) {
            return false;
        }
        let day = self.days.contains(&date.day());
        let weekday = self
            .weekdays
            .contains(&date.weekday().num_days_from_sunday());
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        }
    }

    /// The first time this expression fires in `zone` strictly after `after`.
    pub fn next_after(&self, zone: Zone, after: Timestamp) -> Option<Timestamp> {
        // From the day before (a gap or an overlap can move a time across midnight), for up
        // to eight years (29 February on a Monday comes round within that).
        let start = zone.local(after).date_naive().pred_opt()?;
        for offset in 0..(8 * 366) {
            let date = start + Duration::days(offset);
            if !self.matches_day(date) {
                continue;
            }
            for hour in &self.hours {
                for minute in &self.minutes {
                    let Some(time) = NaiveTime::from_hms_opt(*hour, *minute, 0) else {
                        continue;
                    };
                    if let Some(at) = zone.instant(date.and_time(time))
                        && at > after
                    {
                        return Some(at);
                    }
                }
            }
        }
        None
    }

    /// The last time this expression fired in `zone` at or before `at`, looking back at most
    /// `within`.
    pub fn last_at_or_before(
        &self,
        zone: Zone,
        at: Timestamp,
        within: Duration,
    ) -> Option<Timestamp> {
        let from = Timestamp::from_datetime(at.to_datetime() - within - Duration::seconds(1));
        let mut last = None;
        let mut cursor = from;
        while let Some(next) = self.next_after(zone, cursor) {
            if next > at {
                break;
            }
            last = Some(next);
            cursor = next;
        }
        last
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// When a blackout applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum BlackoutWindow {
    /// Once, from `from` until `to`.
    Once {
        /// Start (inclusive).
        from: Timestamp,
        /// End (exclusive).
        to: Timestamp,
    },
    /// Every listed day (every day when none is listed), from `start` until `end` wall-clock
    /// time in `time_zone`; an `end` before `start` ends the next morning.
    Daily {
        /// IANA zone name.
        time_zone: String,
        /// `HH:MM`.
        start: String,
        /// `HH:MM`.
        end: String,
        /// `MON`..`SUN`; empty for every day.
        #[serde(default)]
        days: Vec<String>,
    },
}

/// A checked blackout window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blackout {
    window: BlackoutWindow,
    zone: Option<Zone>,
    start: NaiveTime,
    end: NaiveTime,
    days: BTreeSet<u32>,
}

fn clock_time(field: &str, text: &str) -> Result<NaiveTime, SpecError> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| problem(field, format!("{text:?} is not a time of day HH:MM")))
}

impl Blackout {
    /// Checks a window.
    pub fn parse(window: BlackoutWindow) -> Result<Blackout, SpecError> {
        match &window {
            BlackoutWindow::Once { from, to } => {
                if to <= from {
                    return Err(problem("window.to", "must be after window.from"));
                }
                Ok(Blackout {
                    window,
                    zone: None,
                    start: NaiveTime::MIN,
                    end: NaiveTime::MIN,
                    days: BTreeSet::new(),
                })
            }
            BlackoutWindow::Daily {
                time_zone,
                start,
                end,
                days,
            } => {
                let zone = Zone::parse(time_zone)?;
                let (s, e) = (
                    clock_time("window.start", start)?,
                    clock_time("window.end", end)?,
                );
                if s == e {
                    return Err(problem("window.end", "must differ from window.start"));
                }
                let mut set = BTreeSet::new();
                for day in days {
                    let i = WEEKDAYS
                        .iter()
                        .position(|d| d.eq_ignore_ascii_case(day))
                        .ok_or_else(|| {
                            problem("window.days", format!("{day:?} is not a day (MON..SUN)"))
                        })?;
                    set.insert(u32::try_from(i).unwrap_or(0));
                }
                Ok(Blackout {
                    window,
                    zone: Some(zone),
                    start: s,
                    end: e,
                    days: set,
                })
            }
        }
    }

    /// The window as given.
    pub fn window(&self) -> &BlackoutWindow {
        &self.window
    }

    fn listed(&self, weekday: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&weekday.num_days_from_sunday())
    }

    /// Whether `at` falls in the window.
    pub fn contains(&self, at: Timestamp) -> bool {
        match (&self.window, self.zone) {
            (BlackoutWindow::Once { from, to }, _) => *from <= at && at < *to,
            (BlackoutWindow::Daily { .. }, Some(zone)) => {
                let local = zone.local(at);
                let (date, time) = (
                    local.date_naive(),
                    local.time().with_nanosecond(0).unwrap_or(local.time()),
                );
                if self.start < self.end {
                    self.listed(date.weekday()) && self.start <= time && time < self.end
                } else {
                    (self.listed(date.weekday()) && time >= self.start)
                        || (time < self.end && self.listed(date.weekday().pred()))
                }
            }
            (BlackoutWindow::Daily { .. }, None) => false,
        }
    }

    /// The window in words.
    pub fn describe(&self) -> String {
        match &self.window {
            BlackoutWindow::Once { from, to } => format!("from {from} to {to}"),
            BlackoutWindow::Daily {
                time_zone,
                start,
                end,
                days,
            } => {
                let on = if days.is_empty() {
                    "every day".to_owned()
                } else {
                    days.join(",")
                };
                format!("{start}-{end} {time_zone}, {on}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().expect("RFC 3339")
    }

    fn next(cron: &str, zone: &str, after: &str) -> String {
        Cron::parse(cron)
            .expect("parses")
            .next_after(Zone::parse(zone).expect("zone"), utc(after))
            .expect("fires")
            .to_string()
    }

    #[test]
    fn expressions_parse_or_say_what_is_wrong() {
        for good in [
            "* * * * *",
            "*/15 9-17 * * MON-FRI",
            "0 0 1,15 * *",
            "30 2 * JAN,jul 0,7",
        ] {
            Cron::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, says) in [
            ("* * * *", "five"),
            ("60 * * * *", "outside 0-59"),
            ("* * * * FUNDAY", "not a number"),
            ("5-1 * * * *", "backwards"),
            ("*/0 * * * *", "step"),
            ("0 0 30 2 *", "never comes"),
        ] {
            let error = Cron::parse(bad).expect_err(bad).to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn occurrences_follow_the_zone() {
        assert_eq!(
            next("0 9 * * *", "UTC", "2026-06-01T09:00:00Z"),
            "2026-06-02T09:00:00.000Z"
        );
        // 09:00 in Berlin is 07:00 UTC in summer, 08:00 in winter.
        assert_eq!(
            next("0 9 * * *", "Europe/Berlin", "2026-06-01T00:00:00Z"),
            "2026-06-01T07:00:00.000Z"
        );
        assert_eq!(
            next("0 9 * * *", "Europe/Berlin", "2026-12-01T00:00:00Z"),
            "2026-12-01T08:00:00.000Z"
        );
        // Weekdays only: Friday 2026-11-27, then Monday 2026-11-30.
        assert_eq!(
            next("30 10 * * MON-FRI", "UTC", "2026-11-27T10:30:00Z"),
            "2026-11-30T10:30:00.000Z"
        );
        // Both day fields restricted: either matches (the 1st, or any Sunday).
        assert_eq!(
            next("0 0 1 * SUN", "UTC", "2026-11-26T00:00:00Z"),
            "2026-11-29T00:00:00.000Z"
        );
    }

    #[test]
    fn a_time_the_clocks_skip_fires_once_right_after_the_jump() {
        // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC). 02:30 does not exist.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z"),
            "2026-03-29T01:00:00.000Z"
        );
        // The day after, 02:30 CEST is 00:30 UTC.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z"),
            "2026-03-30T00:30:00.000Z"
        );
        // Every quarter hour across the jump: 01:45 CET, then 03:00 CEST once (02:00, 02:15,
        // 02:30, 02:45 and 03:00 all land on the jump), then 03:15 CEST.
        let cron = Cron::parse("*/15 * * * *").expect("parses");
        let zone = Zone::parse("Europe/Berlin").expect("zone");
        let mut at = utc("2026-03-29T00:30:00Z");
        let mut fired = Vec::new();
        for _ in 0..3 {
            at = cron.next_after(zone, at).expect("fires");
            fired.push(at.to_string());
        }
        assert_eq!(
            fired,
            [
                "2026-03-29T00:45:00.000Z",
                "2026-03-29T01:00:00.000Z",
                "2026-03-29T01:15:00.000Z"
            ]
        );
    }

    #[test]
    fn a_time_the_clocks_repeat_fires_once_at_its_first_occurrence() {
        // New York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 happens twice, at 05:30 UTC
        // and at 06:30 UTC. It fires at the first only; the next is the day after.
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z"),
            "2026-11-01T05:30:00.000Z"
        );
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z"),
            "2026-11-02T06:30:00.000Z"
        );
    }

    #[test]
    fn the_last_occurrence_is_found_looking_back() {
        let cron = Cron::parse("0 * * * *").expect("parses");
        let zone = Zone::parse("UTC").expect("zone");
        let last = cron.last_at_or_before(zone, utc("2026-11-26T10:20:00Z"), Duration::minutes(30));
        assert_eq!(last, Some(utc("2026-11-26T10:00:00Z")));
        assert_eq!(
            cron.last_at_or_before(zone, utc("2026-11-26T10:00:00Z"), Duration::minutes(5)),
            Some(utc("2026-11-26T10:00:00Z"))
        );
        assert_eq!(
            cron.last_at_or_before(zone, utc("2026-11-26T10:20:00Z"), Duration::minutes(10)),
            None
        );
    }

    fn nightly(days: &[&str]) -> Blackout {
        Blackout::parse(BlackoutWindow::Daily {
            time_zone: "Europe/Berlin".into(),
            start: "22:00".into(),
            end: "06:00".into(),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
        })
        .expect("valid")
    }

    #[test]
    fn a_window_crossing_midnight_covers_the_night_after_each_listed_day() {
        let every = nightly(&[]);
        // Winter: Berlin is UTC+1.
        assert!(!every.contains(utc("2026-12-01T20:59:00Z"))); // 21:59
        assert!(every.contains(utc("2026-12-01T21:00:00Z"))); // 22:00
        assert!(every.contains(utc("2026-12-01T23:30:00Z"))); // 00:30 next day
        assert!(every.contains(utc("2026-12-02T04:59:00Z"))); // 05:59
        assert!(!every.contains(utc("2026-12-02T05:00:00Z"))); // 06:00
        // Friday nights only: Friday 2026-12-04 22:00 to Saturday 06:00.
        let fridays = nightly(&["FRI"]);
        assert!(fridays.contains(utc("2026-12-04T21:30:00Z"))); // Fri 22:30
        assert!(fridays.contains(utc("2026-12-05T03:00:00Z"))); // Sat 04:00
        assert!(!fridays.contains(utc("2026-12-05T21:30:00Z"))); // Sat 22:30
        assert!(!fridays.contains(utc("2026-12-04T03:00:00Z"))); // Fri 04:00 (Thursday's night)
    }

    #[test]
    fn a_nightly_window_keeps_wall_clock_hours_across_a_dst_change() {
        // The night of 2026-10-24/25 in Berlin: clocks go back at 03:00 CEST. The window ends at
        // 06:00 CET, which is 05:00 UTC (not 04:00 UTC as the night before).
        let every = nightly(&[]);
        assert!(every.contains(utc("2026-10-24T20:00:00Z"))); // 22:00 CEST
        assert!(every.contains(utc("2026-10-25T04:30:00Z"))); // 05:30 CET
        assert!(!every.contains(utc("2026-10-25T05:00:00Z"))); // 06:00 CET
        assert!(!every.contains(utc("2026-10-24T04:00:00Z"))); // 06:00 CEST the day before
    }

    #[test]
    fn windows_are_checked() {
        let once = Blackout::parse(BlackoutWindow::Once {
            from: utc("2026-12-24T00:00:00Z"),
            to: utc("2026-12-27T00:00:00Z"),
        })
        .expect("valid");
        assert!(once.contains(utc("2026-12-24T00:00:00Z")));
        assert!(!once.contains(utc("2026-12-27T00:00:00Z")));
        assert!(
            Blackout::parse(BlackoutWindow::Once {
                from: utc("2026-12-27T00:00:00Z"),
                to: utc("2026-12-24T00:00:00Z"),
            })
            .is_err()
        );
        for (start, end, days) in [
            ("25:00", "06:00", vec![]),
            ("22:00", "22:00", vec![]),
            ("22:00", "06:00", vec!["FUNDAY".to_owned()]),
        ] {
            assert!(
                Blackout::parse(BlackoutWindow::Daily {
                    time_zone: "UTC".into(),
                    start: start.into(),
                    end: end.into(),
                    days,
                })
                .is_err()
            );
        }
    }
}
