//! Settings: who you are and your preferences; for admins the webhooks, the API keys and the
//! platform's limits, which others see read-only. Controls a role may not use are not rendered
//! (the API refuses them anyway); what the API refuses is shown in its words.
//!
//! The page is one query, read again after each change, and every change is a [`Mutation`]
//! form: one submit handler for all of them keeps the page small in the bundle.

use dioxus::prelude::*;
use serde_json::{Value, json};

use super::api::{call, strings, use_api};
use super::session::Session;
use super::shown::{SHOWN, Shown};
use super::{Problem, use_session, when};

const READ: &str = "{ me { id role } preferences { notifyOn timeZone pageSize } \
    config { maxTargetsPerRun maxDurationSecs halted haltReason } }";

/// [`READ`] and what only admins may read.
const READ_ADMIN: &str = "{ me { id role } preferences { notifyOn timeZone pageSize } \
    config { maxTargetsPerRun maxDurationSecs halted haltReason } \
    webhooks { id url events } apiKeys { id name role createdAt } }";

const SAVE_PREFERENCES: &str = "mutation($v: PreferencesInput!) { updatePreferences(preferences: $v) { timeZone pageSize notifyOn } }";

const REMOVE_WEBHOOK: &str = "mutation($id: ID!) { removeWebhook(id: $id) { version } }";

const REVOKE_KEY: &str = "mutation($id: ID!) { revokeApiKey(id: $id) { version } }";

const SAVE_CONFIG: &str = "mutation($t: Int!, $d: Int!) { updateConfig(maxTargetsPerRun: $t, maxDurationSecs: $d) { version } }";

const ADD_WEBHOOK: &str = "mutation($u: String!, $e: [String!]!) { addWebhook(url: $u, events: $e) { version webhookId secret fingerprint } }";
const ROTATE_SECRET: &str =
    "mutation($id: ID!) { rotateWebhookSecret(id: $id) { webhookId secret fingerprint } }";

const CREATE_KEY: &str =
    "mutation($n: String!, $r: String!) { createApiKey(name: $n, role: $r) { id secret role } }";

const OUTCOMES: [&str; 5] = ["COMPLETED", "FAILED", "NOT_RECOVERED", "STOPPED", "HALTED"];

const ROLES: [&str; 3] = ["VIEWER", "OPERATOR", "ADMIN"];

