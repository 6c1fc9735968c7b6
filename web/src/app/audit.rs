//! The audit log: every recorded event, newest first, filtered by actor (any part of it),
//! experiment and time, a page at a time, the filters kept in the page's address; and whether
//! the hash chain holds, checked on the server with the checks `chaos audit verify` makes (of
//! one experiment's stream when the log is filtered by it). New entries land at the top, so
//! activity on the platform (the `platformActivity` subscription) reloads the page only while
//! it is the first one.

use dioxus::prelude::*;
use serde_json::{Value, json};
use web::route::Route;

use super::api::{Completes, Live, call, live, use_api, use_task};
use super::settings::field;
use super::shown::{SHOWN, utc};
use super::{Link, LiveBadge, Pager, Problem, keep_in_address, query_param, use_session, when};

const LOG: &str = "query($filter: AuditFilterInput!, $first: Int!, $after: String) { \
    auditLog(filter: $filter, first: $first, after: $after) { \
    aggregateType aggregateId sequence eventType action actor actorRole source recordedAt hash } }";

const CHAIN: &str = "query($id: ID) { auditChain(experimentId: $id) { intact streams events \
    checkedAt faults { streamType streamId sequence problem } } }";

const ACTIVITY: &str = "subscription { platformActivity { streamId sequence } }";

/// What the log is filtered by.
#[derive(Debug, Clone, Default, PartialEq)]
struct Filters {
    actor: String,
    experiment: String,
    from: String,
    to: String,
}

impl Filters {
    /// The filters in the page's address.
    fn from_address() -> Self {
        let get = |name: &str| query_param(name).unwrap_or_default();
        Filters {
            actor: get("actor"),
            experiment: get("experiment"),
            from: get("from"),
            to: get("to"),
        }
    }

    /// Keeps these filters in the page's address.
    fn keep(&self) {
        keep_in_address(&[
            ("actor", self.actor.trim()),
            ("experiment", self.experiment.trim()),
            ("from", &self.from),
            ("to", &self.to),
        ]);
    }

    /// What no entry matched, in words.
    fn unmatched(&self) -> String {
        let mut what = Vec::new();
        if !self.actor.trim().is_empty() {
            what.push(format!("an actor containing “{}”", self.actor.trim()));
        }
        if !self.experiment.trim().is_empty() {
            what.push(format!("stream “{}”", self.experiment.trim()));
        }
        if !self.from.is_empty() || !self.to.is_empty() {
            what.push("this time range".to_owned());
        }
        if what.is_empty() {
            "Nothing has been recorded yet.".to_owned()
        } else {
            format!("No entry matches {}.", what.join(", "))
        }
    }

    /// The API's `AuditFilterInput`.
    fn input(&self) -> Value {
        let mut filter = json!({});
        for (name, text) in [("actor", &self.actor), ("experimentId", &self.experiment)] {
            if !text.trim().is_empty() {
                filter[name] = json!(text.trim());
            }
        }
        for (name, text) in [("from", &self.from), ("to", &self.to)] {
            if let Some(at) = utc(text) {
                filter[name] = json!(at);
            }
        }
        filter
    }
}

/// Rows per page, as the user prefers.
fn page_size() -> usize {
    usize::try_from(SHOWN.read().page_size).unwrap_or(20)
}

/// The cursor after an entry: `recordedAt|streamId|sequence`.
fn cursor_after(entry: &Value) -> Option<String> {
    Some(format!(
        "{}|{}|{}",
        entry["recordedAt"].as_str()?,
        entry["aggregateId"].as_str()?,
        entry["sequence"].as_u64()?
    ))
}

