//! The dashboard's components: the app shell (routing, session, navigation) and its pages.

// rsx! expands every event handler into a fully qualified path, which this lint reports.
#![allow(unused_qualifications)]

mod api;
mod audit;
mod experiment;
mod experiments;
mod halt;
mod home;
mod login;
mod new_experiment;
mod notices;
mod results;
mod session;
mod settings;
mod shown;
mod watch;

use dioxus::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web::route::Route;

use session::Session;
pub use shown::when;

/// The page this tab is on, as its address says.
fn current_route() -> Route {
    let path = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_default();
    Route::parse(&path)
}

/// Goes to `to`: a new history entry and the page it names.
pub fn go(mut route: Signal<Route>, to: Route) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&to.path()));
    }
    route.set(to);
}

/// Goes to `to` with `query` (`from=<id>`) in its address, for a page that reads it.
pub fn go_with_query(mut route: Signal<Route>, to: Route, query: &str) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let url = format!("{}?{query}", to.path());
        let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
    route.set(to);
}

/// Parameter `name` of the page's address (`?name=value`), decoded; none when it is absent or
/// empty.
pub fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let prefix = format!("{name}=");
    let raw = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix(prefix.as_str()))?;
    let decoded = js_sys::decode_uri_component(&raw.replace('+', " ")).ok()?;
    Some(String::from(decoded)).filter(|value| !value.is_empty())
}

/// Keeps `params` (those that are not empty) in the page's address, in place of the current
/// history entry: a reload, or Back to this page, finds them again.
pub fn keep_in_address(params: &[(&str, &str)]) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let path = window.location().pathname().unwrap_or_default();
    let query: Vec<String> = params
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", js_sys::encode_uri_component(value)))
        .collect();
    let url = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

/// The signed-in session, shared by every page.
pub fn use_session() -> Signal<Option<Session>> {
    use_context()
}

/// The page shown, shared by every page.
pub fn use_route() -> Signal<Route> {
    use_context()
}

/// The dashboard.
#[component]
pub fn App() -> Element {
    let mut route = use_signal(current_route);
    let session = use_signal(session::restore);
    use_context_provider(|| route);
    use_context_provider(|| session);
    let halt = use_signal(|| None::<String>);
    use_context_provider(|| halt::Halt(halt));
    let halt_moved = use_signal(|| 0_u64);
    let notices = use_signal(Vec::new);
    use_context_provider(|| watch::Watch {
        halt_moved,
        notices,
    });
    // Back and forward buttons.
    use_hook(|| {
        let on_pop = Closure::<dyn FnMut()>::new(move || route.set(current_route()));
        if let Some(window) = web_sys::window() {
            let _ = window
                .add_event_listener_with_callback("popstate", on_pop.as_ref().unchecked_ref());
        }
        on_pop.forget();
    });
    api::use_task(move || Box::pin(session::keep_fresh(session)));
    shown::use_preferences(session);
    let page = route();
    use_effect(move || {
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            document.set_title(&route.read().title());
        }
    });
    let signed_in = session.read().clone();
    let Some(user) = signed_in else {
        return rsx! {
            main { id: "content", class: "narrow", login::Login {} }
        };
    };
    rsx! {
        a { class: "skip", href: "#content", "Skip to content" }
        header { class: "top",
            nav { "aria-label": "Main",
                span { class: "brand", "Chaos platform" }
                Link { to: Route::Home, current: page == Route::Home, "Home" }
                Link { to: Route::Experiments, current: matches!(page, Route::Experiments | Route::Experiment(_)), "Experiments" }
                Link { to: Route::Results, current: page == Route::Results, "Results" }
                if user.can_run() {
                    Link { to: Route::NewExperiment, current: page == Route::NewExperiment, "Run an experiment" }
                }
                Link { to: Route::Audit, current: page == Route::Audit, "Audit log" }
                Link { to: Route::Settings, current: page == Route::Settings, "Settings" }
            }
            div { class: "who",
                notices::NoticeCentre {}
                span { "{user.user} ({user.role})" }
                button {
                    r#type: "button",
                    class: "secondary",
                    onclick: move |_| async move {
                        session::logout(session).await;
                        go(route, Route::Login);
                    },
                    if user.pool.is_some() { "Sign out everywhere" } else { "Sign out" }
                }
            }
        }
        watch::PlatformWatch {}
        halt::HaltBanner {}
        main { id: "content", tabindex: "-1",
            match page {
                Route::Home | Route::Login => rsx! { home::Home {} },
                Route::Experiments => rsx! { experiments::Experiments {} },
                Route::NewExperiment => rsx! { new_experiment::NewExperiment {} },
                Route::Experiment(id) => rsx! { experiment::Experiment { key: "{id}", id: id.clone() } },
                Route::Results => rsx! { results::Results {} },
                Route::Audit => rsx! { audit::Audit {} },
                Route::Settings => rsx! { settings::Settings {} },
            }
        }
    }
}