/// A JSON string, or nothing.
fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A labelled input of type `kind` bound to `value` (a function, not a component: it keeps
/// no state of its own, and the bundle pays nothing per use).
pub fn field(
    id: &'static str,
    label: &'static str,
    mut value: Signal<String>,
    kind: &'static str,
    required: bool,
) -> Element {
    rsx! {
        div { class: "field",
            label { r#for: id, "{label}" }
            input {
                id,
                r#type: kind,
                required,
                value: "{value}",
                oninput: move |e| value.set(e.value()),
            }
        }
    }
}

/// A form that sends one mutation, `query`, with what `variables` gives (or the reason it
/// cannot be sent), says how it went, and hands the answer to `on_done`.
#[component]
fn Mutation(
    label: String,
    query: &'static str,
    variables: Callback<(), Result<Value, String>>,
    done: &'static str,
    #[props(default)] class: &'static str,
    on_done: Option<Callback<Value>>,
    children: Element,
) -> Element {
    let session = use_session();
    let mut said = use_signal(|| None::<Result<&'static str, String>>);
    rsx! {
        form {
            class,
            "aria-label": "{label}",
            onsubmit: move |event: FormEvent| async move {
                event.prevent_default();
                let sent = match variables.call(()) {
                    Ok(variables) => call(session, query, variables).await.map_err(|e| e.message),
                    Err(why) => Err(why),
                };
                match sent {
                    Ok(data) => {
                        said.set(Some(Ok(done)));
                        if let Some(on_done) = on_done {
                            on_done.call(data);
                        }
                    }
                    Err(why) => said.set(Some(Err(why))),
                }
            },
            {children}
        }
        match said() {
            None => rsx! {},
            Some(Ok(done)) => rsx! { p { class: "notice", role: "status", "{done}" } },
            Some(Err(why)) => rsx! { p { class: "problem", role: "alert", "{why}" } },
        }
    }
}

/// The settings page.
#[component]
pub fn Settings() -> Element {
    let session = use_session();
    let admin = session.read().as_ref().is_some_and(Session::is_admin);
    let mut read = use_api(move || {
        Box::pin(call(
            session,
            if admin { READ_ADMIN } else { READ },
            json!({}),
        ))
    });
    let refresh = use_callback(move |_: Value| read.restart());
    let data = match &*read.read() {
        Some(Ok(data)) => data.clone(),
        Some(Err(e)) => {
            return rsx! { Problem { message: e.message.clone(), retry: move |()| read.restart() } };
        }
        None => return rsx! { p { class: "muted", role: "status", "Loading your settings…" } },
    };
    rsx! {
        div { class: "page-head", h1 { "Settings" } }
        Profile { me: data["me"].clone(), preferences: data["preferences"].clone() }
        if admin {
            Webhooks { hooks: data["webhooks"].clone(), refresh }
            ApiKeys { keys: data["apiKeys"].clone(), refresh }
        }
        Config { config: data["config"].clone(), admin }
    }
}

/// Who you are and your preferences.
#[component]
fn Profile(me: Value, preferences: Value) -> Element {
    let mut notify = use_signal(|| strings(&preferences["notifyOn"]));
    let zone = use_signal(|| text(&preferences["timeZone"]));
    let size = use_signal(|| preferences["pageSize"].to_string());
    rsx! {
        section { class: "card", "aria-labelledby": "profile-title",
            h2 { id: "profile-title", "Profile" }
            dl { class: "facts",
                dt { "Signed in as" }
                dd { "{text(&me[\"id\"])}" }
                dt { "Role" }
                dd { "{text(&me[\"role\"])}" }
            }
            Mutation {
                label: "Preferences",
                query: SAVE_PREFERENCES,
                variables: move |()| {
                    let size: i64 = size.peek().trim().parse().map_err(|_| "Rows per page must be a whole number.".to_owned())?;
                    Ok(json!({ "v": { "notifyOn": notify.peek().clone(), "timeZone": zone.peek().trim(), "pageSize": size } }))
                },
                done: "Preferences saved.",
                on_done: move |data: Value| *SHOWN.write() = Shown::from_preferences(&data["updatePreferences"]),
                fieldset { class: "choices",
                    legend { "Tell me in the dashboard when" }
                    for outcome in OUTCOMES {
                        div { class: "check",
                            input {
                                id: "notify-{outcome}",
                                r#type: "checkbox",
                                checked: notify.read().iter().any(|n| n == outcome),
                                onchange: move |e| {
                                    let on = e.checked();
                                    notify.with_mut(|n| {
                                        n.retain(|o| o != outcome);
                                        if on {
                                            n.push(outcome.to_owned());
                                        }
                                    });
                                },
                            }
                            label { r#for: "notify-{outcome}", "{outcome}" }
                        }
                    }
                }
                {field("time-zone", "Time zone (IANA)", zone, "text", false)}
                {field("page-size", "Rows per page (10 to 200)", size, "number", false)}
                button { r#type: "submit", "Save preferences" }
            }
        }
    }
}

/// A row of a [`listing`]: its id, its cells, and what removing it asks.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: String,
    cells: Vec<String>,
    question: String,
}

/// How the rows of a [`listing`] are removed: `label` on each row's button, `query` the
/// mutation sent with the row's id once the browser's own confirmation dialog says so; a
/// refusal is shown in `said`.
#[derive(Clone, Copy)]
struct Removal {
    label: &'static str,
    query: &'static str,
    session: Signal<Option<Session>>,
    refresh: Callback<Value>,
    said: Signal<Option<String>>,
}

/// A table of what an admin manages, each row removable after a confirmation.
fn listing(
    headers: &[&'static str],
    rows: Vec<Row>,
    empty: &'static str,
    removal: Removal,
) -> Element {
    let Removal {
        label,
        query,
        session,
        refresh,
        mut said,
    } = removal;
    let refused = said();
    rsx! {
        if rows.is_empty() {
            p { class: "muted empty", "{empty}" }
        } else {
            div { class: "table-wrap",
                table {
                    thead {
                        tr {
                            for header in headers.iter().copied() {
                                th { scope: "col", "{header}" }
                            }
                            th { scope: "col", span { class: "visually-hidden", "Actions" } }
                        }
                    }
                    tbody {
                        for Row { id, cells, question } in rows {
                            tr { key: "{id}",
                                for cell in cells {
                                    td { class: "id", "{cell}" }
                                }
                                td {
                                    button {
                                        r#type: "button",
                                        class: "secondary",
                                        onclick: move |_| {
                                            let (id, question) = (id.clone(), question.clone());
                                            async move {
                                                let confirmed = web_sys::window()
                                                    .and_then(|w| w.confirm_with_message(&question).ok())
                                                    .unwrap_or(false);
                                                if confirmed {
                                                    match call(session, query, json!({ "id": id })).await {
                                                        Ok(data) => {
                                                            said.set(None);
                                                            refresh.call(data);
                                                        }
                                                        Err(e) => said.set(Some(e.message)),
                                                    }
                                                }
                                            }
                                        },
                                        "{label}"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(why) = refused {
            p { class: "problem", role: "alert", "{why}" }
        }
    }
}

/// The webhook subscriptions (admins only).
#[component]
fn Webhooks(hooks: Value, refresh: Callback<Value>) -> Element {
    let session = use_session();
    let said = use_signal(|| None::<String>);
    let mut url = use_signal(String::new);
    let mut events = use_signal(String::new);
    let mut issued = use_signal(|| None::<Value>);
    let ids: Vec<String> = hooks
        .as_array()
        .into_iter()
        .flatten()
        .map(|hook| text(&hook["id"]))
        .collect();
    let mut rotating = use_signal(String::new);
    let rows = hooks
        .as_array()
        .into_iter()
        .flatten()
        .map(|hook| {
            let events = strings(&hook["events"]);
            Row {
                id: text(&hook["id"]),
                question: format!("Remove the webhook to {}?", text(&hook["url"])),
                cells: vec![
                    text(&hook["url"]),
                    if events.is_empty() {
                        "every event".to_owned()
                    } else {
                        events.join(", ")
                    },
                ],
            }
        })
        .collect();
    rsx! {
        section { class: "card", "aria-labelledby": "webhooks-title",
            h2 { id: "webhooks-title", "Webhooks" }
            {listing(&["URL", "Events"], rows, "No webhook yet.", Removal { label: "Remove", query: REMOVE_WEBHOOK, session, refresh, said })}
            if let Some(hook) = issued().filter(|h| h["secret"].is_string()) {
                div { class: "secret", role: "status",
                    p { strong { "The signing secret of webhook {text(&hook[\"webhookId\"])}, shown this once:" } }
                    code { class: "id", "data-secret": "", "{text(&hook[\"secret\"])}" }
                    p { class: "muted",
                        "Give it to the receiver now: it checks each delivery's X-Chaos-Signature header with it (docs/WEBHOOKS.md), and it cannot be shown again. The audit log names it by its fingerprint, {text(&hook[\"fingerprint\"])}."
                    }
                    button { r#type: "button", class: "secondary", onclick: move |_| issued.set(None), "I have copied it" }
                }
            }
            Mutation {
                label: "Add a webhook",
                class: "filters",
                query: ADD_WEBHOOK,
                variables: move |()| {
                    let types: Vec<String> = events.peek().split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
                    Ok(json!({ "u": url.peek().trim(), "e": types }))
                },
                done: "Webhook added.",
                on_done: move |answer: Value| {
                    issued.set(Some(answer["addWebhook"].clone()));
                    url.set(String::new());
                    events.set(String::new());
                    refresh.call(answer);
                },
                {field("hook-url", "URL", url, "url", true)}
                {field("hook-events", "Event types (comma-separated; empty for every event)", events, "text", false)}
                div { class: "actions", button { r#type: "submit", "Add webhook" } }
            }
            if !ids.is_empty() {
                Mutation {
                    label: "New signing secret",
                    class: "filters",
                    query: ROTATE_SECRET,
                    variables: move |()| {
                        let id = rotating.peek().clone();
                        if id.is_empty() { Err("Choose a webhook.".to_owned()) } else { Ok(json!({ "id": id })) }
                    },
                    done: "A new secret signs that webhook's deliveries; the old one signs nothing more.",
                    on_done: move |answer: Value| issued.set(Some(answer["rotateWebhookSecret"].clone())),
                    div { class: "field",
                        label { r#for: "hook-rotate", "Webhook" }
                        select { id: "hook-rotate", value: "{rotating}", onchange: move |e| rotating.set(e.value()),
                            option { value: "", "Choose..." }
                            for id in ids {
                                option { value: "{id}", "{id}" }
                            }
                        }
                    }
                    div { class: "actions", button { r#type: "submit", "Issue a new secret" } }
                }
            }
        }
    }
}

/// The API keys (admins only): issued with their secret shown once, listed without it.
#[component]
fn ApiKeys(keys: Value, refresh: Callback<Value>) -> Element {
    let session = use_session();
    let said = use_signal(|| None::<String>);
    let mut name = use_signal(String::new);
    let mut role = use_signal(|| "VIEWER".to_owned());
    let mut issued = use_signal(|| None::<Value>);
    let rows = keys
        .as_array()
        .into_iter()
        .flatten()
        .map(|key| Row {
            id: text(&key["id"]),
            question: format!(
                "Revoke the key {}? Whatever uses it is refused from now on.",
                text(&key["name"])
            ),
            cells: vec![
                text(&key["name"]),
                text(&key["role"]),
                text(&key["id"]),
                when(&text(&key["createdAt"])),
            ],
        })
        .collect();
    rsx! {
        section { class: "card", "aria-labelledby": "keys-title",
            h2 { id: "keys-title", "API keys" }
            {listing(&["Name", "Role", "Id", "Created"], rows, "No API key in force.", Removal { label: "Revoke", query: REVOKE_KEY, session, refresh, said })}
            if let Some(key) = issued() {
                div { class: "secret", role: "status",
                    p { strong { "The secret of key {text(&key[\"id\"])} ({text(&key[\"role\"])}), shown this once:" } }
                    code { class: "id", "data-secret": "", "{text(&key[\"secret\"])}" }
                    p { class: "muted",
                        "Copy it now (select it, then Ctrl+C or ⌘C) into your secret store: it cannot be shown again. Scripts send it as Authorization: Bearer <secret>."
                    }
                    button { r#type: "button", class: "secondary", onclick: move |_| issued.set(None), "I have copied it" }
                }
            }
            Mutation {
                label: "Create an API key",
                class: "filters",
                query: CREATE_KEY,
                variables: move |()| Ok(json!({ "n": name.peek().trim(), "r": role.peek().clone() })),
                done: "API key created.",
                on_done: move |answer: Value| {
                    issued.set(Some(answer["createApiKey"].clone()));
                    name.set(String::new());
                    refresh.call(answer);
                },
                {field("key-name", "Name", name, "text", true)}
                div { class: "field",
                    label { r#for: "key-role", "Role" }
                    select { id: "key-role", value: "{role}", onchange: move |e| role.set(e.value()),
                        for r in ROLES {
                            option { value: "{r}", "{r}" }
                        }
                    }
                }
                div { class: "actions", button { r#type: "submit", "Create API key" } }
            }
        }
    }
}

/// The platform's limits: a form for admins, facts for everyone else.
#[component]
fn Config(config: Value, admin: bool) -> Element {
    let targets = use_signal(|| config["maxTargetsPerRun"].to_string());
    let duration = use_signal(|| config["maxDurationSecs"].to_string());
    let halted = if config["halted"].as_bool() == Some(true) {
        format!("halted: {}", text(&config["haltReason"]))
    } else {
        "allowed".to_owned()
    };
    rsx! {
        section { class: "card", "aria-labelledby": "config-title",
            h2 { id: "config-title", "System configuration" }
            if admin {
                Mutation {
                    label: "System configuration",
                    query: SAVE_CONFIG,
                    variables: move |()| {
                        let number = |s: Signal<String>| s.peek().trim().parse::<u32>().map_err(|_| "Both limits must be whole numbers.".to_owned());
                        Ok(json!({ "t": number(targets)?, "d": number(duration)? }))
                    },
                    done: "Configuration saved.",
                    {field("max-targets", "Most targets per run", targets, "number", false)}
                    {field("max-duration", "Longest run (seconds)", duration, "number", false)}
                    button { r#type: "submit", "Save configuration" }
                }
            } else {
                dl { class: "facts",
                    dt { "Most targets per run" }
                    dd { "{config[\"maxTargetsPerRun\"]}" }
                    dt { "Longest run" }
                    dd { "{config[\"maxDurationSecs\"]} s" }
                }
            }
            p { class: "muted", "Experiments are {halted}." }
        }
    }
}
