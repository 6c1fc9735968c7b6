//! The experiments list: filtered by status, target and creation date, searched by name, a
//! page at a time.

use dioxus::prelude::*;
use serde_json::{Value, json};
use web::route::Route;

use super::api::{ApiError, call, use_api};
use super::shown::{SHOWN, midnight};
use super::{Link, Pager, Problem, Status, keep_in_address, query_param, use_session, when};

/// A page of experiments (`filter`, `first`, `after`).
pub const LIST: &str = "query($filter: ExperimentFilterInput!, $first: Int!, $after: String) { \
    experiments(filter: $filter, first: $first, after: $after) { \
    items { id name target failureType dryRun status phase outcome recoveryMs createdAt version } nextCursor } }";

const STATUSES: [&str; 7] = [
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "STOPPED",
    "DRAFT",
    "SCHEDULED",
    "CANCELLED",
];

/// The experiments page.
#[component]
pub fn Experiments() -> Element {
    let session = use_session();
    // The filters, from the page's address and kept in it (a reload or Back keeps them).
    let from_address = |name: &str| query_param(name).unwrap_or_default();
    let mut status = use_signal(|| from_address("status"));
    let mut search = use_signal(|| from_address("search"));
    let mut target = use_signal(|| from_address("target"));
    let mut created_from = use_signal(|| from_address("from"));
    let mut created_to = use_signal(|| from_address("to"));
    let mut archived = use_signal(|| query_param("archived").is_some());
    use_effect(move || {
        keep_in_address(&[
            ("status", &status()),
            ("search", &search()),
            ("target", &target()),
            ("from", &created_from()),
            ("to", &created_to()),
            ("archived", if archived() { "1" } else { "" }),
        ]);
    });
    // The cursors of the pages before this one, and this one's.
    let mut before = use_signal(Vec::<Option<String>>::new);
    let mut cursor = use_signal(|| None::<String>);
    let mut reload = use_signal(|| 0_u32);
    let page = use_api(move || {
        reload();
        let filter = filter_of(
            &status(),
            &search(),
            &target(),
            (&created_from(), &created_to()),
            archived(),
        );
        Box::pin(call(
            session,
            LIST,
            json!({ "filter": filter, "first": SHOWN.read().page_size, "after": cursor() }),
        ))
    });
    let next = match &*page.read() {
        Some(Ok(data)) => data["experiments"]["nextCursor"]
            .as_str()
            .map(str::to_owned),
        _ => None,
    };
    let can_run = session.read().as_ref().is_some_and(|s| s.can_run());
    let mut restart = move || {
        before.set(Vec::new());
        cursor.set(None);
    };
    rsx! {
        div { class: "page-head",
            h1 { "Experiments" }
            if can_run {
                Link { to: Route::NewExperiment, class: "button", "Run an experiment" }
            }
        }
        form { class: "filters", role: "search", onsubmit: move |e: FormEvent| e.prevent_default(),
            div { class: "field",
                label { r#for: "status-filter", "Status" }
                select {
                    id: "status-filter",
                    value: "{status}",
                    onchange: move |e| {
                        status.set(e.value());
                        restart();
                    },
                    option { value: "", "Any" }
                    for s in STATUSES {
                        option { value: "{s}", "{s}" }
                    }
                }
            }
            div { class: "field",
                label { r#for: "search", "Name contains" }
                input {
                    id: "search",
                    r#type: "search",
                    value: "{search}",
                    oninput: move |e| {
                        search.set(e.value());
                        restart();
                    },
                }
            }
            div { class: "field",
                label { r#for: "target-filter", "Target" }
                input {
                    id: "target-filter",
                    r#type: "search",
                    placeholder: "fleet:web",
                    "aria-describedby": "target-help",
                    value: "{target}",
                    oninput: move |e| {
                        target.set(e.value());
                        restart();
                    },
                }
                span { id: "target-help", class: "visually-hidden", "A target key such as fleet:web or asg:web-prod" }
            }
            div { class: "field",
                label { r#for: "created-from", "Created from" }
                input {
                    id: "created-from",
                    r#type: "date",
                    value: "{created_from}",
                    onchange: move |e| {
                        created_from.set(e.value());
                        restart();
                    },
                }
            }
            div { class: "field",
                label { r#for: "created-to", "Created until" }
                input {
                    id: "created-to",
                    r#type: "date",
                    value: "{created_to}",
                    onchange: move |e| {
                        created_to.set(e.value());
                        restart();
                    },
                }
            }
            div { class: "field check",
                input {
                    id: "archived",
                    r#type: "checkbox",
                    checked: archived(),
                    onchange: move |e| {
                        archived.set(e.checked());
                        restart();
                    },
                }
                label { r#for: "archived", "Archived too" }
            }
        }
        section { class: "card", "aria-label": "Experiments found",
            ExperimentRows { page, empty: "No experiment matches these filters.", retry: move |()| reload += 1 }
            Pager { before, cursor, next }
        }
    }
}

/// The list's filter as the API takes it, from the form's values: what is empty filters
/// nothing; the days of `created` are the user's (in their time zone), from the start of the
/// first to the end of the last.
fn filter_of(
    status: &str,
    search: &str,
    target: &str,
    created: (&str, &str),
    archived: bool,
) -> Value {
    let mut filter = json!({});
    if !status.is_empty() {
        filter["status"] = json!(status);
    }
    if !search.trim().is_empty() {
        filter["search"] = json!(search.trim());
    }
    if !target.trim().is_empty() {
        filter["target"] = json!(target.trim());
    }
    if let Some(from) = midnight(created.0, 0) {
        filter["createdFrom"] = json!(from);
    }
    if let Some(to) = midnight(created.1, 1) {
        filter["createdTo"] = json!(to);
    }
    if archived {
        filter["includeArchived"] = json!(true);
    }
    filter
}

/// A table of experiments (a page from [`LIST`]), with its loading, empty and error states.
#[component]
pub fn ExperimentRows(
    page: Resource<Result<Value, ApiError>>,
    empty: String,
    retry: Option<EventHandler<()>>,
) -> Element {
    let rows = match &*page.read() {
        None => return rsx! { p { class: "muted", role: "status", "Loading…" } },
        Some(Err(e)) => {
            return rsx! { Problem { message: e.message.clone(), retry } };
        }
        Some(Ok(data)) => data["experiments"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    if rows.is_empty() {
        return rsx! { p { class: "muted empty", "{empty}" } };
    }
    rsx! {
        div { class: "table-wrap",
            table {
                thead {
                    tr {
                        th { scope: "col", "Name" }
                        th { scope: "col", "Status" }
                        th { scope: "col", "Target" }
                        th { scope: "col", "Failure" }
                        th { scope: "col", "Created" }
                    }
                }
                tbody {
                    for row in rows {
                        ExperimentRow { key: "{row[\"id\"]}", row: row.clone() }
                    }
                }
            }
        }
    }
}

#[component]
fn ExperimentRow(row: Value) -> Element {
    let text = |field: &str| row[field].as_str().unwrap_or_default().to_owned();
    let id = text("id");
    let phase = row["phase"].as_str().map(|p| format!(" {p}"));
    let failure = if row["dryRun"].as_bool() == Some(true) {
        format!("{} (dry run)", text("failureType"))
    } else {
        text("failureType")
    };
    rsx! {
        tr {
            td { Link { to: Route::Experiment(id.clone()), "{text(\"name\")}" } }
            td {
                Status { status: text("status") }
                if let Some(phase) = phase {
                    span { class: "muted", "{phase}" }
                }
            }
            td { "{text(\"target\")}" }
            td { "{failure}" }
            td { "{when(&text(\"createdAt\"))}" }
        }
    }
}
