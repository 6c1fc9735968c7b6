//! One experiment: what it is, how it ended, and its timeline, which grows live from the
//! `experimentUpdates` subscription (resumed after the last event shown, so a dropped socket
//! loses nothing).

use dioxus::prelude::*;
use serde_json::{Value, json};
use web::backoff;
use web::route::Route;

use super::api::{Completes, Live, call, live, use_task};
use super::{LiveBadge, Problem, Status, go_with_query, use_route, use_session, when};

const DETAIL: &str = "query($id: ID!) { experiment(id: $id) { failure stopReason \
    experiment { id name target failureType dryRun status phase outcome recoveryMs createdAt createdBy startedAt endedAt version } \
    timeline { sequence eventType action actor at } } }";

const UPDATES: &str = "subscription($id: ID!, $after: Int) { experimentUpdates(id: $id, afterSequence: $after) { \
    sequence eventType summary actor at status phase ended } }";

/// How many times an experiment the read models do not have yet (or not yet as far as the log)
/// is asked for again, every 250 ms, before the page makes do with what it has.
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

/// What the page knows of the experiment.
#[derive(Debug, Clone, PartialEq)]
enum Loaded {
    Loading,
    Missing,
    Failed(String),
    Found(Value),
}

/// The experiment page.
#[component]
pub fn Experiment(id: String) -> Element {
    let session = use_session();
    let mut loaded = use_signal(|| Loaded::Loading);
    let mut timeline = use_signal(Vec::<Entry>::new);
    let mut status = use_signal(String::new);
    let mut phase = use_signal(|| None::<String>);
    // The version of the experiment that `status` and `phase` describe: the read models keep
    // the experiment and its timeline apart, and either may trail the other or the log.
    let mut version = use_signal(|| 0_i64);
    let live_status = use_signal(|| Live::Connecting);
    let id_for_task = id.clone();
    let mut follow = use_task(move || {
        let id = id_for_task.clone();
        Box::pin(async move {
            // The experiment as it is now, then every event after it.
            let (mut tries, mut missing) = (0, 0);
            let detail = loop {
                match call(session, DETAIL, json!({ "id": id })).await {
                    // The read models follow the log: an experiment created a moment ago (this
                    // page opens right after the run form creates one) may not be in them yet.
                    Ok(data) if data["experiment"].is_null() && missing < MISSING_TRIES => {
                        gloo_timers::future::TimeoutFuture::new(250).await;
                        missing += 1;
                    }
                    Ok(data) => break data["experiment"].clone(),
                    Err(e) if e.code == "NETWORK" => {
                        loaded.set(Loaded::Failed(e.message));
                        gloo_timers::future::TimeoutFuture::new(backoff::delay_ms(
                            tries,
                            js_sys::Math::random(),
                        ))
                        .await;
                        tries += 1;
                    }
                    Err(e) => {
                        loaded.set(Loaded::Failed(e.message));
                        return;
                    }
                }
            };
            if detail.is_null() {
                loaded.set(Loaded::Missing);
                return;
            }
            apply_detail(&detail, timeline, status, phase, version);
            loaded.set(Loaded::Found(detail));
            let subscribed = id.clone();
            live(
                session,
                UPDATES,
                // After what both the timeline and the state shown have.
                move || {
                    let shown = timeline.peek().last().map_or(0, |e| e.sequence);
                    json!({ "id": subscribed, "after": shown.min(*version.peek()) })
                },
                move |data| {
                    let update = &data["experimentUpdates"];
                    let sequence = update["sequence"].as_i64().unwrap_or(0);
                    if sequence > timeline.peek().last().map_or(0, |e| e.sequence) {
                        timeline.push(Entry {
                            sequence,
                            event_type: update["eventType"].as_str().unwrap_or_default().to_owned(),
                            what: update["summary"].as_str().unwrap_or_default().to_owned(),
                            actor: update["actor"].as_str().unwrap_or_default().to_owned(),
                            at: update["at"].as_str().unwrap_or_default().to_owned(),
                        });
                    }
                    if sequence > *version.peek() {
                        status.set(update["status"].as_str().unwrap_or_default().to_owned());
                        phase.set(update["phase"].as_str().map(str::to_owned));
                        version.set(sequence);
                    }
                    update["ended"].as_bool().unwrap_or(false)
                },
                Completes::Ended,
                live_status,
            )
            .await;
            // The run is over: read its outcome, once the read models have caught up with it.
            for _ in 0..MISSING_TRIES {
                if let Ok(data) = call(session, DETAIL, json!({ "id": id })).await
                    && !data["experiment"].is_null()
                {
                    let detail = &data["experiment"];
                    let read = detail["experiment"]["version"].as_i64().unwrap_or(0);
                    let caught_up = read >= *version.peek();
                    apply_detail(detail, timeline, status, phase, version);
                    loaded.set(Loaded::Found(detail.clone()));
                    if caught_up {
                        break;
                    }
                }
                gloo_timers::future::TimeoutFuture::new(250).await;
            }
        })
    });
    let detail = match loaded() {
        Loaded::Loading => {
            return rsx! { p { class: "muted", role: "status", "Loading the experiment…" } };
        }
        Loaded::Missing => {
            return rsx! { Problem { message: format!("There is no experiment {id}."), retry: None } };
        }
        Loaded::Failed(message) => {
            return rsx! {
                Problem {
                    message,
                    retry: move |()| {
                        loaded.set(Loaded::Loading);
                        follow.restart();
                    },
                }
            };
        }
        Loaded::Found(detail) => detail,
    };
    let experiment = &detail["experiment"];
    let text = |field: &str| experiment[field].as_str().unwrap_or_default().to_owned();
    let recovery = experiment["recoveryMs"].as_i64().map(web::units::seconds);
    let can_run = session.read().as_ref().is_some_and(|s| s.can_run());
    let current = status();
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
                    Status { status: current.clone() }
                    if let Some(phase) = phase() {
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
                if let Some(failure) = detail["failure"].as_str() {
                    dt { "Why it failed" }
                    dd { "{failure}" }
                }
                if let Some(reason) = detail["stopReason"].as_str() {
                    dt { "Stop reason" }
                    dd { "{reason}" }
                }
                dt { "Created" }
                dd { "{when(&text(\"createdAt\"))} by {text(\"createdBy\")}" }
                dt { "Id" }
                dd { code { "{text(\"id\")}" } }
            }
            if can_run {
                Controls { id: id.clone(), status: current.clone() }
            }
        }
        section { class: "card", "aria-labelledby": "timeline-title",
            h2 { id: "timeline-title", "Timeline" }
            if timeline.read().is_empty() {
                p { class: "muted empty", "Nothing has happened yet." }
            }
            ol { class: "timeline", "aria-live": "polite",
                for entry in timeline.read().iter() {
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

/// Fills the timeline and state from an `experiment(id)` answer, each unless what the page
/// already shows is newer.
fn apply_detail(
    detail: &Value,
    mut timeline: Signal<Vec<Entry>>,
    mut status: Signal<String>,
    mut phase: Signal<Option<String>>,
    mut version: Signal<i64>,
) {
    let entries: Vec<Entry> = detail["timeline"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| Entry {
                    sequence: e["sequence"].as_i64().unwrap_or(0),
                    event_type: e["eventType"].as_str().unwrap_or_default().to_owned(),
                    what: e["action"].as_str().unwrap_or_default().to_owned(),
                    actor: e["actor"].as_str().unwrap_or_default().to_owned(),
                    at: e["at"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    // Keep what arrived live if the read model is behind it.
    if entries.len() >= timeline.peek().len() {
        timeline.set(entries);
    }
    let read = detail["experiment"]["version"].as_i64().unwrap_or(0);
    if read >= *version.peek() {
        status.set(
            detail["experiment"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        phase.set(detail["experiment"]["phase"].as_str().map(str::to_owned));
        version.set(read);
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
