//! The geometry of the results page's charts, shared by the SVG on the page and the PDF
//! export: axes with round ticks, columns (one per day or per run) and stacked bars (outcomes
//! per target or failure type).
//!
//! Coordinates are in a fixed box of [`WIDTH`] by the chart's height, y growing downwards as in
//! SVG; the page scales the box to its width (`viewBox`), the PDF flips and places it.

use crate::report::{CHART_RUNS, Group, Run, SLOTS, percent, seconds};

/// The width of every chart's box.
pub const WIDTH: f64 = 600.0;
/// The height of a column chart's box.
pub const HEIGHT: f64 = 232.0;
/// Left edge of the plot area (room for the value axis' labels).
pub const LEFT: f64 = 60.0;
/// Right edge of the plot area.
pub const RIGHT: f64 = 590.0;
/// Top of the plot area (room for the value axis' title above it).
pub const TOP: f64 = 30.0;
/// Bottom of the plot area (room for the labels under it).
pub const BOTTOM: f64 = 180.0;

/// The same numbers as SVG attributes take them, written out so that the page formats no
/// float (checked against the numbers by a test).
pub mod svg {
    /// The view box of a column chart.
    pub const VIEW_BOX: &str = "0 0 600 232";
    /// [`super::WIDTH`].
    pub const WIDTH: &str = "600";
    /// [`super::LEFT`].
    pub const LEFT: &str = "60";
    /// [`super::RIGHT`].
    pub const RIGHT: &str = "590";
    /// [`super::BOTTOM`].
    pub const BOTTOM: &str = "180";
    /// Where the value axis' labels end, a little left of the plot area.
    pub const LABELS_END: &str = "54";
    /// The baseline of the labels under the columns.
    pub const UNDER: &str = "198";
    /// The middle of the plot area.
    pub const MIDDLE: &str = "325";
    /// The baseline of the title under the columns.
    pub const TITLE_Y: &str = "228";
}

/// A rectangle of the box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// A value axis from zero to `max`, with a tick every `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// The top of the axis (a multiple of `step`).
    pub max: u64,
    /// Between ticks.
    pub step: u64,
}

impl Axis {
    /// An axis that holds `max` in at most five round steps (1, 2 or 5 times a power of ten).
    pub fn to_fit(max: u64) -> Axis {
        let mut unit = 1_u64;
        loop {
            for factor in [1, 2, 5] {
                let step = unit.saturating_mul(factor);
                if step.saturating_mul(5) >= max || step == u64::MAX {
                    let steps = max.div_ceil(step).max(1);
                    return Axis {
                        max: step.saturating_mul(steps),
                        step,
                    };
                }
            }
            unit = unit.saturating_mul(10);
        }
    }

    /// The ticks, from zero to the top.
    pub fn ticks(&self) -> Vec<u64> {
        (0..=self.max / self.step).map(|i| i * self.step).collect()
    }

    /// The height of `value` in the plot area (`BOTTOM` for zero, `TOP` for the top).
    pub fn y(&self, value: u64) -> f64 {
        let share = value.min(self.max) as f64 / self.max as f64;
        BOTTOM - share * (BOTTOM - TOP)
    }
}

/// One column per value across the plot area, each as tall as its value on `axis`; none for a
/// missing value (a day with only dry runs has no success rate). Columns keep a gap of a fifth
/// of their slot, and at least a sliver of height so a zero is seen.
pub fn columns(values: &[Option<u64>], axis: &Axis) -> Vec<Option<Rect>> {
    let slot = (RIGHT - LEFT) / values.len().max(1) as f64;
    let width = (slot * 0.8).min(48.0);
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            value.map(|v| {
                let y = axis.y(v).min(BOTTOM - 1.5);
                Rect {
                    x: LEFT + slot * i as f64 + (slot - width) / 2.0,
                    y,
                    w: width,
                    h: BOTTOM - y,
                }
            })
        })
        .collect()
}

/// The height of one row of a stacked bar chart (its label above, its bar below).
pub const ROW: f64 = 40.0;

