//! Home: the platform's health, quick actions (run, run the last experiment again, start from
//! a template), the experiments running now (kept current by the `platformActivity`
//! subscription), recent history, and for admins the halt switch.
//!
//! The lists come from the read models, which trail the log the subscription follows: a list
//! read at once after an event may not show it yet. The page remembers the newest event it
//! saw of each experiment and reads the lists again (with a growing pause) until every row
//! it shows is at least that new, so a run that ended never lingers under "Running now".

use dioxus::prelude::*;
use serde_json::{Value, json};
use web::route::Route;

use super::api::{Completes, Live, call, live, use_api, use_task};
use super::experiments::{ExperimentRows, LIST};
use super::{Link, LiveBadge, Problem, go_with_query, use_route, use_session};

const TEMPLATES: &str = "{ templates { id name } }";
const HEALTH: &str = "{ health { halted haltReason projectionBehind projectionParked } }";
const ACTIVITY: &str =
    "subscription { platformActivity { streamType streamId sequence eventType summary at actor } }";

/// The home page.
#[component]
pub fn Home() -> Element {
    let session = use_session();
    let mut changed = use_signal(|| 0_u64);
    let live_status = use_signal(|| Live::Connecting);
    let mut latest = use_signal(Vec::<Value>::new);
    // The newest sequence the subscription showed of each experiment.
    let mut seen = use_signal(std::collections::BTreeMap::<String, u64>::new);
    let mut stale_reads = use_signal(|| 0_u32);
    let health = use_api(move || {
        changed();
        Box::pin(call(session, HEALTH, json!({})))
    });
    let running = use_api(move || {
        changed();
        Box::pin(call(
            session,
            LIST,
            json!({ "filter": { "status": "RUNNING" }, "first": 50 }),
        ))
    });
    let recent = use_api(move || {
        changed();
        Box::pin(call(session, LIST, json!({ "filter": {}, "first": 10 })))
    });
    use_task(move || {
        Box::pin(async move {
            live(
                session,
                ACTIVITY,
                // Anything may have happened while disconnected: read everything again.
                move || {
                    changed += 1;
                    json!({})
                },
                move |data| {
                    let update = data["platformActivity"].clone();
                    if update["streamType"] == "Experiment"
                        && let (Some(id), Some(sequence)) =
                            (update["streamId"].as_str(), update["sequence"].as_u64())
                    {
                        seen.with_mut(|s| {
                            let newest = s.entry(id.to_owned()).or_default();
                            *newest = (*newest).max(sequence);
                        });
                    }
                    latest.with_mut(|l| {
                        l.insert(0, update);
                        l.truncate(8);
                    });
                    changed += 1;
                    false
                },
                Completes::Resume,
                live_status,
            )
            .await;
        })
    });
    // A list older than an event seen is read again, after a pause that grows while it stays
    // behind (a read model held up by a parked record must not be asked ten times a second).
    use_effect(move || {
        let behind = [running, recent].iter().any(|page| match &*page.read() {
            Some(Ok(data)) => older_than_seen(&data["experiments"]["items"], &seen.peek()),
            _ => false,
        });
        if !behind {
            stale_reads.set(0);
            return;
        }
        let attempt = *stale_reads.peek();
        stale_reads.set(attempt.saturating_add(1));
        let wait = web::backoff::delay_ms(attempt, js_sys::Math::random());
        spawn(async move {
            gloo_timers::future::TimeoutFuture::new(wait).await;
            changed += 1;
        });
    });
    let user = session.read().clone();
    let admin = user.as_ref().is_some_and(|u| u.is_admin());
    let can_run = user.as_ref().is_some_and(|u| u.can_run());
    rsx! {
        div { class: "page-head",
            h1 { "Home" }
            LiveBadge { status: live_status }
        }
        section { class: "card", "aria-labelledby": "health-title",
            h2 { id: "health-title", "Platform health" }
            match &*health.read() {
                None => rsx! { p { class: "muted", role: "status", "Loading health…" } },
                Some(Err(e)) => rsx! { Problem { message: e.message.clone(), retry: move |()| changed += 1 } },
                Some(Ok(data)) => rsx! { HealthView { health: data["health"].clone(), admin, on_change: move |()| changed += 1 } },
            }
        }
        if can_run {
            QuickActions { recent }
        }
        section { class: "card", "aria-labelledby": "running-title",
            div { class: "section-head",
                h2 { id: "running-title", "Running now" }
            }
            ExperimentRows { page: running, empty: "No experiment is running." }
        }
        section { class: "card", "aria-labelledby": "recent-title",
            div { class: "section-head",
                h2 { id: "recent-title", "Recent experiments" }
                Link { to: Route::Experiments, "All experiments" }
            }
            ExperimentRows { page: recent, empty: "No experiment yet." }
        }
        section { class: "card", "aria-labelledby": "activity-title",
            h2 { id: "activity-title", "Latest events" }
            if latest.read().is_empty() {
                p { class: "muted", "Events appear here as they are recorded." }
            }
            ul { class: "events",
                for update in latest.read().iter() {
                    li { key: "{update[\"streamId\"]}-{update[\"sequence\"]}",
                        span { class: "event-type", "{update[\"eventType\"].as_str().unwrap_or_default()}" }
                        " {update[\"summary\"].as_str().unwrap_or_default()}"
                    }
                }
            }
        }
    }
}

