//! The platform's activity as every page hears it: one subscription for the whole dashboard,
//! which tells the halt banner when the switch moves and keeps the notices of the outcomes the
//! user chose to be told of (Settings, "Tell me in the dashboard when").

use dioxus::prelude::*;
use serde_json::json;

use super::api::{Completes, Live, live, use_task};
use super::shown::SHOWN;
use super::use_session;

const ACTIVITY: &str = "subscription($after: String) { platformActivity(after: $after) { \
    position streamType streamId eventType summary at announces } }";

/// Notices kept, newest first.
const KEPT: usize = 50;

/// One outcome the user asked to be told of.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// `FAILED`, `NOT_RECOVERED`, `HALTED`, ...
    pub announces: String,
    /// `Experiment` or `Platform`.
    pub stream_type: String,
    /// The experiment (or platform stream).
    pub stream_id: String,
    /// What happened, in words.
    pub summary: String,
    /// When (RFC 3339).
    pub at: String,
    /// Whether the user has seen it.
    pub seen: bool,
}

/// What the watch tells the pages.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// Counts the moves of the halt switch (and reconnections, after which it may have moved).
    pub halt_moved: Signal<u64>,
    /// The notices, newest first.
    pub notices: Signal<Vec<Notice>>,
}

/// The watch of the signed-in dashboard.
pub fn use_watch() -> Watch {
    use_context()
}

/// Follows the platform's activity while someone is signed in (it shows nothing itself).
#[component]
pub fn PlatformWatch() -> Element {
    let session = use_session();
    let Watch {
        mut halt_moved,
        mut notices,
    } = use_watch();
    let status = use_signal(|| Live::Connecting);
    // Where the log was when last heard: a reconnection resumes after it, so nothing that
    // happened while the socket was down is missed (embedded; on AWS the log has no global
    // position, and a reconnection hears what comes next).
    let mut position = use_signal(|| None::<String>);
    use_task(move || {
        Box::pin(async move {
            live(
                session,
                ACTIVITY,
                // The switch may have moved while disconnected: read it again.
                move || {
                    halt_moved += 1;
                    json!({ "after": position.peek().clone() })
                },
                move |data| {
                    let update = &data["platformActivity"];
                    if let Some(at) = update["position"].as_str() {
                        position.set(Some(at.to_owned()));
                    }
                    let text = |field: &str| update[field].as_str().unwrap_or_default().to_owned();
                    if matches!(
                        update["eventType"].as_str(),
                        Some("PlatformHalted" | "HaltLifted")
                    ) {
                        halt_moved += 1;
                    }
                    let wanted = update["announces"]
                        .as_str()
                        .is_some_and(|kind| SHOWN.peek().notify_on.iter().any(|n| n == kind));
                    if wanted {
                        notices.with_mut(|kept| {
                            kept.insert(
                                0,
                                Notice {
                                    announces: text("announces"),
                                    stream_type: text("streamType"),
                                    stream_id: text("streamId"),
                                    summary: text("summary"),
                                    at: text("at"),
                                    seen: false,
                                },
                            );
                            kept.truncate(KEPT);
                        });
                    }
                    false
                },
                Completes::Resume,
                status,
            )
            .await;
        })
    });
    rsx! {}
}
