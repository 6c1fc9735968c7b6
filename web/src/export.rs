//! The results page's exports of the runs it shows: CSV, JSON and a PDF report.
//!
//! - CSV (RFC 4180): a header row of the API's field names, then one row per run with every
//!   field; lines end in CRLF; a field with a comma, a quote or a line break is quoted, its
//!   quotes doubled. The instances hit are joined with `;`. A text field that starts with `=`,
//!   `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so that a spreadsheet does
//!   not run an experiment's name as a formula (names are typed by operators, exports are
//!   opened by others); the JSON export keeps every value exact.
//! - JSON: the runs as an array of the API's `RunResult` objects.
//! - PDF: the range, the headline figures, a chart of recovery time per run and a table of
//!   the runs continued over as many pages as it needs (A4 landscape).

use serde_json::Value;

use crate::chart;
use crate::pdf::{Document, Font, Page, mono_width};
use crate::report::{FIELDS, Figures, Range, Run, millis, percent, seconds};

/// One CSV field, quoted when it must be; `text` says it is text, which a spreadsheet could
/// take for a formula.
fn csv_field(out: &mut String, value: &str, text: bool) {
    let risky = text && value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = value.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if risky {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// The runs (`RunResult` objects, as the API gives them and [`Run::to_json`] writes them) as
/// CSV, the columns in the order of [`FIELDS`].
pub fn csv(rows: &[Value]) -> String {
    let mut out = FIELDS.split_whitespace().collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    for row in rows {
        for (i, field) in FIELDS.split_whitespace().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match &row[field] {
                Value::String(text) => csv_field(&mut out, text, true),
                Value::Array(items) => {
                    let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    csv_field(&mut out, &items.join(";"), true);
                }
                Value::Null => {}
                other => out.push_str(&other.to_string()),
            }
        }
        out.push_str("\r\n");
    }
    out
}

/// The runs as a JSON array.
pub fn json(rows: &[Value]) -> String {
    Value::Array(rows.to_vec()).to_string()
}

/// A4 landscape, in points.
const PAGE: (f64, f64) = (842.0, 595.0);
const MARGIN: f64 = 36.0;
/// The table's type size and line height.
const SIZE: f64 = 7.5;
const LINE: f64 = 10.0;
/// The table's columns: heading, width in characters, right-aligned.
const COLUMNS: [(&str, usize, bool); 8] = [
    ("Ended (UTC)", 19, false),
    ("Experiment", 40, false),
    ("Target", 16, false),
    ("Failure", 9, false),
    ("Outcome", 13, false),
    ("Recovery", 10, true),
    ("Avail.", 7, true),
    ("Id", 36, false),
];
const GAP: usize = 2;

const INK: [f64; 3] = [0.11, 0.14, 0.19];
const MUTED: [f64; 3] = [0.36, 0.39, 0.45];
const RULE: [f64; 3] = [0.8, 0.82, 0.85];
const GREEN: [f64; 3] = [0.12, 0.48, 0.24];
const RED: [f64; 3] = [0.7, 0.15, 0.12];
/// The amber of a stopped run, as the dashboard's table and chart show it (`--warn`).
const AMBER: [f64; 3] = [0.54, 0.35, 0.0];

/// The colour of a run's row: ink for a run that held (or only looked), amber for one stopped
/// on purpose or by a guardrail, grey for one the platform interrupted, red for the rest. The
/// same outcome has the same colour on the page, in the chart and here.
fn row_colour(run: &Run) -> [f64; 3] {
    match run.outcome.as_str() {
        "RECOVERED" => INK,
        _ if run.is_dry() => INK,
        "STOPPED" => AMBER,
        "INTERRUPTED" => MUTED,
        _ => RED,
    }
}

/// `text` cut into lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(width.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// A run's cells, each cut into lines that fit its column.
fn cells(run: &Run) -> Vec<Vec<String>> {
    let values = [
        run.ended_at
            .get(..19)
            .unwrap_or(&run.ended_at)
            .replace('T', " "),
        run.name.clone(),
        run.target.clone(),
        run.failure_type.clone(),
        run.outcome.clone(),
        run.recovery_ms
            .map(|ms| millis(Some(ms)))
            .unwrap_or_default(),
        percent(run.availability_bp.and_then(|a| u32::try_from(a).ok())).replace('–', ""),
        run.experiment_id.clone(),
    ];
    values
        .iter()
        .zip(COLUMNS)
        .map(|(value, (_, width, _))| wrap(value, width))
        .collect()
}

/// Writes a row of the table (one line per line of its tallest cell) with its top at `y`.
fn row(page: &mut Page, y: f64, cells: &[Vec<String>], font: Font) {
    let mut x = MARGIN;
    for (lines, (_, width, right)) in cells.iter().zip(COLUMNS) {
        for (i, line) in lines.iter().enumerate() {
            let shift = if right {
                mono_width(width - line.chars().count().min(width), SIZE)
            } else {
                0.0
            };
            page.text(
                font,
                SIZE,
                x + shift,
                y - LINE * (i as f64 + 1.0) + 2.5,
                line,
            );
        }
        x += mono_width(width + GAP, SIZE);
    }
}

/// The chart of recovery time per run (the page's, [`chart::recovery_per_run`]), with its
/// box's top left corner at (`left`, `top`).
fn recovery_chart(page: &mut Page, runs: &[Run], p95: Option<u64>, left: f64, top: f64) {
    let columns = chart::recovery_per_run(runs, p95);
    // Chart coordinates grow downwards from the box's top; the page's grow upwards.
    let y = |v: f64| top - v;
    page.fill(INK);
    page.text(
        Font::Bold,
        10.0,
        left,
        top,
        "Recovery time per run (seconds)",
    );
    for (tick, label) in &columns.ticks {
        page.stroke(RULE);
        page.line(
            (left + chart::LEFT, y(*tick)),
            (left + chart::RIGHT, y(*tick)),
            0.4,
        );
        page.fill(MUTED);
        let x = left + chart::LEFT - 4.0 - mono_width(label.chars().count(), 7.0);
        page.text(Font::Mono, 7.0, x, y(*tick) - 2.5, label);
    }
    for bar in &columns.bars {
        page.fill(if bar.value.is_some() { GREEN } else { RED });
        let r = bar.rect;
        page.rect(left + r.x, y(r.y + r.h), r.w, r.h);
    }
    if let Some(p95) = columns.reference {
        page.stroke(RED);
        page.dashed(true);
        page.line(
            (left + chart::LEFT, y(p95)),
            (left + chart::RIGHT, y(p95)),
            0.6,
        );
        page.dashed(false);
    }
    page.stroke(INK);
    page.line(
        (left + chart::LEFT, y(chart::BOTTOM)),
        (left + chart::RIGHT, y(chart::BOTTOM)),
        0.8,
    );
    page.fill(MUTED);
    // A sentence a line: the caption is longer than the page is wide.
    for (i, sentence) in columns.caption.split_inclusive(". ").enumerate() {
        let at = y(chart::BOTTOM) - 14.0 - 10.0 * i as f64;
        page.text(
            Font::Regular,
            8.0,
            left + chart::LEFT,
            at,
            sentence.trim_end(),
        );
    }
}

/// The PDF report of `runs`, which ended in `range`; `generated` is the time it is made
/// (RFC 3339) and `capped` says that the runs are not all of the range's.
pub fn pdf(
    runs: &[Run],
    figures: &Figures,
    range: &Range,
    generated: &str,
    capped: bool,
) -> Vec<u8> {
    let (width, height) = PAGE;
    let mut pages = Vec::new();
    let mut page = Page::default();
    let mut y = height - MARGIN;
    page.fill(INK);
    page.text(Font::Bold, 18.0, MARGIN, y - 16.0, "Results and analytics");
    y -= 32.0;
    page.fill(MUTED);
    page.text(
        Font::Regular,
        9.0,
        MARGIN,
        y,
        &format!(
            "Runs that ended {} (UTC days){}. Generated {generated}.",
            range.describe(),
            if capped {
                ", the first of them only"
            } else {
                ""
            }
        ),
    );
    y -= 30.0;
    let headline = [
        ("Runs", figures.runs.to_string()),
        ("Success rate", percent(figures.success_rate_bp)),
        (
            "MTTR",
            figures.mttr_ms.map(seconds).unwrap_or_else(|| "–".into()),
        ),
        (
            "p50 recovery",
            figures.p50_ms.map(seconds).unwrap_or_else(|| "–".into()),
        ),
        (
            "p95 recovery",
            figures.p95_ms.map(seconds).unwrap_or_else(|| "–".into()),
        ),
        ("Availability", percent(figures.availability_bp)),
    ];
    for (i, (label, value)) in headline.iter().enumerate() {
        let x = MARGIN + 128.0 * i as f64;
        page.fill(MUTED);
        page.text(Font::Regular, 9.0, x, y + 12.0, label);
        page.fill(INK);
        page.text(Font::Bold, 16.0, x, y - 6.0, value);
    }
    y -= 24.0;
    page.fill(MUTED);
    let notes = [
        format!(
            "Success rate: recovered ÷ real runs = {} ÷ {} (left out: {} dry, {} interrupted).",
            figures.by_outcome[0],
            figures.real_runs(),
            figures.dry_runs(),
            figures.interrupted()
        ),
        format!(
            "MTTR (mean) and percentiles (nearest rank): over recovered runs, n = {}; MTTR {}.",
            figures.recoveries,
            millis(figures.mttr_ms)
        ),
        format!(
            "Availability: mean healthy share during runs with health samples, n = {}.",
            figures.sampled
        ),
    ];
    for note in notes {
        page.text(Font::Regular, 8.0, MARGIN, y, &note);
        y -= 10.0;
    }
    y -= 20.0;
    recovery_chart(&mut page, runs, figures.p95_ms, MARGIN, y);
    y -= chart::HEIGHT + 24.0;
    let header: Vec<Vec<String>> = COLUMNS
        .iter()
        .map(|(h, _, _)| vec![(*h).to_owned()])
        .collect();
    let table_head = |page: &mut Page, y: f64| -> f64 {
        page.fill(INK);
        row(page, y, &header, Font::Bold);
        page.stroke(INK);
        page.line(
            (MARGIN, y - LINE - 1.0),
            (width - MARGIN, y - LINE - 1.0),
            0.6,
        );
        y - LINE - 3.0
    };
    y = table_head(&mut page, y);
    if runs.is_empty() {
        page.fill(MUTED);
        page.text(
            Font::Regular,
            9.0,
            MARGIN,
            y - 12.0,
            "No run ended in this range.",
        );
    }
    for run in runs {
        let cells = cells(run);
        let lines = cells.iter().map(Vec::len).max().unwrap_or(1);
        let needed = LINE * lines as f64 + 2.0;
        if y - needed < MARGIN + 16.0 {
            pages.push(std::mem::take(&mut page));
            y = table_head(&mut page, height - MARGIN);
        }
        page.fill(row_colour(run));
        row(&mut page, y, &cells, Font::Mono);
        y -= needed;
        page.stroke(RULE);
        page.line((MARGIN, y + 1.0), (width - MARGIN, y + 1.0), 0.3);
    }
    pages.push(page);
    let total = pages.len();
    for (i, page) in pages.iter_mut().enumerate() {
        page.fill(MUTED);
        page.text(
            Font::Regular,
            8.0,
            MARGIN,
            MARGIN - 12.0,
            &format!(
                "Chaos platform · results, {} · page {} of {total}",
                range.describe(),
                i + 1
            ),
        );
    }
    Document {
        size: PAGE,
        title: format!("Results and analytics, {}", range.describe()),
        pages,
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::tests::check_structure;
    use crate::report::figures;
    use crate::report::tests::run;

    #[test]
    fn csv_has_a_header_and_quotes_what_it_must() {
        let mut odd = run("e2", "NOT_RECOVERED", "2026-11-02", None);
        odd.name = "a, \"b\"\nc".to_owned();
        odd.target = "=cmd|'/c calc'!A1".to_owned();
        odd.targets_hit = vec!["i-1".into(), "i-2".into()];
        odd.availability_bp = None;
        let text = csv(&[
            run("e1", "RECOVERED", "2026-11-01", Some(2_345)).to_json(),
            odd.to_json(),
        ]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "experimentId,name,target,failureType,outcome,recoveryMs,startedAt,endedAt,durationMs,candidates,targetsHit,wouldHit,samples,minHealthy,maxErrorRateBp,maxLatencyP95Ms,availabilityBp"
        );
        assert_eq!(
            lines[1],
            "e1,run e1,web,TERMINATE,RECOVERED,2345,2026-11-01T10:00:00Z,2026-11-01T10:00:05Z,5000,3,i-1,,4,2,120,35,9000"
        );
        // The quoted field keeps its bare line break: records end in CRLF only.
        assert_eq!(
            lines[2],
            "e2,\"a, \"\"b\"\"\nc\",'=cmd|'/c calc'!A1,TERMINATE,NOT_RECOVERED,,2026-11-02T10:00:00Z,2026-11-02T10:00:05Z,5000,3,i-1;i-2,,4,2,120,35,"
        );
        assert_eq!(lines[3], "");
        assert_eq!(lines.len(), 4);
        assert_eq!(
            csv(&[]),
            format!(
                "{}\r\n",
                FIELDS.split_whitespace().collect::<Vec<_>>().join(",")
            )
        );
    }

    #[test]
    fn json_is_the_runs_as_the_api_gave_them() {
        let runs = [
            run("e1", "RECOVERED", "2026-11-01", Some(2_345)),
            run("e2", "DRY_RUN", "2026-11-02", None),
        ];
        let rows: Vec<Value> = runs.iter().map(Run::to_json).collect();
        let parsed: Value = serde_json::from_str(&json(&rows)).unwrap_or_default();
        let back: Vec<Run> = parsed
            .as_array()
            .map(|a| a.iter().filter_map(Run::from_json).collect())
            .unwrap_or_default();
        assert_eq!(back, runs);
        assert_eq!(json(&[]), "[]");
    }

    #[test]
    fn the_pdf_report_pages_its_table_and_draws_a_chart() {
        let mut runs: Vec<Run> = (0..150)
            .map(|i| {
                run(
                    &format!("e{i:03}"),
                    if i % 10 == 3 {
                        "NOT_RECOVERED"
                    } else {
                        "RECOVERED"
                    },
                    "2026-11-02",
                    (i % 10 != 3).then_some(1_000 + i * 37),
                )
            })
            .collect();
        runs[5].name =
            "a name (with parentheses) \\ and a backslash, long enough to be wrapped".to_owned();
        let f = figures(&runs);
        let range = Range {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
        };
        let bytes = pdf(&runs, &f, &range, "2026-11-30T12:00:00Z", false);
        let text = check_structure(&bytes);
        let pages = text.matches("/Type /Page ").count();
        assert!(pages >= 3, "{pages} pages");
        assert!(text.contains(&format!("/Count {pages}")));
        assert!(text.contains(&format!("page {pages} of {pages}")));
        // Every run is in the table, once.
        for r in &runs {
            assert_eq!(
                text.matches(&format!("({}) Tj", r.experiment_id)).count(),
                1,
                "{}",
                r.experiment_id
            );
        }
        assert!(text.contains(r"(a name \(with parentheses\) \\ and a backsl) Tj"));
        assert!(text.contains("(ash, long enough to be wrapped) Tj"));
        assert!(
            text.contains("(Success rate) Tj")
                && text.contains(&format!("({}) Tj", percent(f.success_rate_bp)))
        );
        // The chart: one filled bar per recovered run, drawn with path operators.
        assert!(text.matches(" re f").count() >= 135);
        assert!(text.contains("(Recovery time per run \\(seconds\\)) Tj"));
        assert!(text.contains("2026-11-01 to 2026-11-30"));
    }

    #[test]
    fn an_outcome_has_one_colour_in_the_table_the_chart_and_the_pdf() {
        let style = include_str!("../style.css");
        let rule = |selector: &str| {
            style
                .lines()
                .find(|line| line.starts_with(selector))
                .unwrap_or_default()
                .to_owned()
        };
        // Stopped: amber (the warning colour) everywhere, red nowhere.
        assert!(rule(".status-stopped").contains("var(--warn)"), "{style}");
        assert!(!rule(".status-failed").contains("stopped"));
        let stopped = crate::report::OUTCOMES
            .iter()
            .position(|o| *o == "STOPPED")
            .expect("an outcome");
        let class = chart::OUTCOME_CLASSES[stopped];
        assert!(rule(&format!(".{class} ")).contains("#c98a00"), "{class}");
        assert_eq!(row_colour(&run("s", "STOPPED", "2026-11-02", None)), AMBER);
        assert_eq!(row_colour(&run("f", "FAILED", "2026-11-02", None)), RED);
        assert_eq!(
            row_colour(&run("r", "RECOVERED", "2026-11-02", Some(1_000))),
            INK
        );
    }

    #[test]
    fn an_empty_report_says_so() {
        let bytes = pdf(
            &[],
            &figures(&[]),
            &Range::default(),
            "2026-11-30T12:00:00Z",
            false,
        );
        let text = check_structure(&bytes);
        assert!(text.contains("(No run ended in this range.) Tj"));
        assert!(text.contains("/Count 1"));
        assert!(text.contains("every day"));
    }
}