/// A stacked bar chart: one row per group, a segment per outcome, as long as its count on a
/// shared axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Stacked {
    /// The axis of counts.
    pub axis: Axis,
    /// The box's height.
    pub height: f64,
    /// Per row: the baseline of its label, and its segments (outcome index, rectangle).
    pub rows: Vec<(f64, Vec<(usize, Rect)>)>,
}

/// Stacked bars of `counts` (per group, runs by outcome). Labels sit above the bars so that
/// long target names need no margin, which keeps the bars wide on a phone.
pub fn stacked(counts: &[[u32; SLOTS]]) -> Stacked {
    let most = counts
        .iter()
        .map(|c| c.iter().map(|&n| u64::from(n)).sum::<u64>())
        .max()
        .unwrap_or(0);
    let axis = Axis::to_fit(most);
    let scale = (RIGHT - 10.0) / axis.max as f64;
    let rows = counts
        .iter()
        .enumerate()
        .map(|(i, counts)| {
            let top = TOP + ROW * i as f64;
            let mut x = 10.0;
            let segments = counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(outcome, n)| {
                    let w = f64::from(*n) * scale;
                    let rect = Rect {
                        x,
                        y: top + 16.0,
                        w,
                        h: 18.0,
                    };
                    x += w;
                    (outcome, rect)
                })
                .collect();
            (top + 11.0, segments)
        })
        .collect();
    Stacked {
        axis,
        height: TOP + ROW * counts.len() as f64 + 30.0,
        rows,
    }
}

/// A coordinate as SVG and PDF take it: one decimal at most.
pub fn coord(v: f64) -> String {
    let tenths = (v * 10.0).round() as i64;
    if tenths % 10 == 0 {
        (tenths / 10).to_string()
    } else {
        format!(
            "{}{}.{}",
            if tenths < 0 { "-" } else { "" },
            (tenths / 10).abs(),
            (tenths % 10).abs()
        )
    }
}

/// The style class of each outcome (in the order of [`OUTCOMES`], then any other).
pub const OUTCOME_CLASSES: [&str; SLOTS] = ["o0", "o1", "o2", "o3", "o4", "o5", "o6"];

/// One column of a column chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// What it stands for: a day, or an experiment id.
    pub key: String,
    /// Its style class.
    pub class: &'static str,
    /// Where it is.
    pub rect: Rect,
    /// The value drawn, if any (a run that did not recover has none, and a mark instead).
    pub value: Option<u64>,
}

/// A column chart ready to draw, on the page or in the PDF.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    /// A page-unique id for its parts.
    pub id: &'static str,
    /// Its name (the SVG's accessible name).
    pub label: &'static str,
    /// What it shows, in words: its text alternative.
    pub caption: String,
    /// The value axis' title, and the run of columns'.
    pub titles: (&'static str, &'static str),
    /// The value axis' ticks: height and label.
    pub ticks: Vec<(f64, String)>,
    /// The columns.
    pub bars: Vec<Bar>,
    /// The labels under the first and the last column.
    pub ends: (String, String),
    /// The height of a dashed reference line (the p95), if any.
    pub reference: Option<f64>,
}

/// Success rate per UTC day (`days` from [`groups`] by day): a column per day with runs.
pub fn success_per_day(days: &[Group]) -> Columns {
    let axis = Axis {
        max: 10_000,
        step: 2_500,
    };
    let rates: Vec<Option<u64>> = days
        .iter()
        .map(|d| d.success_rate_bp().map(u64::from))
        .collect();
    let bars = days
        .iter()
        .zip(columns(&rates, &axis))
        .filter_map(|(day, rect)| {
            Some(Bar {
                key: day.key.clone(),
                class: "bar",
                rect: rect?,
                value: day.success_rate_bp().map(u64::from),
            })
        })
        .collect::<Vec<_>>();
    let known: Vec<u32> = days.iter().filter_map(Group::success_rate_bp).collect();
    let caption = match (known.iter().min(), known.iter().max()) {
        (Some(low), Some(high)) => format!(
            "Success rate (recovered ÷ real runs) on each UTC day with runs ({} in all): from {} to {}.{}",
            days.len(),
            percent(Some(*low)),
            percent(Some(*high)),
            if known.len() < days.len() {
                " Days with only dry runs have no column."
            } else {
                ""
            }
        ),
        _ => "Only dry runs in this range: no success rate to draw.".to_owned(),
    };
    Columns {
        id: "day-chart",
        label: "Success rate per day",
        caption,
        titles: ("Success rate (%)", "Day (UTC)"),
        ticks: axis
            .ticks()
            .into_iter()
            .map(|t| (axis.y(t), format!("{} %", t / 100)))
            .collect(),
        bars,
        ends: ends(days.iter().map(|d| d.key.as_str())),
        reference: None,
    }
}