/// Whether a row of `items` is older than the newest event `seen` of its experiment.
fn older_than_seen(items: &Value, seen: &std::collections::BTreeMap<String, u64>) -> bool {
    items.as_array().into_iter().flatten().any(|row| {
        let version = row["version"].as_u64().unwrap_or(0);
        row["id"]
            .as_str()
            .and_then(|id| seen.get(id))
            .is_some_and(|&newest| version < newest)
    })
}

/// What someone who runs experiments does most: run one, run the last one again, or start
/// from one of the first few templates.
#[component]
fn QuickActions(recent: Resource<Result<Value, super::api::ApiError>>) -> Element {
    let session = use_session();
    let route = use_route();
    let templates = use_api(move || Box::pin(call(session, TEMPLATES, json!({}))));
    let last = match &*recent.read() {
        Some(Ok(data)) => data["experiments"]["items"]
            .as_array()
            .and_then(|items| items.first())
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    e["name"].as_str().unwrap_or_default().to_owned(),
                )
            }),
        _ => None,
    };
    let first_templates: Vec<(String, String)> = match &*templates.read() {
        Some(Ok(data)) => data["templates"]
            .as_array()
            .map(|list| {
                list.iter()
                    .take(3)
                    .map(|t| {
                        (
                            t["id"].as_str().unwrap_or_default().to_owned(),
                            t["name"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    rsx! {
        section { class: "card", "aria-labelledby": "quick-title",
            h2 { id: "quick-title", "Quick actions" }
            div { class: "quick",
                Link { to: Route::NewExperiment, class: "button", "Run an experiment" }
                if let Some((id, name)) = last {
                    button {
                        r#type: "button",
                        class: "secondary",
                        onclick: move |_| go_with_query(route, Route::NewExperiment, &format!("from={id}")),
                        "Run “{name}” again"
                    }
                }
                for (id, name) in first_templates {
                    button {
                        key: "{id}",
                        r#type: "button",
                        class: "secondary",
                        onclick: move |_| go_with_query(route, Route::NewExperiment, &format!("template={id}")),
                        "From template “{name}”"
                    }
                }
            }
        }
    }
}

/// Health, and the halt switch for admins (halting asks for a reason and a confirmation).
#[component]
fn HealthView(health: Value, admin: bool, on_change: EventHandler<()>) -> Element {
    let session = use_session();
    let mut confirming = use_signal(|| false);
    let mut reason = use_signal(|| "halted from the dashboard".to_owned());
    let mut error = use_signal(|| None::<String>);
    let halted = health["halted"].as_bool().unwrap_or(false);
    let behind = health["projectionBehind"].as_i64();
    let parked = health["projectionParked"].as_i64();
    let halt = move |event: FormEvent| async move {
        event.prevent_default();
        let answer = call(
            session,
            "mutation($r: String!) { haltAll(reason: $r) { stopped stopping } }",
            json!({ "r": reason.peek().clone() }),
        )
        .await;
        match answer {
            Ok(_) => {
                confirming.set(false);
                error.set(None);
                on_change.call(());
            }
            Err(e) => error.set(Some(e.message)),
        }
    };
    let unhalt = move |_| async move {
        match call(session, "mutation { unhaltAll { version } }", json!({})).await {
            Ok(_) => {
                error.set(None);
                on_change.call(());
            }
            Err(e) => error.set(Some(e.message)),
        }
    };
    rsx! {
        dl { class: "facts",
            dt { "Experiments" }
            dd {
                if halted {
                    span { class: "status status-failed", "HALTED" }
                    " {health[\"haltReason\"].as_str().unwrap_or_default()}"
                } else {
                    span { class: "status status-completed", "ALLOWED" }
                }
            }
            if let Some(behind) = behind {
                dt { "Read models behind" }
                dd { "{behind} events" }
            }
            if let Some(parked) = parked {
                dt { "Parked records" }
                dd { "{parked}" }
            }
        }
        if let Some(message) = error() {
            p { class: "problem", role: "alert", "{message}" }
        }
        if admin && halted {
            button { r#type: "button", onclick: unhalt, "Lift the halt" }
        }
        if admin && !halted && !confirming() {
            button { r#type: "button", class: "danger", onclick: move |_| confirming.set(true), "Halt all experiments…" }
        }
        if admin && !halted && confirming() {
            form { class: "confirm", onsubmit: halt, "aria-label": "Confirm halt",
                p { role: "alert", "Every running experiment is stopped and rolled back, and none can start until the halt is lifted." }
                label { r#for: "halt-reason", "Reason" }
                input { id: "halt-reason", required: true, value: "{reason}", oninput: move |e| reason.set(e.value()) }
                div { class: "actions",
                    button { r#type: "submit", class: "danger", "Halt everything now" }
                    button { r#type: "button", class: "secondary", onclick: move |_| confirming.set(false), "Cancel" }
                }
            }
        }
    }
}
