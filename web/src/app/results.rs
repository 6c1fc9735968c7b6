//! Results and analytics: the runs that ended in a range of UTC days, their headline figures,
//! three charts, an incident timeline, and exports (CSV, JSON, PDF) of exactly those runs.
//! It reads every page of `results` in the range (up to [`MAX_RUNS`]) and computes its figures
//! from those rows (`web::report`), so that they always match the range; it reloads when a
//! run ends (`platformActivity`). Charts are SVG drawn here, with no script and no inline
//! style (the CSP forbids both): colours come from `style.css` classes.

use dioxus::prelude::*;
use serde_json::json;
use wasm_bindgen::prelude::*;
use web::chart::{self, coord};
use web::export;
use web::report::{self, Figures, Range, Run, millis, percent, seconds};
use web::route::Route;

use super::api::{ApiError, Completes, Live, call, live, use_task};
use super::{Link, LiveBadge, Problem, Status, use_session, when};

const RESULTS: &str = "query($from: String, $to: String, $after: String) { \
    results(endedFrom: $from, endedTo: $to, first: 100, after: $after) { items { \
    experimentId name target failureType outcome recoveryMs startedAt endedAt durationMs \
    candidates targetsHit wouldHit samples minHealthy maxErrorRateBp maxLatencyP95Ms availabilityBp } \
    nextCursor } }";

const ACTIVITY: &str = "subscription { platformActivity { streamId eventType at } }";

/// The events that end a run, and so add a row to the results.
const ENDINGS: [&str; 3] = [
    "ExperimentCompleted",
    "ExperimentFailed",
    "ExperimentStopped",
];

/// Most runs the page reads for one range (fifty pages of a hundred).
const MAX_RUNS: usize = 5_000;

/// The quick ranges: the last so many days, or every day.
const PRESETS: [(Option<i64>, &str); 4] = [
    (Some(7), "Last 7 days"),
    (Some(30), "Last 30 days"),
    (Some(90), "Last 90 days"),
    (None, "All time"),
];

/// Rows of the timeline shown at first, and added by "Show more".
const TIMELINE_STEP: usize = 50;

/// The runs of a range, as read.
#[derive(Debug, Clone, PartialEq)]
struct Loaded {
    range: Range,
    runs: Vec<Run>,
    /// The same runs as the API gave them (what the CSV and JSON exports write).
    rows: Vec<serde_json::Value>,
    /// The range has more runs than [`MAX_RUNS`]: these are its oldest.
    capped: bool,
}

/// One page of results; waits and asks again (three times at most) when the server says the
/// page is asking too fast.
async fn page(
    session: Signal<Option<super::session::Session>>,
    variables: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let mut tries = 0;
    loop {
        match call(session, RESULTS, variables.clone()).await {
            Err(e) if e.code == "RATE_LIMITED" && tries < 3 => {
                tries += 1;
                gloo_timers::future::TimeoutFuture::new(1_000).await;
            }
            answer => return answer,
        }
    }
}

/// Every run that ended in `range` (up to [`MAX_RUNS`]); `read` counts them as they come.
/// When `waiting` names a run that just ended, the read is repeated a few times until it is
/// there: the results read model may be a moment behind the log that announced it.
async fn load(
    session: Signal<Option<super::session::Session>>,
    range: Range,
    waiting: Option<String>,
    mut read: Signal<usize>,
) -> Result<Loaded, ApiError> {
    let (from, to) = range.bounds().map_err(|message| ApiError {
        code: "INVALID_INPUT".to_owned(),
        problems: Vec::new(),
        message,
    })?;
    let mut tries = 0_u32;
    loop {
        let (mut runs, mut rows) = (Vec::new(), Vec::new());
        let mut after: Option<String> = None;
        let mut capped = false;
        read.set(0);
        loop {
            let data = page(session, json!({ "from": from, "to": to, "after": after })).await?;
            let results = &data["results"];
            for item in results["items"].as_array().into_iter().flatten() {
                if let Some(run) = Run::from_json(item) {
                    runs.push(run);
                    rows.push(item.clone());
                }
            }
            read.set(runs.len());
            after = results["nextCursor"].as_str().map(str::to_owned);
            if after.is_none() {
                break;
            }
            if runs.len() >= MAX_RUNS {
                runs.truncate(MAX_RUNS);
                rows.truncate(MAX_RUNS);
                capped = true;
                break;
            }
        }
        let missing = waiting
            .as_ref()
            .is_some_and(|id| !capped && !runs.iter().any(|r| &r.experiment_id == id));
        if !missing || tries >= 8 {
            return Ok(Loaded {
                range,
                runs,
                rows,
                capped,
            });
        }
        tries += 1;
        gloo_timers::future::TimeoutFuture::new(250 * tries).await;
    }
}