/// The labels of the first and last of `keys` (one label when they are the same).
fn ends<'a>(mut keys: impl DoubleEndedIterator<Item = &'a str>) -> (String, String) {
    let first = keys.next().unwrap_or_default().to_owned();
    let last = keys.next_back().unwrap_or_default().to_owned();
    (first, last)
}

/// Recovery time of the latest [`CHART_RUNS`] real runs of `runs` (oldest first), with the
/// range's p95 as a reference line; a run without a recovery time (it did not recover) gets a
/// short mark on the axis in its outcome's colour.
pub fn recovery_per_run(runs: &[Run], p95: Option<u64>) -> Columns {
    let real: Vec<&Run> = runs.iter().filter(|r| !r.is_dry()).collect();
    let shown = &real[real.len().saturating_sub(CHART_RUNS)..];
    let axis = Axis::to_fit(
        shown
            .iter()
            .filter_map(|r| r.recovery_ms)
            .max()
            .unwrap_or(0),
    );
    let values: Vec<Option<u64>> = shown
        .iter()
        .map(|r| Some(r.recovery_ms.unwrap_or(0)))
        .collect();
    let bars = shown
        .iter()
        .zip(columns(&values, &axis))
        .filter_map(|(run, rect)| {
            let mut rect = rect?;
            if run.recovery_ms.is_none() {
                rect.y = BOTTOM - 6.0;
                rect.h = 6.0;
            }
            Some(Bar {
                key: run.experiment_id.clone(),
                class: OUTCOME_CLASSES[run.outcome_index()],
                rect,
                value: run.recovery_ms,
            })
        })
        .collect();
    let unrecovered = shown.iter().filter(|r| r.recovery_ms.is_none()).count();
    let caption = format!(
        "Recovery time of each real run, oldest to newest, in seconds ({}{} in all){}.{}",
        if shown.len() < real.len() {
            "the latest "
        } else {
            ""
        },
        shown.len(),
        p95.map(|p| format!("; the dashed line is the range's p95, {}", seconds(p)))
            .unwrap_or_default(),
        if unrecovered > 0 {
            format!(
                " A run without a recovery time (it did not recover; {unrecovered} in all) is a short mark on the axis."
            )
        } else {
            String::new()
        }
    );
    Columns {
        id: "recovery-chart",
        label: "Recovery time per run",
        caption,
        titles: ("Recovery time (s)", "Runs, oldest to newest"),
        ticks: axis
            .ticks()
            .into_iter()
            .map(|t| (axis.y(t), seconds(t)))
            .collect(),
        bars,
        ends: ends(shown.iter().map(|r| r.day())),
        reference: p95.map(|p| axis.y(p)),
    }
}

/// Most groups drawn in a stacked chart.
pub const MAX_GROUPS: usize = 12;

/// A segment of a stacked bar: its style class and rectangle.
pub type Segment = (&'static str, Rect);

/// A stacked bar chart ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Stacks {
    /// Its name (the SVG's accessible name).
    pub label: String,
    /// What it shows, in words.
    pub caption: String,
    /// The box's height.
    pub height: f64,
    /// Per group: its label, the label's baseline, its segments (style class, rectangle).
    pub rows: Vec<(String, f64, Vec<Segment>)>,
    /// The count axis under the bars: its height, and its ticks (position, label).
    pub axis: (f64, Vec<(f64, String)>),
}

