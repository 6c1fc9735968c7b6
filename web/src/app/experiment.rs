//! One experiment: what it is, how it ended, and its timeline, which grows live from the
//! `experimentUpdates` subscription (resumed after the last event shown, so a dropped socket
//! loses nothing). Each update carries the experiment as the `experiment` query shows it after
//! that event, so the page has one view of it: what it read, then what each update says.

use dioxus::prelude::*;
use serde_json::{Value, json};
use web::backoff;
use web::route::Route;

use super::api::{Completes, Live, call, live, use_task};
use super::{LiveBadge, Problem, Status, go_with_query, use_route, use_session, when};

/// The experiment as the page shows it: in the query and in every update alike.
macro_rules! shown {
    () => {
        "experiment { id name target failureType dryRun status phase outcome recoveryMs createdAt \
         createdBy startedAt endedAt version } failure stopReason"
    };
}

const DETAIL: &str = concat!(
    "query($id: ID!) { experiment(id: $id) { ",
    shown!(),
    " timeline { sequence eventType action actor at } } }"
);

const UPDATES: &str = concat!(
    "subscription($id: ID!, $after: Int) { experimentUpdates(id: $id, afterSequence: $after) { \
     sequence ended ",
    shown!(),
    " entry { sequence eventType action actor at } } }"
);

/// How many times an experiment the read models do not have yet is asked for again, every
/// 250 ms, before the page says there is none.
const MISSING_TRIES: u32 = 20;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    sequence: i64,
    event_type: String,
    what: String,
    actor: String,
    at: String,
}

impl Entry {
    /// An audit entry of the API (`sequence eventType action actor at`).
    fn of(entry: &Value) -> Entry {
        let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
        Entry {
            sequence: entry["sequence"].as_i64().unwrap_or(0),
            event_type: text("eventType"),
            what: text("action"),
            actor: text("actor"),
            at: text("at"),
        }
    }
}

/// What the page knows of the experiment.
#[derive(Debug, Clone, PartialEq)]
enum Loaded {
    Loading,
    Missing,
    Failed(String),
    /// The experiment, its failure and stop reason, as of `experiment.version`.
    Found(Value),
}

/// The version of the experiment a view (`Loaded::Found`'s, or an update) shows.
fn version(view: &Value) -> i64 {
    view["experiment"]["version"].as_i64().unwrap_or(0)
}

/// The experiment as the read models have it (asked again while they do not have it yet: the
/// page opens right after the run form creates one).
async fn read_detail(
    session: Signal<Option<super::session::Session>>,
    id: &str,
    mut loaded: Signal<Loaded>,
) -> Option<Value> {
    let (mut tries, mut missing) = (0, 0);
    loop {
        match call(session, DETAIL, json!({ "id": id })).await {
            Ok(data) if data["experiment"].is_null() && missing < MISSING_TRIES => {
                gloo_timers::future::TimeoutFuture::new(250).await;
                missing += 1;
            }
            Ok(data) if data["experiment"].is_null() => {
                loaded.set(Loaded::Missing);
                return None;
            }
            Ok(data) => return Some(data["experiment"].clone()),
            Err(e) if e.code == "NETWORK" => {
                loaded.set(Loaded::Failed(e.message));
                let delay = backoff::delay_ms(tries, js_sys::Math::random());
                gloo_timers::future::TimeoutFuture::new(delay).await;
                tries += 1;
            }
            Err(e) => {
                loaded.set(Loaded::Failed(e.message));
                return None;
            }
        }
    }
}

