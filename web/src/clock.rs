//! Wall-clock times in a time zone, and back to instants: the arithmetic, without the zone
//! database. The browser's `Intl` says what a zone's clocks read at an instant; from that,
//! [`utc_of_wall`] finds the instant a reading (a `datetime-local` field, in the user's time
//! zone) stands for, whatever the zone's offset and across its clock changes.

use crate::report::parse_day;

/// Milliseconds since the epoch of a wall-clock reading, `YYYY-MM-DDTHH:MM[:SS]` (or with a
/// space for the `T`), taken as if it were read in UTC; none if it is not one.
pub fn wall_ms(text: &str) -> Option<f64> {
    let day = parse_day(text.get(..10)?)?;
    let time = text.get(10..)?.strip_prefix(['T', ' '])?;
    let mut fields = time.split(':');
    let mut next = |most: i64| -> Option<i64> {
        let field = fields.next()?;
        if field.len() != 2 || !field.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: i64 = field.parse().ok()?;
        (value <= most).then_some(value)
    };
    let (hour, minute) = (next(23)?, next(59)?);
    let second = if time.len() > 5 { next(59)? } else { 0 };
    if fields.next().is_some() {
        return None;
    }
    let seconds = day * 86_400 + hour * 3_600 + minute * 60 + second;
    // Any date a form can hold is far inside f64's exact integers.
    #[allow(clippy::cast_precision_loss)]
    Some(seconds as f64 * 1_000.0)
}

/// The instant (milliseconds since the epoch) whose reading on the zone's clocks is `wall`
/// (from [`wall_ms`]), given `wall_of`: what the zone's clocks read at an instant. The zone's
/// offset at a guess corrects the guess, twice, which settles it on either side of a clock
/// change. A reading that happens twice (clocks going back) is the later of its instants; one
/// that never happens (clocks going forward) lands as far past the change as it was into the
/// skipped hour.
pub fn utc_of_wall(wall: f64, wall_of: impl Fn(f64) -> Option<f64>) -> Option<f64> {
    let guess = wall - (wall_of(wall)? - wall);
    Some(wall - (wall_of(guess)? - guess))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: f64 = 3_600_000.0;

    fn at(text: &str) -> f64 {
        wall_ms(text).expect("a wall time")
    }

    /// Berlin's clocks in 2026: CET (+1), CEST (+2) from 29 March 01:00 UTC to 25 October
    /// 01:00 UTC.
    fn berlin(utc: f64) -> Option<f64> {
        let summer = (at("2026-03-29T01:00")..at("2026-10-25T01:00")).contains(&utc);
        Some(utc + if summer { 2.0 * HOUR } else { HOUR })
    }

    #[test]
    fn readings_parse_with_or_without_seconds_and_nothing_else_does() {
        assert_eq!(at("1970-01-01T00:00"), 0.0);
        assert_eq!(at("1970-01-02 01:02:03"), 86_400_000.0 + 3_723_000.0);
        assert_eq!(at("2026-11-27T09:30"), at("2026-11-27 09:30:00"));
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T9:30",
            "2026-11-27T+9:30",
            "2026-11-27T24:00",
            "2026-11-27T09:60",
            "2026-11-27T09:30:61",
            "2026-11-27T09:30:00:00",
            "2026-11-27X09:30",
            "2026-13-27T09:30",
        ] {
            assert_eq!(wall_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_reading_in_a_fixed_zone_is_its_offset_away() {
        let kolkata = |utc: f64| Some(utc + 5.5 * HOUR);
        let utc = |wall: &str, zone: &dyn Fn(f64) -> Option<f64>| utc_of_wall(at(wall), zone);
        assert_eq!(
            utc("2026-11-27T13:42", &kolkata),
            Some(at("2026-11-27T08:12"))
        );
        assert_eq!(utc("2026-11-27T08:12", &Some), Some(at("2026-11-27T08:12")));
        assert_eq!(utc("2026-11-27T08:12", &|_| None), None);
    }

    #[test]
    fn readings_across_clock_changes_settle_on_the_right_instant() {
        let utc = |wall: &str| utc_of_wall(at(wall), berlin).expect("an instant");
        // Winter and summer.
        assert_eq!(utc("2026-01-15T12:00"), at("2026-01-15T11:00"));
        assert_eq!(utc("2026-07-15T12:00"), at("2026-07-15T10:00"));
        // Either side of the spring change (02:00 becomes 03:00).
        assert_eq!(utc("2026-03-29T01:30"), at("2026-03-29T00:30"));
        assert_eq!(utc("2026-03-29T03:30"), at("2026-03-29T01:30"));
        // 02:30 never happens that night: half an hour past the change.
        assert_eq!(utc("2026-03-29T02:30"), at("2026-03-29T01:30"));
        // Either side of the autumn change (03:00 becomes 02:00 again).
        assert_eq!(utc("2026-10-25T01:30"), at("2026-10-24T23:30"));
        assert_eq!(utc("2026-10-25T03:30"), at("2026-10-25T02:30"));
        // 02:30 happens twice that night: the later one.
        assert_eq!(utc("2026-10-25T02:30"), at("2026-10-25T01:30"));
        // Midnight of every day of the year is that day's midnight in Berlin.
        for day in 0..365 {
            let midnight = at("2026-01-01T00:00") + f64::from(day) * 24.0 * HOUR;
            let instant = utc_of_wall(midnight, berlin).expect("an instant");
            assert_eq!(berlin(instant), Some(midnight), "day {day}");
        }
    }
}
