//! Signing in with a user of the embedded identity provider.

use dioxus::prelude::*;
use web::route::Route;

use super::{go, session, use_route, use_session};

/// The sign-in form.
#[component]
pub fn Login() -> Element {
    let mut session = use_session();
    let route = use_route();
    let mut username = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let submit = move |event: FormEvent| async move {
        event.prevent_default();
        if busy() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (name, secret) = (username.peek().clone(), password.peek().clone());
        match session::login(&name, &secret).await {
            Ok(signed_in) => {
                password.set(String::new());
                session.set(Some(signed_in));
                if *route.peek() == Route::Login {
                    go(route, Route::Home);
                }
            }
            Err(e) if e.code == "UNAUTHENTICATED" => {
                error.set(Some("Wrong user name or password.".to_owned()));
            }
            Err(e) => error.set(Some(e.message)),
        }
        busy.set(false);
    };
    rsx! {
        section { class: "card login", "aria-labelledby": "login-title",
            h1 { id: "login-title", "Sign in to the chaos platform" }
            form { onsubmit: submit,
                label { r#for: "username", "User name" }
                input {
                    id: "username",
                    name: "username",
                    autocomplete: "username",
                    required: true,
                    autofocus: true,
                    value: "{username}",
                    oninput: move |e| username.set(e.value()),
                }
                label { r#for: "password", "Password" }
                input {
                    id: "password",
                    name: "password",
                    r#type: "password",
                    autocomplete: "current-password",
                    required: true,
                    value: "{password}",
                    oninput: move |e| password.set(e.value()),
                }
                if let Some(message) = error() {
                    p { class: "problem", role: "alert", "{message}" }
                }
                button { r#type: "submit", disabled: busy(), if busy() { "Signing in…" } else { "Sign in" } }
            }
        }
    }
}
