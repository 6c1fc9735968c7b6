//! The notice centre: the outcomes the user chose to be told of, as they happen while the
//! dashboard is open, behind a button in the header that counts the unseen ones.

use dioxus::prelude::*;
use web::route::Route;

use super::watch::use_watch;
use super::{Link, when};

/// The button and, when open, the list (opening it marks every notice seen).
#[component]
pub fn NoticeCentre() -> Element {
    let mut notices = use_watch().notices;
    let mut open = use_signal(|| false);
    let unseen = notices.read().iter().filter(|n| !n.seen).count();
    let shown = notices.read().clone();
    rsx! {
        div { class: "notices",
            button {
                r#type: "button",
                class: "secondary",
                "aria-expanded": open(),
                "aria-controls": "notice-list",
                onclick: move |_| {
                    let opening = !open();
                    open.set(opening);
                    if opening {
                        notices.with_mut(|n| n.iter_mut().for_each(|n| n.seen = true));
                    }
                },
                if unseen > 0 { "Notifications ({unseen})" } else { "Notifications" }
            }
            if open() {
                section { id: "notice-list", class: "notice-list", "aria-label": "Notifications",
                    if shown.is_empty() {
                        p { class: "muted",
                            "Nothing yet. While the dashboard is open, the outcomes chosen in Settings are told here as they happen."
                        }
                    }
                    ul {
                        for notice in shown {
                            li { key: "{notice.stream_id}-{notice.at}-{notice.announces}",
                                span { class: "status status-{notice.announces.to_ascii_lowercase()}", "{notice.announces}" }
                                " "
                                if notice.stream_type == "Experiment" {
                                    Link { to: Route::Experiment(notice.stream_id.clone()), "{notice.stream_id}" }
                                } else {
                                    "{notice.stream_id}"
                                }
                                ": {notice.summary} "
                                span { class: "muted", "{when(&notice.at)}" }
                            }
                        }
                    }
                }
            }
        }
    }
}