/// The experiment page.
#[component]
pub fn Experiment(id: String) -> Element {
    let session = use_session();
    let mut loaded = use_signal(|| Loaded::Loading);
    let mut timeline = use_signal(Vec::<Entry>::new);
    let live_status = use_signal(|| Live::Connecting);
    let id_for_task = id.clone();
    let mut follow = use_task(move || {
        let id = id_for_task.clone();
        Box::pin(async move {
            let Some(detail) = read_detail(session, &id, loaded).await else {
                return;
            };
            let entries = detail["timeline"].as_array().map(Vec::as_slice);
            timeline.set(entries.unwrap_or_default().iter().map(Entry::of).collect());
            loaded.set(Loaded::Found(detail));
            let subscribed = id.clone();
            live(
                session,
                UPDATES,
                // After what both the timeline and the experiment shown have: the read models
                // keep them apart, and either may trail the other.
                move || {
                    let listed = timeline.peek().last().map_or(0, |e| e.sequence);
                    let shown = match &*loaded.peek() {
                        Loaded::Found(view) => version(view),
                        _ => 0,
                    };
                    json!({ "id": subscribed, "after": listed.min(shown) })
                },
                move |data| {
                    let update = &data["experimentUpdates"];
                    let entry = Entry::of(&update["entry"]);
                    if entry.sequence > timeline.peek().last().map_or(0, |e| e.sequence) {
                        timeline.push(entry);
                    }
                    let newer = matches!(&*loaded.peek(), Loaded::Found(view) if version(update) > version(view));
                    if newer {
                        loaded.set(Loaded::Found(update.clone()));
                    }
                    update["ended"].as_bool().unwrap_or(false)
                },
                Completes::Ended,
                live_status,
            )
            .await;
        })
    });
    match loaded() {
        Loaded::Loading => rsx! { p { class: "muted", role: "status", "Loading the experiment…" } },
        Loaded::Missing => {
            rsx! { Problem { message: format!("There is no experiment {id}."), retry: None } }
        }
        Loaded::Failed(message) => rsx! {
            Problem {
                message,
                retry: move |()| {
                    loaded.set(Loaded::Loading);
                    follow.restart();
                },
            }
        },
        Loaded::Found(view) => rsx! {
            Summary { view, live_status }
            Timeline { entries: timeline }
        },
    }
}

/// The experiment's facts, and what may be done with it.
#[component]
fn Summary(view: Value, live_status: Signal<Live>) -> Element {
    let session = use_session();
    let experiment = &view["experiment"];
    let text = |field: &str| experiment[field].as_str().unwrap_or_default().to_owned();
    let recovery = experiment["recoveryMs"].as_i64().map(web::units::seconds);
    let can_run = session.read().as_ref().is_some_and(|s| s.can_run());
    let status = text("status");
    rsx! {
        div { class: "page-head",
            h1 { "{text(\"name\")}" }
            LiveBadge { status: live_status }
        }
        section { class: "card", "aria-labelledby": "summary-title",
            h2 { id: "summary-title", class: "visually-hidden", "Summary" }
            dl { class: "facts",
                dt { "Status" }
                dd {
                    Status { status: status.clone() }
                    if let Some(phase) = experiment["phase"].as_str() {
                        span { class: "muted", " {phase}" }
                    }
                }
                dt { "Target" }
                dd { "{text(\"target\")}" }
                dt { "Failure" }
                dd {
                    "{text(\"failureType\")}"
                    if experiment["dryRun"].as_bool() == Some(true) { " (dry run)" }
                }
                if let Some(outcome) = experiment["outcome"].as_str() {
                    dt { "Outcome" }
                    dd { "{outcome}" }
                }
                if let Some(recovery) = recovery {
                    dt { "Recovery time" }
                    dd { "{recovery}" }
                }
                if let Some(failure) = view["failure"].as_str() {
                    dt { "Why it failed" }
                    dd { "{failure}" }
                }
                if let Some(reason) = view["stopReason"].as_str() {
                    dt { "Stop reason" }
                    dd { "{reason}" }
                }
                dt { "Created" }
                dd { "{when(&text(\"createdAt\"))} by {text(\"createdBy\")}" }
                dt { "Id" }
                dd { code { "{text(\"id\")}" } }
            }
            if can_run {
                Controls { id: text("id"), status }
            }
        }
    }
}

