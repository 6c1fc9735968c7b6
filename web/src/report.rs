//! The figures of the results page, computed from the finished runs it shows.
//!
//! The `analytics` query counts every run ever finished; this page counts the runs of a date
//! range, so it computes the same figures from the `results` rows itself, with the server's
//! definitions (`domain::views::analytics`): dry runs and interrupted runs are counted but
//! left out of the success rate (neither measured the target), MTTR is the mean recovery time of recovered runs, percentiles are nearest-rank, rates
//! are basis points rounded down, availability is the mean over the runs that took health
//! samples. Days are UTC days, as the server's per-day figures are.
//!
//! Pure and the same on every target: no clock (the caller passes "now"), no I/O.

use serde_json::{Value, json};

/// How a run ended, in the order the page lists outcomes.
pub const OUTCOMES: [&str; 6] = [
    "RECOVERED",
    "NOT_RECOVERED",
    "FAILED",
    "STOPPED",
    "DRY_RUN",
    "INTERRUPTED",
];

/// Counts by outcome: one per entry of [`OUTCOMES`], then one for any outcome this page does
/// not know.
pub const SLOTS: usize = OUTCOMES.len() + 1;

const DRY_RUN: usize = 4;
const INTERRUPTED: usize = 5;

/// At most this many runs (the latest) are drawn in a chart of runs: more would be slivers.
pub const CHART_RUNS: usize = 200;

/// One finished run (a `RunResult` of the API, every field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// The experiment.
    pub experiment_id: String,
    /// Its name.
    pub name: String,
    /// Target key.
    pub target: String,
    /// `TERMINATE` or `PAUSE`.
    pub failure_type: String,
    /// One of [`OUTCOMES`].
    pub outcome: String,
    /// Injection to recovery, when it recovered.
    pub recovery_ms: Option<u64>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub ended_at: String,
    /// End minus start.
    pub duration_ms: u64,
    /// Instances the selector matched.
    pub candidates: u64,
    /// Instances the failure was injected into.
    pub targets_hit: Vec<String>,
    /// For a dry run, the instances a real run would have hit.
    pub would_hit: Vec<String>,
    /// Health samples taken.
    pub samples: u64,
    /// Lowest healthy count seen.
    pub min_healthy: Option<u64>,
    /// Highest error rate seen, basis points.
    pub max_error_rate_bp: Option<u64>,
    /// Highest p95 latency seen, milliseconds.
    pub max_latency_p95_ms: Option<u64>,
    /// Mean share of healthy instances over the samples, basis points.
    pub availability_bp: Option<u64>,
}

/// The fields of a `RunResult`, as the API names them and as the exports write them.
pub const FIELDS: &str = "experimentId name target failureType outcome recoveryMs startedAt \
    endedAt durationMs candidates targetsHit wouldHit samples minHealthy maxErrorRateBp maxLatencyP95Ms \
    availabilityBp";

