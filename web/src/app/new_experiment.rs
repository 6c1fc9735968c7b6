//! Running an experiment: a form over every field of the spec (no JSON to write), that can
//! start from a saved template (`?template=<id>`) or an earlier run (`?from=<experiment id>`),
//! preview exactly which targets the run would hit, and start it now or schedule it. What the
//! API refuses is shown in the API's words.
//!
//! The preview is the API's `targets` query, a dry run of target selection for an experiment
//! id it returns: the experiment is then created with that id, so it hits exactly the targets
//! shown, as long as the form and the group are unchanged. A form changed after its preview
//! says the preview is stale and the run gets a fresh id.

use dioxus::prelude::*;
use serde_json::{Value, json};
use web::route::Route;
use web::spec::{Field, Flag, SpecForm};

use super::api::{ApiError, call, strings, use_api, use_task};
use super::halt::use_halt;
use super::session::Session;
use super::shown::utc;
use super::{Link, Problem, go, query_param, use_route, use_session};

const TEMPLATES: &str = "{ templates { id name spec } }";
const PREVIEW: &str =
    "query($spec: JSON!) { targets(spec: $spec) { experimentId target candidates wouldHit } }";
const CREATE: &str =
    "mutation($spec: JSON!, $id: ID) { createExperiment(spec: $spec, id: $id) { aggregateId } }";
const CREATE_FROM_TEMPLATE: &str = "mutation($template: ID!, $name: String, $id: ID) { \
    createExperimentFromTemplate(templateId: $template, name: $name, id: $id) { aggregateId } }";
const START: &str = "mutation($id: ID!) { startExperiment(id: $id) { version } }";
const SCHEDULE: &str =
    "mutation($id: ID!, $at: String!) { scheduleExperiment(id: $id, startAt: $at) { version } }";
const SAVE_TEMPLATE: &str =
    "mutation($name: String!, $spec: JSON!) { saveTemplate(name: $name, spec: $spec) { id name } }";
const EARLIER_RUN: &str = "query($id: ID!) { experiment(id: $id) { spec } }";

/// A preview of target selection, and the spec it was made for.
#[derive(Debug, Clone, PartialEq)]
struct Preview {
    spec: Value,
    experiment_id: String,
    target: String,
    candidates: Vec<String>,
    would_hit: Vec<String>,
}

impl Preview {
    /// A `targets` answer, for `spec`.
    fn of(spec: Value, found: &Value) -> Preview {
        let text = |field: &str| found[field].as_str().unwrap_or_default().to_owned();
        Preview {
            spec,
            experiment_id: text("experimentId"),
            target: text("target"),
            candidates: strings(&found["candidates"]),
            would_hit: strings(&found["wouldHit"]),
        }
    }
}

/// A saved template.
#[derive(Debug, Clone, PartialEq)]
struct Template {
    id: String,
    name: String,
    spec: Value,
}