/// A link to a page of the app, followed without reloading it.
#[component]
pub fn Link(
    to: Route,
    #[props(default)] current: bool,
    #[props(default)] class: String,
    children: Element,
) -> Element {
    let route = use_route();
    let href = to.path();
    rsx! {
        a {
            href: "{href}",
            class: "{class}",
            "aria-current": if current { "page" } else { "false" },
            onclick: move |event: MouseEvent| {
                event.prevent_default();
                go(route, to.clone());
            },
            {children}
        }
    }
}

/// Previous and next buttons over cursor pages: `cursor` is this page's (none: the first),
/// `before` the cursors of the pages before it, `next` the next page's, if there is one.
#[component]
pub fn Pager(
    before: Signal<Vec<Option<String>>>,
    cursor: Signal<Option<String>>,
    next: Option<String>,
) -> Element {
    let first_page = before.read().is_empty();
    let last_page = next.is_none();
    rsx! {
        nav { class: "pager", "aria-label": "Pages",
            button {
                r#type: "button",
                class: "secondary",
                disabled: first_page,
                onclick: move |_| {
                    let previous = before.with_mut(|b| b.pop()).flatten();
                    cursor.set(previous);
                },
                "Previous page"
            }
            button {
                r#type: "button",
                class: "secondary",
                disabled: last_page,
                onclick: move |_| {
                    if let Some(next) = next.clone() {
                        let this = cursor.peek().clone();
                        before.with_mut(|b| b.push(this));
                        cursor.set(Some(next));
                    }
                },
                "Next page"
            }
        }
    }
}

/// The state of a page's live updates, announced politely to screen readers.
#[component]
pub fn LiveBadge(status: Signal<api::Live>) -> Element {
    let (class, text) = match &*status.read() {
        api::Live::Connecting => ("badge", "Connecting…".to_owned()),
        api::Live::Receiving => ("badge ok", "Live".to_owned()),
        api::Live::Retrying(why) => ("badge warn", format!("Disconnected: {why}")),
        api::Live::Ended => ("badge", "Finished".to_owned()),
    };
    rsx! {
        span { class: "{class}", role: "status", "aria-live": "polite", "data-live": "{text}", "{text}" }
    }
}

/// A status as a coloured label (the text says it; the colour only repeats it).
#[component]
pub fn Status(status: String) -> Element {
    let class = format!("status status-{}", status.to_ascii_lowercase());
    rsx! { span { class: "{class}", "{status}" } }
}

/// An error with what to do about it.
#[component]
pub fn Problem(message: String, retry: Option<EventHandler<()>>) -> Element {
    rsx! {
        div { class: "problem", role: "alert",
            p { "{message}" }
            if let Some(retry) = retry {
                button { r#type: "button", onclick: move |_| retry.call(()), "Try again" }
            }
        }
    }
}