/// Today, as a number of UTC days.
fn today() -> i64 {
    report::day_of_epoch_ms(js_sys::Date::now())
}

/// The results page.
#[component]
pub fn Results() -> Element {
    let session = use_session();
    let mut range = use_signal(|| Range::last_days(today(), 30));
    let mut reload = use_signal(|| 0_u64);
    let mut waiting = use_signal(|| None::<String>);
    let read = use_signal(|| 0_usize);
    let live_status = use_signal(|| Live::Connecting);
    let results = use_resource(move || async move {
        reload();
        let range = range();
        let waiting = waiting.peek().clone();
        load(session, range, waiting, read).await
    });
    use_task(move || {
        Box::pin(async move {
            let mut first = true;
            live(
                session,
                ACTIVITY,
                // After a reconnection a run may have ended unseen: read the range again.
                move || {
                    if !std::mem::take(&mut first) {
                        reload += 1;
                    }
                    json!({})
                },
                move |data| {
                    let update = &data["platformActivity"];
                    let event = update["eventType"].as_str().unwrap_or_default();
                    let day = update["at"]
                        .as_str()
                        .and_then(|at| at.get(..10))
                        .unwrap_or_default();
                    if ENDINGS.contains(&event) && range.peek().contains(day) {
                        waiting.set(update["streamId"].as_str().map(str::to_owned));
                        reload += 1;
                    }
                    false
                },
                Completes::Resume,
                live_status,
            )
            .await;
        })
    });
    let current = range();
    let mut preset = move |days: Option<i64>| {
        range.set(days.map_or_else(Range::default, |d| Range::last_days(today(), d)));
    };
    let updating = results.state()() == UseResourceState::Pending;
    let body = match &*results.read() {
        None => rsx! { p { class: "muted", role: "status", "Loading runs… {read} read so far." } },
        Some(Err(e)) => {
            let retry =
                (e.code != "INVALID_INPUT").then_some(EventHandler::new(move |()| reload += 1));
            rsx! { Problem { message: e.message.clone(), retry } }
        }
        Some(Ok(loaded)) => rsx! { Report { loaded: loaded.clone() } },
    };
    rsx! {
        div { class: "page-head",
            h1 { "Results" }
            LiveBadge { status: live_status }
        }
        form {
            class: "filters results-range",
            role: "search",
            "aria-label": "Date range",
            onsubmit: move |e: FormEvent| e.prevent_default(),
            div { class: "field",
                label { r#for: "results-from", "Ended from (UTC day)" }
                input {
                    id: "results-from",
                    r#type: "date",
                    value: "{current.from}",
                    max: "{current.to}",
                    onchange: move |e| range.with_mut(|r| r.from = e.value()),
                }
            }
            div { class: "field",
                label { r#for: "results-to", "Ended to (UTC day, included)" }
                input {
                    id: "results-to",
                    r#type: "date",
                    value: "{current.to}",
                    min: "{current.from}",
                    onchange: move |e| range.with_mut(|r| r.to = e.value()),
                }
            }
            div { class: "presets", role: "group", "aria-label": "Quick ranges",
                for (days, label) in PRESETS {
                    button { key: "{label}", r#type: "button", class: "secondary", onclick: move |_| preset(days), "{label}" }
                }
            }
        }
        if updating && results.read().is_some() {
            p { class: "muted", role: "status", "Updating… (read so far: {read})" }
        }
        {body}
    }
}

/// Everything shown for the runs of a range.
#[component]
fn Report(loaded: Loaded) -> Element {
    let Loaded {
        range,
        runs,
        rows,
        capped,
    } = loaded;
    if runs.is_empty() {
        return rsx! {
            section { class: "card", "aria-label": "Runs",
                p { class: "muted empty", "No run ended in this range." }
            }
        };
    }
    let figures = report::figures(&runs);
    let days = chart::success_per_day(&report::groups(&runs, Run::day));
    let recovery = chart::recovery_per_run(&runs, figures.p95_ms);
    let outcomes = chart::outcomes(&report::groups(&runs, |r| &r.target), "target");
    rsx! {
        if capped {
            p { class: "results-cap", role: "status",
                "This range has more than {MAX_RUNS} runs: the page shows its oldest {MAX_RUNS}, and the figures, charts and exports cover those only. Narrow the range to see the rest."
            }
        }
        {headline(&figures, &range)}
        section { class: "card", "aria-labelledby": "charts-title",
            h2 { id: "charts-title", "Charts" }
            div { class: "charts",
                {column_chart(&days)}
                {column_chart(&recovery)}
                {stack_chart(&outcomes)}
            }
        }
        Timeline { runs: runs.clone() }
        Exports { runs, rows, figures, range, capped }
    }
}

// The parts below without state of their own are plain functions rather than components: a
// component costs the bundle its props' code.

/// The headline figures, each with what it counts.
fn headline(f: &Figures, range: &Range) -> Element {
    let or_dash = |ms: Option<u64>| ms.map_or_else(|| "–".to_owned(), seconds);
    let tiles = [
        (
            "Runs",
            f.runs.to_string(),
            format!(
                "{} real, {} dry, {} interrupted",
                f.real_runs(),
                f.dry_runs(),
                f.interrupted()
            ),
        ),
        (
            "Success rate",
            percent(f.success_rate_bp),
            format!(
                "recovered ÷ real runs = {} ÷ {}; dry and interrupted runs left out",
                f.by_outcome[0],
                f.real_runs()
            ),
        ),
        (
            "MTTR",
            or_dash(f.mttr_ms),
            format!(
                "mean over recovered runs (n = {}): {}",
                f.recoveries,
                millis(f.mttr_ms)
            ),
        ),
        (
            "p50 recovery",
            or_dash(f.p50_ms),
            format!(
                "median, nearest rank (n = {}): {}",
                f.recoveries,
                millis(f.p50_ms)
            ),
        ),
        (
            "p95 recovery",
            or_dash(f.p95_ms),
            format!("nearest rank (n = {}): {}", f.recoveries, millis(f.p95_ms)),
        ),
        (
            "Availability",
            percent(f.availability_bp),
            format!(
                "mean healthy share during runs with health samples (n = {})",
                f.sampled
            ),
        ),
    ];
    rsx! {
        section { class: "card", "aria-labelledby": "figures-title",
            h2 { id: "figures-title", "Headline figures" }
            p { class: "muted", "Runs that ended {range.describe()} (UTC days, both included)." }
            dl { class: "figures",
                for (label, value, note) in tiles {
                    div { class: "figure", key: "{label}",
                        dt { "{label}" }
                        dd { class: "value", "{value}" }
                        dd { class: "note", "{note}" }
                    }
                }
            }
            ul { class: "outcomes", "aria-label": "Runs by outcome",
                for (i, name) in OUTCOME_NAMES.iter().enumerate() {
                    li { key: "{name}",
                        span { class: "swatch {chart::OUTCOME_CLASSES[i]}" }
                        "{name}: {f.by_outcome[i]}"
                    }
                }
            }
        }
    }
}

/// The outcomes in words, in the order of `report::OUTCOMES`.
const OUTCOME_NAMES: [&str; 6] = [
    "Recovered",
    "Not recovered",
    "Failed",
    "Stopped",
    "Dry run",
    "Interrupted",
];

/// A column chart: its value axis, columns, labels, and its caption as text alternative.
fn column_chart(data: &chart::Columns) -> Element {
    let id = data.id;
    let (first, last) = data.ends.clone();
    rsx! {
        figure { class: "chart",
            svg {
                role: "img",
                "aria-label": "{data.label}",
                "aria-describedby": "{id}",
                view_box: chart::svg::VIEW_BOX,
                text { class: "axis-title", x: "4", y: "18", "{data.titles.0}" }
                for (y, label) in data.ticks.iter() {
                    line { class: "grid", x1: chart::svg::LEFT, x2: chart::svg::RIGHT, y1: "{coord(*y)}", y2: "{coord(*y)}" }
                    text { x: chart::svg::LABELS_END, y: "{coord(y + 4.0)}", text_anchor: "end", "{label}" }
                }
                for bar in data.bars.iter() {
                    rect {
                        key: "{bar.key}",
                        class: bar.class,
                        "data-key": "{bar.key}",
                        "data-value": bar.value.map(|v| v.to_string()),
                        x: coord(bar.rect.x),
                        y: coord(bar.rect.y),
                        width: coord(bar.rect.w),
                        height: coord(bar.rect.h),
                    }
                }
                if let Some(y) = data.reference {
                    line { class: "ref", x1: chart::svg::LEFT, x2: chart::svg::RIGHT, y1: "{coord(y)}", y2: "{coord(y)}" }
                }
                line { class: "axis", x1: chart::svg::LEFT, x2: chart::svg::RIGHT, y1: chart::svg::BOTTOM, y2: chart::svg::BOTTOM }
                text { x: chart::svg::LEFT, y: chart::svg::UNDER, "{first}" }
                if last != first {
                    text { x: chart::svg::RIGHT, y: chart::svg::UNDER, text_anchor: "end", "{last}" }
                }
                text { class: "axis-title", x: chart::svg::MIDDLE, y: chart::svg::TITLE_Y, text_anchor: "middle", "{data.titles.1}" }
            }
            figcaption { id: "{id}", "{data.caption}" }
        }
    }
}

/// A stacked bar chart with its legend and caption.
fn stack_chart(data: &chart::Stacks) -> Element {
    let (axis_y, ticks) = data.axis.clone();
    rsx! {
        figure { class: "chart",
            svg {
                role: "img",
                "aria-label": "{data.label}",
                "aria-describedby": "stack-caption",
                view_box: "0 0 {chart::svg::WIDTH} {coord(data.height)}",
                for (label, baseline, segments) in data.rows.iter() {
                    text { x: "10", y: "{coord(*baseline)}", "{label}" }
                    for (class, r) in segments.iter() {
                        rect { class: *class, x: coord(r.x), y: coord(r.y), width: coord(r.w), height: coord(r.h) }
                    }
                }
                line { class: "axis", x1: "10", x2: chart::svg::RIGHT, y1: "{coord(axis_y)}", y2: "{coord(axis_y)}" }
                for (x, label) in ticks {
                    text { x: coord(x), y: "{coord(axis_y + 14.0)}", text_anchor: "middle", "{label}" }
                }
            }
            figcaption { id: "stack-caption", "{data.caption}" }
            ul { class: "outcomes", "aria-label": "Legend",
                for (i, name) in OUTCOME_NAMES.iter().enumerate() {
                    li { key: "{name}", span { class: "swatch {chart::OUTCOME_CLASSES[i]}" } "{name}" }
                }
            }
        }
    }
}

/// The runs, newest first, each linked to its experiment.
#[component]
fn Timeline(runs: Vec<Run>) -> Element {
    let mut shown = use_signal(|| TIMELINE_STEP);
    let total = runs.len();
    let count = shown().min(total);
    rsx! {
        section { class: "card", "aria-labelledby": "timeline-title",
            h2 { id: "timeline-title", "Incident timeline" }
            p { class: "muted", "Newest first; showing {count} of {total}." }
            div { class: "table-wrap",
                table { class: "runs",
                    thead {
                        tr {
                            th { scope: "col", "Ended (UTC)" }
                            th { scope: "col", "Experiment" }
                            th { scope: "col", "Outcome" }
                            th { scope: "col", "Recovery" }
                            th { scope: "col", "Target" }
                            th { scope: "col", "Failure" }
                            th { scope: "col", "Availability" }
                        }
                    }
                    tbody {
                        for run in runs.iter().rev().take(count) {
                            tr { key: "{run.experiment_id}", "data-id": "{run.experiment_id}",
                                td { "data-label": "Ended", time { datetime: "{run.ended_at}", "{when(&run.ended_at)}" } }
                                td { "data-label": "Experiment", Link { to: Route::Experiment(run.experiment_id.clone()), "{run.name}" } }
                                td { "data-label": "Outcome", Status { status: run.outcome.clone() } }
                                td { class: "num recovery", "data-label": "Recovery", "{millis(run.recovery_ms)}" }
                                td { "data-label": "Target", "{run.target}" }
                                td { "data-label": "Failure", "{run.failure_type}" }
                                td { class: "num", "data-label": "Availability", "{percent(run.availability_bp.and_then(|a| u32::try_from(a).ok()))}" }
                            }
                        }
                    }
                }
            }
            if count < total {
                button {
                    r#type: "button",
                    class: "secondary",
                    onclick: move |_| shown += TIMELINE_STEP,
                    "Show {TIMELINE_STEP.min(total - count)} more"
                }
            }
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// A `Blob` of the browser.
    type Blob;
    #[wasm_bindgen(constructor, catch)]
    fn new(parts: &js_sys::Array, options: &js_sys::Object) -> Result<Blob, JsValue>;
    #[wasm_bindgen(js_namespace = URL, js_name = createObjectURL, catch)]
    fn create_object_url(blob: &Blob) -> Result<String, JsValue>;
    #[wasm_bindgen(js_namespace = URL, js_name = revokeObjectURL)]
    fn revoke_object_url(url: &str);
    /// An `<a>` element.
    type Anchor;
    #[wasm_bindgen(js_namespace = document, js_name = createElement)]
    fn create_anchor(tag: &str) -> Anchor;
    #[wasm_bindgen(method, setter)]
    fn set_href(this: &Anchor, href: &str);
    #[wasm_bindgen(method, setter)]
    fn set_download(this: &Anchor, name: &str);
    #[wasm_bindgen(method)]
    fn click(this: &Anchor);
}

/// Has the browser save `bytes` as `name`: a Blob behind an object URL, followed by a
/// `download` link that is never in the page. Nothing leaves the browser, and the CSP needs no
/// change (a download is not a fetch). The URL is revoked a minute later, when the save has
/// long started.
fn download(name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"type".into(), &mime.into()).map_err(|_| "no Blob type")?;
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let blob = Blob::new(&parts, &options).map_err(|_| "the browser refused to make the file")?;
    let url = create_object_url(&blob).map_err(|_| "the browser refused a link to the file")?;
    let link = create_anchor("a");
    link.set_href(&url);
    link.set_download(name);
    link.click();
    gloo_timers::callback::Timeout::new(60_000, move || revoke_object_url(&url)).forget();
    Ok(())
}

/// The export buttons.
#[component]
fn Exports(
    runs: Vec<Run>,
    rows: Vec<serde_json::Value>,
    figures: Figures,
    range: Range,
    capped: bool,
) -> Element {
    let mut error = use_signal(|| None::<String>);
    let count = runs.len();
    // One handler for the three buttons: `kind` is the file's extension.
    let save = use_callback(move |kind: &'static str| {
        let (mime, bytes) = match kind {
            "csv" => ("text/csv;charset=utf-8", export::csv(&rows).into_bytes()),
            "json" => ("application/json", export::json(&rows).into_bytes()),
            _ => {
                let now = report::rfc3339_of_epoch_ms(js_sys::Date::now());
                (
                    "application/pdf",
                    export::pdf(&runs, &figures, &range, &now, capped),
                )
            }
        };
        let name = format!(
            "chaos-results-{}-to-{}.{kind}",
            if range.from.is_empty() {
                "start"
            } else {
                &range.from
            },
            if range.to.is_empty() {
                "now"
            } else {
                &range.to
            }
        );
        error.set(download(&name, mime, &bytes).err());
    });
    rsx! {
        section { class: "card", "aria-labelledby": "export-title",
            h2 { id: "export-title", "Export" }
            p { class: "muted",
                "The runs above ({count} in all), every field of each. CSV: a header row, quoted as RFC 4180 says, instances hit joined with “;”, and a text cell that starts with =, +, - or @ gets a leading ' so that spreadsheets do not run it. JSON: the runs exactly as the API gives them. PDF: a report with the figures, a chart and the table."
            }
            div { class: "actions",
                for (kind, label) in [("csv", "Export CSV"), ("json", "Export JSON"), ("pdf", "Export PDF")] {
                    button { key: "{kind}", r#type: "button", onclick: move |_| save(kind), "{label}" }
                }
            }
            if let Some(message) = error() {
                p { class: "problem", role: "alert", "Export failed: {message}" }
            }
        }
    }
}