/// What happened, in the log's order, growing live.
#[component]
fn Timeline(entries: Signal<Vec<Entry>>) -> Element {
    rsx! {
        section { class: "card", "aria-labelledby": "timeline-title",
            h2 { id: "timeline-title", "Timeline" }
            if entries.read().is_empty() {
                p { class: "muted empty", "Nothing has happened yet." }
            }
            ol { class: "timeline", "aria-live": "polite",
                for entry in entries.read().iter() {
                    li { key: "{entry.sequence}", "data-event": "{entry.event_type}",
                        span { class: "seq", "#{entry.sequence}" }
                        span { class: "event-type", "{entry.event_type}" }
                        span { class: "what", "{entry.what}" }
                        span { class: "muted", "{when(&entry.at)} · {entry.actor}" }
                    }
                }
            }
        }
    }
}

/// Start (a draft), stop (a running experiment), cancel (a scheduled one) and run again, for
/// those who may.
#[component]
fn Controls(id: String, status: String) -> Element {
    let session = use_session();
    let route = use_route();
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut stopping = use_signal(|| false);
    let mut reason = use_signal(String::new);
    let act = move |query: &'static str, variables: serde_json::Value| async move {
        busy.set(true);
        match call(session, query, variables).await {
            Ok(_) => error.set(None),
            Err(e) => error.set(Some(e.message)),
        }
        busy.set(false);
    };
    let start_id = id.clone();
    let stop_id = id.clone();
    let cancel_id = id.clone();
    let again = format!("from={id}");
    // A run is offered again once it ran; a draft or a schedule that never ran is a copy.
    let ran = !matches!(status.as_str(), "DRAFT" | "SCHEDULED" | "CANCELLED");
    let stop = move |event: FormEvent| {
        event.prevent_default();
        let id = stop_id.clone();
        async move {
            let reason = reason.peek().trim().to_owned();
            act(
                "mutation($id: ID!, $reason: String!) { stopExperiment(id: $id, reason: $reason) { version } }",
                json!({ "id": id, "reason": reason }),
            )
            .await;
            if error.peek().is_none() {
                stopping.set(false);
            }
        }
    };
    rsx! {
        div { class: "actions",
            if status == "DRAFT" {
                button {
                    r#type: "button",
                    disabled: busy(),
                    onclick: move |_| act("mutation($id: ID!) { startExperiment(id: $id) { version } }", json!({ "id": start_id.clone() })),
                    "Start"
                }
            }
            if status == "RUNNING" && !stopping() {
                button {
                    r#type: "button",
                    class: "danger",
                    onclick: move |_| stopping.set(true),
                    "Stop and roll back…"
                }
            }
            if status == "SCHEDULED" {
                button {
                    r#type: "button",
                    class: "danger",
                    disabled: busy(),
                    onclick: move |_| act(
                        "mutation($id: ID!) { cancelExperiment(id: $id, reason: \"cancelled from the dashboard\") { version } }",
                        json!({ "id": cancel_id.clone() }),
                    ),
                    "Cancel the schedule"
                }
            }
            button {
                r#type: "button",
                class: "secondary",
                onclick: move |_| go_with_query(route, Route::NewExperiment, &again),
                if ran { "Run again…" } else { "Copy into a new experiment…" }
            }
        }
        if status == "RUNNING" && stopping() {
            form { class: "confirm", onsubmit: stop, "aria-label": "Confirm stop",
                p { role: "alert", "The run is stopped where it is and its failure rolled back; it is recorded as stopped, with your reason." }
                label { r#for: "stop-reason", "Reason" }
                input { id: "stop-reason", required: true, value: "{reason}", oninput: move |e| reason.set(e.value()) }
                div { class: "actions",
                    button { r#type: "submit", class: "danger", disabled: busy(), "Stop now" }
                    button { r#type: "button", class: "secondary", onclick: move |_| stopping.set(false), "Keep it running" }
                }
            }
        }
        if let Some(message) = error() {
            p { class: "problem", role: "alert", "{message}" }
        }
    }
}