impl Run {
    /// A run from the API's JSON; `None` if a required field is missing.
    pub fn from_json(v: &Value) -> Option<Run> {
        let text = |f: &str| v[f].as_str().map(str::to_owned);
        Some(Run {
            experiment_id: text("experimentId")?,
            name: text("name")?,
            target: text("target")?,
            failure_type: text("failureType")?,
            outcome: text("outcome")?,
            recovery_ms: v["recoveryMs"].as_u64(),
            started_at: text("startedAt")?,
            ended_at: text("endedAt")?,
            duration_ms: v["durationMs"].as_u64()?,
            candidates: v["candidates"].as_u64()?,
            targets_hit: v["targetsHit"]
                .as_array()?
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            would_hit: v["wouldHit"]
                .as_array()
                .map(|targets| {
                    targets
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            samples: v["samples"].as_u64()?,
            min_healthy: v["minHealthy"].as_u64(),
            max_error_rate_bp: v["maxErrorRateBp"].as_u64(),
            max_latency_p95_ms: v["maxLatencyP95Ms"].as_u64(),
            availability_bp: v["availabilityBp"].as_u64(),
        })
    }

    /// The run as the API's JSON (the inverse of [`Run::from_json`]).
    pub fn to_json(&self) -> Value {
        json!({
            "experimentId": self.experiment_id,
            "name": self.name,
            "target": self.target,
            "failureType": self.failure_type,
            "outcome": self.outcome,
            "recoveryMs": self.recovery_ms,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "durationMs": self.duration_ms,
            "candidates": self.candidates,
            "targetsHit": self.targets_hit,
            "wouldHit": self.would_hit,
            "samples": self.samples,
            "minHealthy": self.min_healthy,
            "maxErrorRateBp": self.max_error_rate_bp,
            "maxLatencyP95Ms": self.max_latency_p95_ms,
            "availabilityBp": self.availability_bp,
        })
    }

    /// The UTC day it ended (`YYYY-MM-DD`).
    pub fn day(&self) -> &str {
        self.ended_at.get(..10).unwrap_or(&self.ended_at)
    }

    /// Whether it was a dry run (which nothing was done to).
    pub fn is_dry(&self) -> bool {
        self.outcome == "DRY_RUN"
    }

    /// The index of its outcome in [`OUTCOMES`] (their length for one this page does not know).
    pub fn outcome_index(&self) -> usize {
        OUTCOMES
            .iter()
            .position(|o| *o == self.outcome)
            .unwrap_or(OUTCOMES.len())
    }
}

/// The headline figures of a set of runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Every run, dry runs included.
    pub runs: u32,
    /// Runs by outcome, in the order of [`OUTCOMES`], then any other outcome.
    pub by_outcome: [u32; SLOTS],
    /// Recovered over real (not dry) runs, basis points; none without a real run.
    pub success_rate_bp: Option<u32>,
    /// Recovery times counted (recovered runs with a recovery time).
    pub recoveries: u32,
    /// Mean recovery time, ms.
    pub mttr_ms: Option<u64>,
    /// Median recovery time, ms (nearest rank).
    pub p50_ms: Option<u64>,
    /// 95th percentile recovery time, ms (nearest rank).
    pub p95_ms: Option<u64>,
    /// Runs with health samples, whose availability is averaged.
    pub sampled: u32,
    /// Mean availability over them, basis points.
    pub availability_bp: Option<u32>,
}

impl Figures {
    /// Dry runs.
    pub fn dry_runs(&self) -> u32 {
        self.by_outcome[DRY_RUN]
    }

    /// Runs the platform interrupted while their failure was in effect.
    pub fn interrupted(&self) -> u32 {
        self.by_outcome[INTERRUPTED]
    }

