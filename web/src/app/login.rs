//! Signing in: with this server's own accounts, or with its Cognito user pool, as the server's
//! `signInOptions` says.

use dioxus::prelude::*;
use web::route::Route;

use super::session::Method;
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
    // Asked while the form is filled in; a failure falls back to this server's own accounts.
    let method = use_resource(session::method);
    let submit = move |event: FormEvent| async move {
        event.prevent_default();
        if busy() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (name, secret) = (username.peek().clone(), password.peek().clone());
        let signed_in = match method.peek().as_ref() {
            Some(Ok(Method::Cognito(pool))) => session::login_cognito(pool, &name, &secret).await,
            _ => session::login(&name, &secret).await,
        };
        match signed_in {
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
    if let Some(Ok(Method::Nobody)) = &*method.read() {
        return rsx! {
            section { class: "card login", "aria-labelledby": "login-title",
                h1 { id: "login-title", "Sign in to the chaos platform" }
                p { role: "alert",
                    "No one signs in to this server with a password: it accepts API keys only (scripts and CI). Ask an administrator for the dashboard's address."
                }
            }
        };
    }
    let through_cognito = matches!(&*method.read(), Some(Ok(Method::Cognito(_))));
    rsx! {
        section { class: "card login", "aria-labelledby": "login-title",
            h1 { id: "login-title", "Sign in to the chaos platform" }
            if through_cognito {
                p { class: "muted", "With your account in the platform's Cognito user pool." }
            }
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