/// The audit log page.
#[component]
pub fn Audit() -> Element {
    let session = use_session();
    // What the form holds, and what was applied.
    let mut applied = use_signal(Filters::from_address);
    let actor = use_signal(|| applied.peek().actor.clone());
    let experiment_id = use_signal(|| applied.peek().experiment.clone());
    let from = use_signal(|| applied.peek().from.clone());
    let to = use_signal(|| applied.peek().to.clone());
    use_effect(move || applied.read().keep());
    // The cursors of the pages before this one, and this one's.
    let mut before = use_signal(Vec::<Option<String>>::new);
    let mut cursor = use_signal(|| None::<String>);
    let mut reload = use_signal(|| 0_u32);
    let live_status = use_signal(|| Live::Connecting);
    let mut waiting = use_signal(|| false);
    // One entry more than shown says whether a next page exists.
    let page = use_resource(move || async move {
        reload();
        let variables = json!({ "filter": applied.read().input(), "first": page_size() + 1, "after": cursor() });
        call(session, LOG, variables)
            .await
            .map(|data| data["auditLog"].as_array().cloned().unwrap_or_default())
    });
    let experiment = use_memo(move || applied.read().experiment.trim().to_owned());
    use_task(move || {
        Box::pin(async move {
            live(
                session,
                ACTIVITY,
                // Anything may have been recorded while disconnected: read the page again.
                move || {
                    reload += 1;
                    json!({})
                },
                move |_| {
                    let first_page = cursor.peek().is_none();
                    if first_page && !*waiting.peek() {
                        waiting.set(true);
                        // The read model applies an event a moment after the log has it: read
                        // again shortly, and once more later in case it was slow. Waiting also
                        // folds a burst of events into one read.
                        spawn(async move {
                            for wait in [250, 2_000] {
                                gloo_timers::future::TimeoutFuture::new(wait).await;
                                if wait == 250 {
                                    waiting.set(false);
                                }
                                reload += 1;
                            }
                        });
                    }
                    false
                },
                Completes::Resume,
                live_status,
            )
            .await;
        })
    });
    let next = match &*page.read() {
        Some(Ok(rows)) if rows.len() > page_size() => cursor_after(&rows[page_size() - 1]),
        _ => None,
    };
    let listing = match &*page.read() {
        None => rsx! { p { class: "muted", role: "status", "Loading the audit log…" } },
        Some(Err(e)) => {
            rsx! { Problem { message: e.message.clone(), retry: move |()| reload += 1 } }
        }
        Some(Ok(rows)) if rows.is_empty() => {
            let unmatched = applied.read().unmatched();
            rsx! { p { class: "muted empty", role: "status", "{unmatched}" } }
        }
        Some(Ok(rows)) => rsx! {
            div { class: "table-wrap",
                table { class: "audit",
                    thead {
                        tr {
                            th { scope: "col", "When" }
                            th { scope: "col", "Actor" }
                            th { scope: "col", "Stream" }
                            th { scope: "col", "Event" }
                            th { scope: "col", "Seq." }
                            th { scope: "col", "Hash" }
                        }
                    }
                    tbody {
                        for row in rows.iter().take(page_size()) {
                            {audit_row(row)}
                        }
                    }
                }
            }
        },
    };
    rsx! {
        div { class: "page-head",
            h1 { "Audit log" }
            LiveBadge { status: live_status }
        }
        ChainStatus { experiment }
        form {
            class: "filters",
            role: "search",
            "aria-label": "Filter the audit log",
            onsubmit: move |e: FormEvent| {
                e.prevent_default();
                applied.set(Filters { actor: actor(), experiment: experiment_id(), from: from(), to: to() });
                before.set(Vec::new());
                cursor.set(None);
            },
            {field("audit-actor", "Actor", actor, "text", false)}
            {field("audit-experiment", "Experiment id", experiment_id, "text", false)}
            {field("audit-from", "Recorded from (your time)", from, "datetime-local", false)}
            {field("audit-to", "Recorded before (your time)", to, "datetime-local", false)}
            div { class: "actions",
                button { r#type: "submit", "Apply filters" }
                button {
                    r#type: "button",
                    class: "secondary",
                    onclick: move |_| {
                        for mut field in [actor, experiment_id, from, to] {
                            field.set(String::new());
                        }
                        applied.set(Filters::default());
                        before.set(Vec::new());
                        cursor.set(None);
                    },
                    "Clear"
                }
            }
        }
        section { class: "card", "aria-label": "Audit entries",
            {listing}
            Pager { before, cursor, next }
        }
    }
}

/// One entry as a row of the table.
fn audit_row(row: &Value) -> Element {
    let text = |field: &str| row[field].as_str().unwrap_or_default().to_owned();
    let (stream, id, hash) = (text("aggregateType"), text("aggregateId"), text("hash"));
    let short = hash.get(..12).unwrap_or(&hash).to_owned();
    rsx! {
        tr { key: "{id}-{row[\"sequence\"]}",
            td { "data-label": "When", "{when(&text(\"recordedAt\"))}" }
            td { "data-label": "Actor",
                "{text(\"actor\")}"
                span { class: "muted", " {text(\"actorRole\")} · {text(\"source\")}" }
            }
            td { "data-label": "Stream", class: "id",
                if stream == "Experiment" {
                    Link { to: Route::Experiment(id.clone()), "{id}" }
                } else {
                    "{id}"
                }
            }
            td { "data-label": "Event",
                span { class: "event-type", "{text(\"eventType\")}" }
                " {text(\"action\")}"
            }
            td { "data-label": "Seq.", "{row[\"sequence\"]}" }
            td { "data-label": "Hash",
                details {
                    summary { title: "{hash}", code { "{short}…" } }
                    code { class: "id", "{hash}" }
                }
            }
        }
    }
}

/// Whether the chain holds (of `experiment`'s stream, or of the whole log), in words and
/// colour, with a way to check again.
#[component]
fn ChainStatus(experiment: Memo<String>) -> Element {
    let session = use_session();
    let mut chain = use_api(move || {
        let id = experiment();
        let id = (!id.is_empty()).then_some(id);
        Box::pin(call(session, CHAIN, json!({ "id": id })))
    });
    let answer = chain
        .read()
        .clone()
        .map(|answer| answer.map(|data| data["auditChain"].clone()));
    let checking = *chain.state().read() == UseResourceState::Pending;
    let scope = if experiment.read().is_empty() {
        "the whole log".to_owned()
    } else {
        format!("experiment {}", experiment.read())
    };
    let number = |status: &Value, field: &str| status[field].as_u64().unwrap_or(0);
    rsx! {
        section { class: "card", "aria-labelledby": "chain-title",
            div { class: "section-head",
                h2 { id: "chain-title", "Hash chain of {scope}" }
                button {
                    r#type: "button",
                    class: "secondary",
                    disabled: checking,
                    onclick: move |_| chain.restart(),
                    if checking { "Verifying…" } else { "Verify again" }
                }
            }
            match &answer {
                None => rsx! { p { class: "muted", role: "status", "Verifying the chain…" } },
                Some(Err(e)) => rsx! { Problem { message: format!("The chain cannot be checked: {}", e.message), retry: None } },
                Some(Ok(status)) if status["intact"].as_bool() == Some(true) => rsx! {
                    p { class: "chain chain-ok", role: "status",
                        strong { "Chain intact" }
                        ": {number(status, \"streams\")} streams, {number(status, \"events\")} events, checked at {when(status[\"checkedAt\"].as_str().unwrap_or_default())}"
                    }
                },
                Some(Ok(status)) => rsx! {
                    div { class: "chain chain-broken", role: "alert",
                        p {
                            strong { "Chain BROKEN" }
                            ": {status[\"faults\"].as_array().map_or(0, Vec::len)} of {number(status, \"streams\")} streams do not verify ({number(status, \"events\")} events, checked at {when(status[\"checkedAt\"].as_str().unwrap_or_default())}). Nothing after the first bad position of a stream can be trusted."
                        }
                        ul {
                            for fault in status["faults"].as_array().cloned().unwrap_or_default() {
                                li { key: "{fault[\"streamId\"]}",
                                    "{fault[\"streamType\"].as_str().unwrap_or_default()}/{fault[\"streamId\"].as_str().unwrap_or_default()} at sequence {fault[\"sequence\"]}: {fault[\"problem\"].as_str().unwrap_or_default()}"
                                }
                            }
                        }
                    }
                },
            }
        }
    }
}