/// The templates of a `templates` answer.
fn templates_of(data: &Value) -> Vec<Template> {
    data["templates"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| Template {
                    id: t["id"].as_str().unwrap_or_default().to_owned(),
                    name: t["name"].as_str().unwrap_or_default().to_owned(),
                    spec: t["spec"].clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `spec` without its name (a run from a template may be named afresh).
fn unnamed(mut spec: Value) -> Value {
    if let Some(fields) = spec.as_object_mut() {
        fields.remove("name");
    }
    spec
}

/// The form's state that its parts share: every one a signal, so the whole is `Copy`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RunForm {
    form: Signal<SpecForm>,
    /// What the API found wrong, at the fields of the form it came from.
    at_fields: Signal<Vec<(Field, String)>>,
    /// The template the form started from, if any.
    template: Signal<Option<Template>>,
    /// The last preview of target selection.
    preview: Signal<Option<Preview>>,
    /// Scheduled for `start_at` rather than started now.
    schedule: Signal<bool>,
    start_at: Signal<String>,
    /// A draft created before its start or schedule was refused (a halt that came between).
    draft: Signal<Option<String>>,
    error: Signal<Option<String>>,
    busy: Signal<bool>,
}

impl RunForm {
    fn new() -> RunForm {
        RunForm {
            form: Signal::new(SpecForm::default()),
            at_fields: Signal::new(Vec::new()),
            template: Signal::new(None),
            preview: Signal::new(None),
            schedule: Signal::new(false),
            start_at: Signal::new(String::new()),
            draft: Signal::new(None),
            error: Signal::new(None),
            busy: Signal::new(false),
        }
    }

    /// The form as a spec, or (said where the form says what is wrong) why it is not one.
    fn spec(mut self) -> Option<Value> {
        match self.form.peek().to_json() {
            Ok(spec) => Some(spec),
            Err(e) => {
                self.error.set(Some(e.to_string()));
                None
            }
        }
    }

    /// When a scheduled run starts (UTC), `None` to start now; or why it cannot be run.
    fn start_time(self, halted: bool) -> Result<Option<String>, String> {
        if !*self.schedule.peek() {
            if halted {
                return Err("Experiments are halted: nothing can start until the halt is lifted. Schedule the run for later, or start it once the halt is lifted.".to_owned());
            }
            return Ok(None);
        }
        match utc(&self.start_at.peek()) {
            Some(at) if js_sys::Date::parse(&at) > js_sys::Date::now() => Ok(Some(at)),
            Some(_) => {
                Err("Start at is in the past: choose a later time, or start now.".to_owned())
            }
            None => Err("Start at must be a date and a time.".to_owned()),
        }
    }

    /// Creates the experiment: from its template if the form is the template's (so the log
    /// says which), with the previewed id if the preview is of this very spec (so it hits the
    /// targets shown). Its id, or the refusal in the form's words.
    async fn create(
        self,
        session: Signal<Option<Session>>,
        spec: &Value,
    ) -> Result<String, String> {
        let id = self
            .preview
            .peek()
            .as_ref()
            .filter(|p| &p.spec == spec)
            .map(|p| p.experiment_id.clone());
        let from_template = self
            .template
            .peek()
            .as_ref()
            .filter(|t| unnamed(t.spec.clone()) == unnamed(spec.clone()))
            .map(|t| t.id.clone());
        let created = match from_template {
            Some(template) => call(
                session,
                CREATE_FROM_TEMPLATE,
                json!({ "template": template, "name": spec["name"], "id": id }),
            )
            .await
            .map(|data| data["createExperimentFromTemplate"]["aggregateId"].clone()),
            None => call(session, CREATE, json!({ "spec": spec, "id": id }))
                .await
                .map(|data| data["createExperiment"]["aggregateId"].clone()),
        };
        match created {
            Ok(id) => Ok(id.as_str().unwrap_or_default().to_owned()),
            Err(e) => Err(placed(&e, &self.form.peek(), self.at_fields)),
        }
    }

    /// Creates the experiment and starts or schedules it, then opens it; what went wrong is
    /// said above the buttons (a draft left by a refused start is linked there).
    async fn submit(
        mut self,
        session: Signal<Option<Session>>,
        route: Signal<Route>,
        halted: bool,
    ) {
        if *self.busy.peek() {
            return;
        }
        let Some(spec) = self.spec() else {
            return;
        };
        // Checked before anything is created: a refused start or schedule leaves no draft.
        self.at_fields.set(Vec::new());
        self.draft.set(None);
        let at = match self.start_time(halted) {
            Ok(at) => at,
            Err(message) => {
                self.error.set(Some(message));
                return;
            }
        };
        self.busy.set(true);
        self.error.set(None);
        let id = match self.create(session, &spec).await {
            Ok(id) => id,
            Err(message) => {
                self.error.set(Some(message));
                self.busy.set(false);
                return;
            }
        };
        let launched = match &at {
            Some(at) => call(session, SCHEDULE, json!({ "id": id, "at": at })).await,
            None => call(session, START, json!({ "id": id })).await,
        };
        self.busy.set(false);
        match launched {
            Ok(_) => go(route, Route::Experiment(id)),
            Err(e) => {
                let what = if at.is_some() { "scheduled" } else { "started" };
                self.error.set(Some(format!(
                    "Created as a draft, but not {what}: {}",
                    e.message
                )));
                self.draft.set(Some(id));
            }
        }
    }
}

/// The form.
#[component]
pub fn NewExperiment() -> Element {
    let session = use_session();
    let route = use_route();
    let halt = use_halt();
    let run = use_hook(RunForm::new);
    let RunForm {
        mut form,
        mut template,
        mut error,
        ..
    } = run;
    use_context_provider(|| FieldProblems(run.at_fields));
    let templates = use_api(move || Box::pin(call(session, TEMPLATES, json!({}))));
    // `?template=<id>`: the form starts from that template once the templates are read.
    let mut wanted_template = use_signal(|| query_param("template"));
    use_effect(move || {
        let Some(wanted) = wanted_template() else {
            return;
        };
        if let Some(Ok(data)) = &*templates.read() {
            if let Some(t) = templates_of(data).into_iter().find(|t| t.id == wanted) {
                form.set(SpecForm::from_json(&t.spec));
                template.set(Some(t));
            } else {
                error.set(Some(format!("There is no template {wanted}.")));
            }
            wanted_template.set(None);
        }
    });
    // `?from=<id>`, run again: the form starts as an earlier experiment was.
    use_task(move || {
        Box::pin(async move {
            let Some(id) = query_param("from") else {
                return;
            };
            match call(session, EARLIER_RUN, json!({ "id": id })).await {
                Ok(data) if data["experiment"]["spec"].is_object() => {
                    form.set(SpecForm::from_json(&data["experiment"]["spec"]));
                }
                Ok(_) => error.set(Some(format!("There is no experiment {id} to run again."))),
                Err(e) => error.set(Some(e.message)),
            }
        })
    });
    if !session.read().as_ref().is_some_and(|s| s.can_run()) {
        return rsx! { p { class: "problem", role: "alert", "Your role may not run experiments." } };
    }
    let submit = move |event: FormEvent| async move {
        event.prevent_default();
        run.submit(session, route, halt.peek().is_some()).await;
    };
    rsx! {
        div { class: "page-head", h1 { "Run an experiment" } }
        form { class: "run", onsubmit: submit, "aria-describedby": "run-help",
            p { id: "run-help", class: "muted",
                "An experiment injects a failure into targets of a group, watches the group's health and records how long it takes to recover. Its guardrails stop it early."
            }
            What { run, templates }
            Targets { run }
            Guardrails { form }
            When { run, templates }
        }
    }
}

/// What the run does: from a template, its name, hypothesis and failure.
#[component]
fn What(run: RunForm, templates: Resource<Result<Value, ApiError>>) -> Element {
    let RunForm {
        mut form,
        mut template,
        ..
    } = run;
    let loaded = templates
        .read()
        .as_ref()
        .map(|answer| answer.as_ref().map(templates_of).map_err(Clone::clone));
    let paused = form.read().failure == "PAUSE";
    rsx! {
        section { class: "card",
            h2 { "What" }
            label { r#for: "template", "Start from a template" }
            match loaded {
                None => rsx! { p { class: "muted", role: "status", "Loading the templates…" } },
                Some(Err(e)) => rsx! { Problem { message: format!("The templates cannot be read: {}", e.message), retry: move |()| templates.restart() } },
                Some(Ok(list)) => {
                    let choices = list.clone();
                    rsx! {
                    select {
                        id: "template",
                        value: template.read().as_ref().map(|t| t.id.clone()).unwrap_or_default(),
                        onchange: move |e| {
                            let chosen = choices.iter().find(|t| t.id == e.value()).cloned();
                            if let Some(t) = &chosen {
                                form.set(SpecForm::from_json(&t.spec));
                            }
                            template.set(chosen);
                        },
                        option { value: "", if list.is_empty() { "No template saved yet" } else { "None: start from scratch" } }
                        for t in list.iter() {
                            option { key: "{t.id}", value: "{t.id}", "{t.name}" }
                        }
                    }
                    }
                }
            }
            Text { form, field: Field::Name, id: "name", label: "Name" }
            Text { form, field: Field::Description, id: "description", label: "Hypothesis (optional)", optional: true }
            Choice { form, field: Field::Failure, id: "failure", label: "Failure", options: FAILURES }
            if paused {
                Text { form, field: Field::PauseSecs, id: "pause", label: "Pause for (seconds)", number: true }
            }
        }
    }
}

/// Which targets: the group, the selection, the blast radius, and a preview of exactly what
/// the run would hit.
#[component]
fn Targets(run: RunForm) -> Element {
    let session = use_session();
    let RunForm {
        form,
        mut preview,
        at_fields,
        ..
    } = run;
    let mut previewing = use_signal(|| false);
    let mut preview_error = use_signal(|| None::<String>);
    let run_preview = move |_| async move {
        let spec = match form.peek().to_json() {
            Ok(spec) => spec,
            Err(e) => {
                preview_error.set(Some(e.to_string()));
                return;
            }
        };
        previewing.set(true);
        preview_error.set(None);
        match call(session, PREVIEW, json!({ "spec": spec })).await {
            Ok(data) => preview.set(Some(Preview::of(spec, &data["targets"]))),
            Err(e) => {
                preview.set(None);
                preview_error.set(Some(placed(&e, &form.peek(), at_fields)));
            }
        }
        previewing.set(false);
    };
    let f = form.read().clone();
    let count_label = if f.selection_mode == "PERCENT" {
        "Percent of the group"
    } else {
        "How many workers"
    };
    // A preview of another spec than the form's is stale.
    let stale = preview
        .read()
        .as_ref()
        .map(|p| f.to_json().map_or(true, |spec| p.spec != spec));
    rsx! {
        section { class: "card", "aria-labelledby": "targets-title",
            h2 { id: "targets-title", "Targets" }
            div { class: "row",
                div { Choice { form, field: Field::TargetKind, id: "kind", label: "Kind of target", options: KINDS } }
                div { Text { form, field: Field::Group, id: "group", label: "Target group" } }
            }
            div { class: "row",
                div { Choice { form, field: Field::SelectionMode, id: "mode", label: "Choose workers by", options: MODES } }
                if f.selection_mode != "ALL" {
                    div { Text { form, field: Field::SelectionValue, id: "count", label: count_label, number: true } }
                }
                div { Text { form, field: Field::MaxTargets, id: "max-targets", label: "Never more than (targets)", number: true } }
            }
            p { class: "muted", "The blast radius: the run never hits more targets than this, whatever the selection matches." }
            div { class: "preview",
                button { r#type: "button", class: "secondary", disabled: previewing(), onclick: run_preview,
                    if previewing() { "Looking…" } else { "Preview targets" }
                }
                if let Some(message) = preview_error() {
                    div { class: "problem", role: "alert", "{message}" }
                }
                if let (Some(p), Some(stale)) = (preview(), stale) {
                    PreviewResult { preview: p, stale }
                }
            }
        }
    }
}

/// A preview of target selection: what is in service, and what the run would hit.
#[component]
fn PreviewResult(preview: Preview, stale: bool) -> Element {
    let p = preview;
    rsx! {
        div { class: if stale { "preview-result stale" } else { "preview-result" }, role: "region", "aria-label": "Target preview",
            if stale {
                p { class: "warn", role: "status", "The form changed after this preview: preview again to see what the run would hit." }
            }
            p {
                "{p.target}: {p.candidates.len()} in service; this run would hit {p.would_hit.len()}."
            }
            if p.candidates.is_empty() {
                p { class: "muted empty", "Nothing is in service in this group." }
            }
            ul { class: "targets",
                for c in p.candidates.iter() {
                    li { key: "{c}", class: if p.would_hit.contains(c) { "hit" } else { "" }, "data-hit": "{p.would_hit.contains(c)}",
                        code { "{c}" }
                        if p.would_hit.contains(c) { span { class: "tag", "would be hit" } }
                    }
                }
            }
        }
    }
}

/// What stops the run early, and how recovery is watched.
#[component]
fn Guardrails(form: Signal<SpecForm>) -> Element {
    let stop_on_error_rate = form.read().stop_on_error_rate;
    rsx! {
        section { class: "card", "aria-labelledby": "guardrails-title",
            h2 { id: "guardrails-title", "Guardrails" }
            Check { form, flag: Flag::StopOnErrorRate, id: "stop-on-errors", label: "Stop when the error rate passes a limit" }
            if stop_on_error_rate {
                Text { form, field: Field::MaxErrorRate, id: "error-rate", label: "Error rate limit (%)", number: true }
            }
            Text { form, field: Field::Alarms, id: "alarms", label: "Alarms that stop the run (names, comma-separated)", optional: true }
            Text { form, field: Field::MaxDurationSecs, id: "max-duration", label: "Longest run (seconds)", number: true }
            details {
                summary { "Recovery timing" }
                Text { form, field: Field::RecoveryTimeoutSecs, id: "recovery-timeout", label: "Recovery timeout (seconds)", number: true }
                Text { form, field: Field::PollIntervalSecs, id: "poll", label: "Sample health every (seconds)", number: true }
                Text { form, field: Field::BaselineSamples, id: "baseline", label: "Baseline samples", number: true }
            }
        }
    }
}

/// When it runs: a dry run or not, now or at a time; what went wrong; the buttons.
#[component]
fn When(run: RunForm, templates: Resource<Result<Value, ApiError>>) -> Element {
    let halt = use_halt();
    let RunForm {
        form,
        mut schedule,
        mut start_at,
        error,
        draft,
        busy,
        ..
    } = run;
    let halted_now = halt().is_some() && !schedule();
    rsx! {
        section { class: "card", "aria-labelledby": "when-title",
            h2 { id: "when-title", "When" }
            Check { form, flag: Flag::DryRun, id: "dry-run", label: "Dry run (only resolve the targets, touch nothing)" }
            fieldset {
                legend { "Start" }
                div { class: "check",
                    input { id: "start-now", r#type: "radio", name: "when", checked: !schedule(), onchange: move |_| schedule.set(false) }
                    label { r#for: "start-now", "Now" }
                }
                div { class: "check",
                    input { id: "start-later", r#type: "radio", name: "when", checked: schedule(), onchange: move |_| schedule.set(true) }
                    label { r#for: "start-later", "At a time" }
                }
                if schedule() {
                    label { r#for: "start-at", "Start at (your local time)" }
                    input { id: "start-at", r#type: "datetime-local", required: true, value: "{start_at}", oninput: move |e| start_at.set(e.value()) }
                }
            }
            if let Some(message) = error() {
                div { class: "problem", role: "alert",
                    "{message}"
                    if let Some(id) = draft() {
                        " "
                        Link { to: Route::Experiment(id), "Open the draft" }
                    }
                }
            }
            if halted_now {
                p { class: "warn", role: "status", "Experiments are halted: a run can be scheduled for later, not started now." }
            }
            div { class: "actions",
                button { r#type: "submit", disabled: busy() || halted_now,
                    if busy() { "Working…" } else if schedule() { "Create and schedule" } else { "Create and start" }
                }
            }
            SaveTemplate { run, templates }
        }
    }
}

/// Saving the form as a template.
#[component]
fn SaveTemplate(run: RunForm, templates: Resource<Result<Value, ApiError>>) -> Element {
    let session = use_session();
    let mut template_name = use_signal(String::new);
    let mut saved = use_signal(|| None::<String>);
    let mut error = run.error;
    let save = move |_| async move {
        let Some(spec) = run.spec() else {
            return;
        };
        let name = template_name.peek().trim().to_owned();
        match call(
            session,
            SAVE_TEMPLATE,
            json!({ "name": name, "spec": spec }),
        )
        .await
        {
            Ok(data) => {
                error.set(None);
                saved.set(Some(format!(
                    "Saved the template “{}”.",
                    data["saveTemplate"]["name"].as_str().unwrap_or(&name)
                )));
                let mut templates = templates;
                templates.restart();
            }
            Err(e) => {
                saved.set(None);
                error.set(Some(format!("The template was not saved: {}", e.message)));
            }
        }
    };
    rsx! {
        details { class: "save-template",
            summary { "Save this form as a template" }
            label { r#for: "template-name", "Template name" }
            input { id: "template-name", value: "{template_name}", oninput: move |e| template_name.set(e.value()) }
            button { r#type: "button", class: "secondary", onclick: save, "Save as template" }
            if let Some(message) = saved() {
                p { class: "ok", role: "status", "{message}" }
            }
        }
    }
}

const FAILURES: &[(&str, &str)] = &[
    ("TERMINATE", "Terminate (kill the worker)"),
    ("PAUSE", "Pause (stop the process for a while)"),
];
const KINDS: &[(&str, &str)] = &[
    ("LOCAL_FLEET", "Demo fleet (local workers)"),
    ("AUTO_SCALING_GROUP", "EC2 Auto Scaling group"),
];
const MODES: &[(&str, &str)] = &[
    ("COUNT", "Count"),
    ("PERCENT", "Percent of the group"),
    ("ALL", "All of the group"),
];

/// What the API found wrong with the form, by field (the run form provides it).
#[derive(Debug, Clone, Copy)]
struct FieldProblems(Signal<Vec<(Field, String)>>);

/// What is wrong with `field`, as the API said (its problems, one after another).
fn problem_at(field: Field) -> Option<String> {
    let FieldProblems(problems) = try_use_context::<FieldProblems>()?;
    let said: Vec<String> = problems
        .read()
        .iter()
        .filter(|(f, _)| *f == field)
        .map(|(_, message)| message.clone())
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

/// The words of a refusal for the form: each problem the API named goes to its field (shown
/// there); what fits no field, and the refusal itself, is what the form says above its
/// buttons.
fn placed(e: &ApiError, form: &SpecForm, mut at_fields: Signal<Vec<(Field, String)>>) -> String {
    let mut placed = Vec::new();
    let mut elsewhere = Vec::new();
    for (path, message) in &e.problems {
        match form.field_of(path) {
            Some(field) => placed.push((field, message.clone())),
            None => elsewhere.push(format!("{path}: {message}")),
        }
    }
    let marked = placed.len();
    at_fields.set(placed);
    match (marked, elsewhere.is_empty()) {
        (0, _) => e.message.clone(),
        (n, true) => format!(
            "Not accepted: {n} {} marked above.",
            if n == 1 { "field is" } else { "fields are" }
        ),
        (n, false) => format!(
            "Not accepted: {n} marked above, and {}",
            elsewhere.join("; ")
        ),
    }
}

/// A labelled text or number input bound to one field of the form, with what the API found
/// wrong with it. (One component for every field keeps the bundle small: each distinct
/// handler is code of its own.)
#[component]
fn Text(
    form: Signal<SpecForm>,
    field: Field,
    id: &'static str,
    label: &'static str,
    #[props(default)] number: bool,
    #[props(default)] optional: bool,
) -> Element {
    let value = form.read().text(field).to_owned();
    let problem = problem_at(field);
    let invalid = problem.is_some();
    rsx! {
        label { r#for: id, "{label}" }
        input {
            id,
            r#type: if number { "number" } else { "text" },
            min: if number { "0" } else { "" },
            required: !optional,
            "aria-invalid": invalid,
            "aria-describedby": if invalid { "{id}-problem" } else { "" },
            value,
            oninput: move |e| form.write().set(field, e.value()),
        }
        if let Some(problem) = problem {
            p { class: "field-problem", id: "{id}-problem", "{problem}" }
        }
    }
}

/// A labelled choice among `options` (value, label) bound to one field of the form.
#[component]
fn Choice(
    form: Signal<SpecForm>,
    field: Field,
    id: &'static str,
    label: &'static str,
    options: &'static [(&'static str, &'static str)],
) -> Element {
    let value = form.read().text(field).to_owned();
    let problem = problem_at(field);
    let invalid = problem.is_some();
    rsx! {
        label { r#for: id, "{label}" }
        select {
            id,
            value,
            "aria-invalid": invalid,
            "aria-describedby": if invalid { "{id}-problem" } else { "" },
            onchange: move |e| form.write().set(field, e.value()),
            for (value, text) in options.iter() {
                option { key: "{value}", value: *value, "{text}" }
            }
        }
        if let Some(problem) = problem {
            p { class: "field-problem", id: "{id}-problem", "{problem}" }
        }
    }
}

/// A labelled checkbox bound to one flag of the form.
#[component]
fn Check(form: Signal<SpecForm>, flag: Flag, id: &'static str, label: &'static str) -> Element {
    let checked = form.read().flag(flag);
    rsx! {
        div { class: "check",
            input { id, r#type: "checkbox", checked, onchange: move |e| form.write().set_flag(flag, e.checked()) }
            label { r#for: id, "{label}" }
        }
    }
}
