//! Running an experiment against a fleet: a form without JSON that creates the experiment,
//! then starts it, and opens its page. What the API refuses is shown as it says it.

use dioxus::prelude::*;
use serde_json::json;
use web::route::Route;
use web::spec::SimpleSpec;

use super::api::call;
use super::{go, use_route, use_session};

/// The form.
#[component]
pub fn NewExperiment() -> Element {
    let session = use_session();
    let route = use_route();
    let mut name = use_signal(String::new);
    let mut group = use_signal(|| "web".to_owned());
    let mut failure = use_signal(|| "TERMINATE".to_owned());
    let mut pause_secs = use_signal(|| "10".to_owned());
    let mut count = use_signal(|| "1".to_owned());
    let mut dry_run = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    if !session.read().as_ref().is_some_and(|s| s.can_run()) {
        return rsx! { p { class: "problem", role: "alert", "Your role may not run experiments." } };
    }
    let submit = move |event: FormEvent| async move {
        event.prevent_default();
        if busy() {
            return;
        }
        let (Ok(count), Ok(pause_secs)) = (
            count.peek().trim().parse::<u32>(),
            pause_secs.peek().trim().parse::<u32>(),
        ) else {
            error.set(Some(
                "How many and how long must be whole numbers.".to_owned(),
            ));
            return;
        };
        let spec = SimpleSpec {
            name: name.peek().clone(),
            group: group.peek().clone(),
            failure: failure.peek().clone(),
            pause_secs,
            count,
            dry_run: dry_run(),
        }
        .to_json();
        busy.set(true);
        error.set(None);
        let created = call(
            session,
            "mutation($spec: JSON!) { createExperiment(spec: $spec) { aggregateId } }",
            json!({ "spec": spec }),
        )
        .await;
        let id = match created {
            Ok(data) => data["createExperiment"]["aggregateId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Err(e) => {
                error.set(Some(e.message));
                busy.set(false);
                return;
            }
        };
        let started = call(
            session,
            "mutation($id: ID!) { startExperiment(id: $id) { version } }",
            json!({ "id": id }),
        )
        .await;
        busy.set(false);
        match started {
            Ok(_) => go(route, Route::Experiment(id)),
            Err(e) => error.set(Some(format!("Created, but not started: {}", e.message))),
        }
    };
    rsx! {
        div { class: "page-head", h1 { "Run an experiment" } }
        section { class: "card",
            form { class: "run", onsubmit: submit, "aria-describedby": "run-help",
                p { id: "run-help", class: "muted",
                    "The experiment hits workers of a demo fleet, watches the fleet's health and records how long it takes to recover."
                }
                label { r#for: "name", "Name" }
                input { id: "name", name: "name", required: true, value: "{name}", oninput: move |e| name.set(e.value()) }
                label { r#for: "group", "Target group (fleet)" }
                input { id: "group", name: "group", required: true, value: "{group}", oninput: move |e| group.set(e.value()) }
                label { r#for: "failure", "Failure" }
                select { id: "failure", name: "failure", value: "{failure}", onchange: move |e| failure.set(e.value()),
                    option { value: "TERMINATE", "Terminate (kill the worker)" }
                    option { value: "PAUSE", "Pause (stop the process for a while)" }
                }
                if failure() == "PAUSE" {
                    label { r#for: "pause", "Pause for (seconds)" }
                    input { id: "pause", name: "pause", r#type: "number", min: "1", max: "3600", required: true, value: "{pause_secs}", oninput: move |e| pause_secs.set(e.value()) }
                }
                label { r#for: "count", "How many workers" }
                input { id: "count", name: "count", r#type: "number", min: "0", required: true, value: "{count}", oninput: move |e| count.set(e.value()) }
                div { class: "check",
                    input { id: "dry-run", name: "dry-run", r#type: "checkbox", checked: dry_run(), onchange: move |e| dry_run.set(e.checked()) }
                    label { r#for: "dry-run", "Dry run (only resolve the targets, touch nothing)" }
                }
                if let Some(message) = error() {
                    div { class: "problem", role: "alert", "{message}" }
                }
                button { r#type: "submit", disabled: busy(), if busy() { "Starting…" } else { "Create and start" } }
            }
        }
    }
}
