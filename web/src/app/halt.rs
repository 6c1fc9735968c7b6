//! The halt switch as every page sees it: read when the page signs in and again whenever the
//! platform watch hears it move, shown as a banner above each page, and read by the forms that
//! start runs.

use dioxus::prelude::*;
use serde_json::json;

use super::api::{call, use_api};
use super::use_session;
use super::watch::use_watch;

const STATE: &str = "{ health { halted haltReason } }";

/// Why experiments are halted, while they are (`None` while they may run).
#[derive(Debug, Clone, Copy)]
pub struct Halt(pub Signal<Option<String>>);

/// The halt switch, as the banner last read it.
pub fn use_halt() -> Signal<Option<String>> {
    use_context::<Halt>().0
}

/// The banner: nothing while experiments may run; while halted, why, and that nothing starts.
#[component]
pub fn HaltBanner() -> Element {
    let session = use_session();
    let mut halt = use_halt();
    let moved = use_watch().halt_moved;
    let state = use_api(move || {
        moved();
        Box::pin(call(session, STATE, json!({})))
    });
    use_effect(move || {
        if let Some(Ok(data)) = &*state.read() {
            let health = &data["health"];
            let halted = health["halted"].as_bool().unwrap_or(false);
            let reason = health["haltReason"].as_str().unwrap_or_default().to_owned();
            halt.set(halted.then_some(reason));
        }
    });
    let shown = halt.read().clone();
    rsx! {
        if let Some(reason) = shown {
            div { class: "halt-banner", role: "alert",
                strong { "Experiments are halted" }
                if !reason.is_empty() { ": {reason}" }
                ". Running experiments were stopped and rolled back; none can start until an administrator lifts the halt on the home page."
            }
        }
    }
}