    /// Runs that measured the target (neither dry nor interrupted).
    pub fn real_runs(&self) -> u32 {
        self.runs - self.dry_runs() - self.interrupted()
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` % of the
/// values at or below it.
pub fn nearest_rank(sorted: &[u64], p: u32) -> Option<u64> {
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1).unwrap_or(usize::MAX);
    sorted.get(index.min(sorted.len().checked_sub(1)?)).copied()
}

fn ratio_bp(part: u32, whole: u32) -> Option<u32> {
    (whole > 0)
        .then(|| u32::try_from(u64::from(part) * 10_000 / u64::from(whole)).unwrap_or(10_000))
}

/// The figures of `runs`.
pub fn figures(runs: &[Run]) -> Figures {
    let mut f = Figures::default();
    let mut recovery = Vec::new();
    let mut availability = 0_u64;
    for run in runs {
        f.runs += 1;
        f.by_outcome[run.outcome_index()] += 1;
        if let ("RECOVERED", Some(ms)) = (run.outcome.as_str(), run.recovery_ms) {
            // Kept sorted as it grows (for the percentiles): no sort routine in the wasm.
            recovery.insert(recovery.partition_point(|&v| v <= ms), ms);
        }
        if let (false, Some(a)) = (run.outcome == OUTCOMES[INTERRUPTED], run.availability_bp) {
            availability += a;
            f.sampled += 1;
        }
    }
    f.success_rate_bp = ratio_bp(f.by_outcome[0], f.real_runs());
    f.recoveries = u32::try_from(recovery.len()).unwrap_or(u32::MAX);
    f.mttr_ms =
        (!recovery.is_empty()).then(|| recovery.iter().sum::<u64>() / recovery.len() as u64);
    f.p50_ms = nearest_rank(&recovery, 50);
    f.p95_ms = nearest_rank(&recovery, 95);
    f.availability_bp = (f.sampled > 0)
        .then(|| u32::try_from(availability / u64::from(f.sampled)).unwrap_or(u32::MAX));
    f
}

/// Runs of one group (a day, a target, a failure type), counted by outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The day, target or failure type.
    pub key: String,
    /// Runs by outcome, in the order of [`OUTCOMES`], then any other.
    pub by_outcome: [u32; SLOTS],
}

impl Group {
    /// Every run of the group.
    pub fn runs(&self) -> u32 {
        self.by_outcome.iter().sum()
    }

    /// Recovered over real runs (neither dry nor interrupted), basis points.
    pub fn success_rate_bp(&self) -> Option<u32> {
        ratio_bp(
            self.by_outcome[0],
            self.runs() - self.by_outcome[DRY_RUN] - self.by_outcome[INTERRUPTED],
        )
    }
}

/// `runs` grouped by `key`, in the keys' order.
pub fn groups(runs: &[Run], key: impl Fn(&Run) -> &str) -> Vec<Group> {
    // A sorted Vec rather than a map: there are few groups, and the page's wasm stays smaller.
    let mut groups: Vec<Group> = Vec::new();
    for run in runs {
        let key = key(run);
        let at = match groups.binary_search_by(|g| g.key.as_str().cmp(key)) {
            Ok(at) => at,
            Err(at) => {
                groups.insert(
                    at,
                    Group {
                        key: key.to_owned(),
                        by_outcome: [0; SLOTS],
                    },
                );
                at
            }
        };
        groups[at].by_outcome[run.outcome_index()] += 1;
    }
    groups
}

/// A rate in basis points as a percentage with one decimal (`97.5 %`), `–` for none.
pub fn percent(bp: Option<u32>) -> String {
    bp.map_or_else(
        || "–".to_owned(),
        |bp| format!("{}.{} %", bp / 100, bp % 100 / 10),
    )
}

/// Milliseconds as seconds with one decimal, rounded half up (`2.35 s` for 2349 ms is `2.3 s`),
/// as every page shows a duration.
pub fn seconds(ms: u64) -> String {
    crate::units::seconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Milliseconds with thousands separators (`12,345 ms`), `–` for none.
pub fn millis(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "–".to_owned();
    };
    let digits = ms.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + " ms"
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (`YYYY-MM-DD`) `days` days after 1970-01-01.
pub fn format_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The days since 1970-01-01 of a `YYYY-MM-DD` date, if it is one.
pub fn parse_day(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let days = days_from_civil(i64::from(year), month, day);
    // Reject 2026-02-30 and the like: the day must come back as written.
    ((1..=12).contains(&month) && format_day(days) == text).then_some(days)
}

/// The UTC day of a time in milliseconds since the epoch.
pub fn day_of_epoch_ms(ms: f64) -> i64 {
    (ms / 86_400_000.0).floor() as i64
}

/// An RFC 3339 UTC time (`2026-11-27T05:08:23Z`) of milliseconds since the epoch.
pub fn rfc3339_of_epoch_ms(ms: f64) -> String {
    let secs = (ms / 1000.0).floor() as i64;
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_day(secs.div_euclid(86_400)),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// A range of UTC days, both ends included; an empty end is open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// First day (`YYYY-MM-DD`), or empty.
    pub from: String,
    /// Last day (`YYYY-MM-DD`), or empty.
    pub to: String,
}

impl Range {
    /// The last `days` days up to `today` (days since the epoch).
    pub fn last_days(today: i64, days: i64) -> Range {
        Range {
            from: format_day(today - days + 1),
            to: format_day(today),
        }
    }

    /// The `endedFrom` and `endedTo` the API takes for it (`endedTo` is exclusive: the day
    /// after the last), or why it is not a range.
    pub fn bounds(&self) -> Result<(Option<String>, Option<String>), String> {
        let day = |text: &str, what: &str| -> Result<Option<i64>, String> {
            if text.is_empty() {
                return Ok(None);
            }
            parse_day(text)
                .map(Some)
                .ok_or_else(|| format!("The {what} date {text:?} is not a date (YYYY-MM-DD)."))
        };
        let (from, to) = (day(&self.from, "from")?, day(&self.to, "to")?);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err("The range ends before it starts: pick a \"to\" date on or after the \"from\" date.".to_owned());
        }
        let at = |days: i64| format!("{}T00:00:00Z", format_day(days));
        Ok((from.map(at), to.map(|to| at(to + 1))))
    }

    /// Whether a run that ended on `day` (`YYYY-MM-DD`) is in it.
    pub fn contains(&self, day: &str) -> bool {
        (self.from.is_empty() || day >= self.from.as_str())
            && (self.to.is_empty() || day <= self.to.as_str())
    }

    /// The range in words (`2026-11-01 to 2026-11-27`, `every day`).
    pub fn describe(&self) -> String {
        match (self.from.is_empty(), self.to.is_empty()) {
            (true, true) => "every day".to_owned(),
            (false, true) => format!("from {} on", self.from),
            (true, false) => format!("up to {}", self.to),
            (false, false) => format!("{} to {}", self.from, self.to),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run of the tests: `outcome`, ended on `day`, recovering in `ms`.
    pub(crate) fn run(id: &str, outcome: &str, day: &str, ms: Option<u64>) -> Run {
        Run {
            experiment_id: id.to_owned(),
            name: format!("run {id}"),
            target: "web".to_owned(),
            failure_type: "TERMINATE".to_owned(),
            outcome: outcome.to_owned(),
            recovery_ms: ms,
            started_at: format!("{day}T10:00:00Z"),
            ended_at: format!("{day}T10:00:05Z"),
            duration_ms: 5_000,
            candidates: 3,
            targets_hit: vec!["i-1".to_owned()],
            would_hit: Vec::new(),
            samples: 4,
            min_healthy: Some(2),
            max_error_rate_bp: Some(120),
            max_latency_p95_ms: Some(35),
            availability_bp: Some(9_000),
        }
    }

    #[test]
    fn no_runs_have_no_rates() {
        let f = figures(&[]);
        assert_eq!(f.runs, 0);
        assert_eq!(f.success_rate_bp, None);
        assert_eq!((f.mttr_ms, f.p50_ms, f.p95_ms), (None, None, None));
        assert_eq!(f.availability_bp, None);
        assert_eq!(percent(f.success_rate_bp), "–");
    }

    #[test]
    fn dry_runs_count_as_runs_but_not_in_the_rate() {
        let dry = [
            run("a", "DRY_RUN", "2026-11-01", None),
            run("b", "DRY_RUN", "2026-11-01", None),
        ];
        let f = figures(&dry);
        assert_eq!((f.runs, f.dry_runs(), f.real_runs()), (2, 2, 0));
        assert_eq!(f.success_rate_bp, None);
        let mut mixed = dry.to_vec();
        mixed.push(run("c", "RECOVERED", "2026-11-02", Some(1_000)));
        mixed.push(run("d", "NOT_RECOVERED", "2026-11-02", None));
        mixed.push(run("e", "FAILED", "2026-11-02", None));
        let f = figures(&mixed);
        assert_eq!(f.runs, 5);
        assert_eq!(f.by_outcome, [1, 1, 1, 0, 2, 0, 0]);
        // One recovered of three real runs: 33.3 %, rounded down.
        assert_eq!(f.success_rate_bp, Some(3_333));
        assert_eq!(percent(f.success_rate_bp), "33.3 %");
    }

    #[test]
    fn interrupted_runs_count_as_runs_but_in_no_rate_nor_availability() {
        let mut runs = vec![
            run("a", "RECOVERED", "2026-11-02", Some(1_000)),
            run("b", "INTERRUPTED", "2026-11-02", Some(400)),
        ];
        runs[1].availability_bp = Some(10_000);
        let f = figures(&runs);
        assert_eq!((f.runs, f.interrupted(), f.real_runs()), (2, 1, 1));
        assert_eq!(f.success_rate_bp, Some(10_000));
        assert_eq!((f.recoveries, f.mttr_ms), (1, Some(1_000)));
        assert_eq!(f.sampled, 1);
        assert_eq!(groups(&runs, Run::day)[0].success_rate_bp(), Some(10_000));
    }

    #[test]
    fn recovery_figures_are_over_recovered_runs_only() {
        // In an order that is not the recovery times' own.
        let mut runs: Vec<Run> = [
            7, 3, 20, 1, 14, 9, 2, 18, 5, 11, 16, 4, 13, 8, 19, 6, 12, 15, 10, 17,
        ]
        .into_iter()
        .map(|i| run(&i.to_string(), "RECOVERED", "2026-11-02", Some(i * 100)))
        .collect();
        // A stopped run with a recovery time does not count, nor does one without samples.
        runs.push(run("s", "STOPPED", "2026-11-02", Some(99_999)));
        runs[0].availability_bp = None;
        let f = figures(&runs);
        assert_eq!(f.recoveries, 20);
        assert_eq!(f.mttr_ms, Some(1_050));
        assert_eq!(f.p50_ms, Some(1_000));
        assert_eq!(f.p95_ms, Some(1_900));
        assert_eq!(f.sampled, 20);
        assert_eq!(f.availability_bp, Some(9_000));
        assert_eq!(f.success_rate_bp, Some(9_523));
    }

    #[test]
    fn nearest_rank_as_the_server_computes_it() {
        let v: Vec<u64> = (1..=20).map(|i| i * 100).collect();
        assert_eq!(nearest_rank(&v, 50), Some(1_000));
        assert_eq!(nearest_rank(&v, 95), Some(1_900));
        assert_eq!(nearest_rank(&v, 100), Some(2_000));
        assert_eq!(nearest_rank(&[7], 95), Some(7));
        assert_eq!(nearest_rank(&[3, 9], 50), Some(3));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn groups_count_outcomes_per_key() {
        let mut runs = vec![
            run("a", "RECOVERED", "2026-11-02", Some(1)),
            run("b", "NOT_RECOVERED", "2026-11-01", None),
            run("c", "SOMETHING_NEW", "2026-11-02", None),
        ];
        runs[1].target = "api".to_owned();
        let by_day = groups(&runs, Run::day);
        assert_eq!(by_day.len(), 2);
        assert_eq!(by_day[0].key, "2026-11-01");
        assert_eq!(by_day[0].success_rate_bp(), Some(0));
        assert_eq!(by_day[1].by_outcome, [1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(by_day[1].success_rate_bp(), Some(5_000));
        let by_target = groups(&runs, |r| &r.target);
        assert_eq!(by_target[0].key, "api");
        assert_eq!(by_target[1].runs(), 2);
    }

    #[test]
    fn numbers_in_words() {
        assert_eq!(seconds(2_349), "2.3 s");
        assert_eq!(seconds(2_350), "2.4 s");
        assert_eq!(seconds(0), "0.0 s");
        assert_eq!(millis(Some(1_234_567)), "1,234,567 ms");
        assert_eq!(millis(Some(999)), "999 ms");
        assert_eq!(millis(None), "–");
        assert_eq!(percent(Some(10_000)), "100.0 %");
        assert_eq!(percent(Some(5)), "0.0 %");
    }

    #[test]
    fn calendar_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(parse_day("2000-03-01"), Some(11_017));
        assert_eq!(format_day(11_016), "2000-02-29");
        assert_eq!(parse_day("2026-02-29"), None);
        assert_eq!(parse_day("2026-13-01"), None);
        assert_eq!(parse_day("2026-1-01"), None);
        assert_eq!(parse_day("+026-01-01"), None);
        for days in [-719_468, -1, 0, 59, 20_000, 20_784, 2_000_000] {
            assert_eq!(parse_day(&format_day(days)), Some(days));
        }
        assert_eq!(
            day_of_epoch_ms(1_795_756_103_000.0),
            parse_day("2026-11-27").unwrap_or(0)
        );
        assert_eq!(
            rfc3339_of_epoch_ms(1_795_756_103_500.0),
            "2026-11-27T05:08:23Z"
        );
    }

    #[test]
    fn ranges_and_the_bounds_the_api_takes() {
        let today = parse_day("2026-03-01").unwrap_or(0);
        let range = Range::last_days(today, 7);
        assert_eq!(range.from, "2026-02-23");
        let (from, to) = range.bounds().unwrap_or_default();
        assert_eq!(from.as_deref(), Some("2026-02-23T00:00:00Z"));
        // The last day is included: the API's end is exclusive, so it gets the next midnight.
        assert_eq!(to.as_deref(), Some("2026-03-02T00:00:00Z"));
        assert!(range.contains("2026-03-01") && range.contains("2026-02-23"));
        assert!(!range.contains("2026-02-22") && !range.contains("2026-03-02"));
        assert_eq!(Range::default().bounds(), Ok((None, None)));
        assert!(Range::default().contains("1999-01-01"));
        let backwards = Range {
            from: "2026-03-02".into(),
            to: "2026-03-01".into(),
        };
        assert!(backwards.bounds().is_err());
        let bad = Range {
            from: "yesterday".into(),
            to: String::new(),
        };
        assert!(bad.bounds().is_err());
        assert_eq!(range.describe(), "2026-02-23 to 2026-03-01");
    }

    #[test]
    fn runs_read_and_written_as_the_api_has_them() {
        let r = run("e1", "RECOVERED", "2026-11-02", Some(2_345));
        let json = r.to_json();
        assert_eq!(json["recoveryMs"], 2_345);
        assert_eq!(json["maxLatencyP95Ms"], 35);
        assert_eq!(Run::from_json(&json), Some(r.clone()));
        let keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut fields: Vec<&str> = FIELDS.split_whitespace().collect();
        fields.sort_unstable();
        assert_eq!(keys, fields);
        let mut partial = json;
        partial["recoveryMs"] = Value::Null;
        assert_eq!(Run::from_json(&partial).and_then(|r| r.recovery_ms), None);
        partial["name"] = Value::Null;
        assert_eq!(Run::from_json(&partial), None);
    }
}