/// Runs by outcome for each of `groups` (the first [`MAX_GROUPS`] of them), one stacked bar
/// each; `what` names the groups (`target`).
pub fn outcomes(groups: &[Group], what: &str) -> Stacks {
    let drawn = &groups[..groups.len().min(MAX_GROUPS)];
    let counts: Vec<[u32; SLOTS]> = drawn.iter().map(|g| g.by_outcome).collect();
    let chart = stacked(&counts);
    let scale = (RIGHT - 10.0) / chart.axis.max as f64;
    let rows = drawn
        .iter()
        .zip(chart.rows)
        .map(|(group, (baseline, segments))| {
            let label = format!(
                "{} · runs: {} · success: {}",
                group.key,
                group.runs(),
                percent(group.success_rate_bp())
            );
            let segments = segments
                .into_iter()
                .map(|(outcome, rect)| (OUTCOME_CLASSES[outcome], rect))
                .collect();
            (label, baseline, segments)
        })
        .collect();
    let hidden = groups.len() - drawn.len();
    Stacks {
        label: format!("Outcomes by {what}"),
        caption: format!(
            "Runs of each {what} by outcome; a bar's length is its number of runs{}.",
            if hidden > 0 {
                format!(" ({hidden} more {what}s not drawn)")
            } else {
                String::new()
            }
        ),
        height: chart.height,
        rows,
        axis: (
            chart.height - 20.0,
            chart
                .axis
                .ticks()
                .into_iter()
                .map(|t| (10.0 + t as f64 * scale, t.to_string()))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_have_round_steps_and_hold_the_largest_value() {
        assert_eq!(Axis::to_fit(0), Axis { max: 1, step: 1 });
        assert_eq!(Axis::to_fit(4), Axis { max: 4, step: 1 });
        assert_eq!(Axis::to_fit(7), Axis { max: 8, step: 2 });
        assert_eq!(
            Axis::to_fit(2_345),
            Axis {
                max: 2_500,
                step: 500
            }
        );
        assert_eq!(
            Axis::to_fit(10_000),
            Axis {
                max: 10_000,
                step: 2_000
            }
        );
        assert_eq!(
            Axis::to_fit(10_001),
            Axis {
                max: 15_000,
                step: 5_000
            }
        );
        assert_eq!(
            Axis::to_fit(2_345).ticks(),
            [0, 500, 1_000, 1_500, 2_000, 2_500]
        );
        for max in [1, 3, 9, 11, 99, 101, 12_345, 999_999, u64::MAX / 2] {
            let axis = Axis::to_fit(max);
            assert!(
                axis.max >= max && axis.ticks().len() <= 6,
                "{max}: {axis:?}"
            );
        }
    }

    #[test]
    fn columns_are_as_tall_as_their_values() {
        let axis = Axis { max: 100, step: 20 };
        let bars = columns(&[Some(100), None, Some(50), Some(0)], &axis);
        assert_eq!(bars.len(), 4);
        assert!(bars[1].is_none());
        let (full, half, zero) = (
            bars[0].unwrap_or(EMPTY),
            bars[2].unwrap_or(EMPTY),
            bars[3].unwrap_or(EMPTY),
        );
        assert_eq!(full.y, TOP);
        assert_eq!(full.y + full.h, BOTTOM);
        assert!((half.h - full.h / 2.0).abs() < 1e-9);
        assert!(zero.h > 0.0, "a zero is still seen");
        assert!(half.x > full.x && half.x + half.w <= RIGHT);
        assert!(full.x >= LEFT);
    }

    const EMPTY: Rect = Rect {
        x: 0.0,
        y: 0.0,
        w: 0.0,
        h: 0.0,
    };

    #[test]
    fn stacked_segments_follow_each_other() {
        let chart = stacked(&[[2, 1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1]]);
        assert_eq!(chart.axis, Axis { max: 4, step: 1 });
        assert_eq!(chart.rows.len(), 2);
        let first = &chart.rows[0].1;
        assert_eq!(first.iter().map(|(o, _)| *o).collect::<Vec<_>>(), [0, 1, 4]);
        assert_eq!(first[0].1.x + first[0].1.w, first[1].1.x);
        assert!((first[0].1.w - 2.0 * first[1].1.w).abs() < 1e-9);
        let end = first[2].1.x + first[2].1.w;
        assert!((end - RIGHT).abs() < 1e-9);
        assert!(chart.rows[1].0 > chart.rows[0].0);
        assert!(chart.height > chart.rows[1].1[0].1.y);
    }

    #[test]
    fn charts_of_days_runs_and_outcomes() {
        use crate::report::{groups, tests::run};
        let mut runs = vec![
            run("a", "RECOVERED", "2026-11-01", Some(2_000)),
            run("b", "DRY_RUN", "2026-11-02", None),
            run("c", "NOT_RECOVERED", "2026-11-03", None),
            run("d", "RECOVERED", "2026-11-03", Some(4_000)),
        ];
        runs[3].target = "api".to_owned();
        let days = success_per_day(&groups(&runs, Run::day));
        // Three days, but the one with only a dry run has no rate and no column.
        assert_eq!(
            days.bars.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(),
            ["2026-11-01", "2026-11-03"]
        );
        assert_eq!(days.bars[1].value, Some(5_000));
        assert_eq!(days.ticks.last().map(|t| t.1.as_str()), Some("100 %"));
        assert_eq!(
            days.ends,
            ("2026-11-01".to_owned(), "2026-11-03".to_owned())
        );
        assert!(days.caption.contains("(3 in all)") && days.caption.contains("only dry runs"));
        let recovery = recovery_per_run(&runs, Some(4_000));
        // Dry runs are left out; the run that did not recover is a short mark.
        assert_eq!(
            recovery
                .bars
                .iter()
                .map(|b| b.key.as_str())
                .collect::<Vec<_>>(),
            ["a", "c", "d"]
        );
        assert_eq!(recovery.bars[1].class, "o1");
        assert_eq!(recovery.bars[1].rect.h, 6.0);
        assert_eq!(recovery.bars[2].rect.y, TOP);
        assert_eq!(recovery.reference, Some(TOP));
        assert!((recovery.bars[0].rect.h - recovery.bars[2].rect.h / 2.0).abs() < 1e-9);
        assert!(recovery.caption.contains("(it did not recover; 1 in all)"));
        let many: Vec<Run> = (0..250)
            .map(|i| run(&i.to_string(), "RECOVERED", "2026-11-01", Some(i)))
            .collect();
        let latest = recovery_per_run(&many, None);
        assert_eq!(latest.bars.len(), CHART_RUNS);
        assert_eq!(latest.bars[0].key, "50");
        assert!(latest.caption.contains("(the latest 200 in all)"));
        let by_target = outcomes(&groups(&runs, |r| &r.target), "target");
        assert_eq!(by_target.label, "Outcomes by target");
        assert_eq!(by_target.rows.len(), 2);
        assert!(
            by_target.rows[1]
                .0
                .starts_with("web · runs: 3 · success: 50.0 %")
        );
        assert_eq!(
            by_target.rows[1].2.iter().map(|s| s.0).collect::<Vec<_>>(),
            ["o0", "o1", "o4"]
        );
    }

    #[test]
    fn the_svg_numbers_are_the_numbers() {
        assert_eq!(
            svg::VIEW_BOX,
            format!("0 0 {} {}", coord(WIDTH), coord(HEIGHT))
        );
        assert_eq!(svg::WIDTH, coord(WIDTH));
        assert_eq!(svg::LEFT, coord(LEFT));
        assert_eq!(svg::RIGHT, coord(RIGHT));
        assert_eq!(svg::BOTTOM, coord(BOTTOM));
        assert_eq!(svg::LABELS_END, coord(LEFT - 6.0));
        assert_eq!(svg::UNDER, coord(BOTTOM + 18.0));
        assert_eq!(svg::MIDDLE, coord((LEFT + RIGHT) / 2.0));
        assert_eq!(svg::TITLE_Y, coord(HEIGHT - 4.0));
    }

    #[test]
    fn coordinates_are_short() {
        assert_eq!(coord(12.0), "12");
        assert_eq!(coord(12.04), "12");
        assert_eq!(coord(12.25), "12.3");
        assert_eq!(coord(-0.5), "-0.5");
        assert_eq!(coord(-3.0), "-3");
    }
}
