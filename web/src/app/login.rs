//! Signing in: with this server's own accounts, or with its Cognito user pool, as the server's
//! `signInOptions` says. Cognito may ask for more on the way, each answered on a form of its
//! own: a new password at a first sign-in (an administrator set a temporary one), a code from
//! an authenticator app or a text message, or an authenticator app to set up. A server with
//! no user yet offers to create its first administrator instead, with the one-time code it
//! printed in its console (the link it printed fills it in).

use dioxus::prelude::*;
use web::route::Route;

use super::api::ApiError;
use super::session::{Ask, Challenge, Method, Step};
use super::{go, session, use_route, use_session};

/// The sign-in form, or what Cognito asks next.
#[component]
pub fn Login() -> Element {
    let mut session = use_session();
    let route = use_route();
    let mut username = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut challenge = use_signal(|| None::<Challenge>);
    // Asked while the form is filled in; a failure falls back to this server's own accounts.
    let method = use_resource(session::method);
    let mut signed_in = move |signed_in| {
        password.set(String::new());
        challenge.set(None);
        session.set(Some(signed_in));
        if *route.peek() == Route::Login {
            go(route, Route::Home);
        }
    };
    let submit = move |event: FormEvent| async move {
        event.prevent_default();
        if busy() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (name, secret) = (username.peek().clone(), password.peek().clone());
        let step = match method.peek().as_ref() {
            Some(Ok(Method::Cognito(pool))) => session::login_cognito(pool, &name, &secret).await,
            _ => session::login(&name, &secret).await.map(Step::Done),
        };
        match step {
            Ok(Step::Done(done)) => signed_in(done),
            Ok(Step::Asks(next)) => {
                password.set(String::new());
                challenge.set(Some(next));
            }
            Err(e) if e.code == "UNAUTHENTICATED" => {
                error.set(Some("Wrong user name or password.".to_owned()));
            }
            Err(e) => error.set(Some(e.message)),
        }
        busy.set(false);
    };
    if let Some(Ok(Method::FirstAdmin)) = &*method.read() {
        return rsx! {
            FirstAdminForm { on_done: signed_in }
        };
    }
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
    if let Some(asked) = challenge() {
        let on_answer = move |outcome: Result<Step, ApiError>| match outcome {
            Ok(Step::Done(done)) => signed_in(done),
            Ok(Step::Asks(next)) => challenge.set(Some(next)),
            Err(e) => error.set(Some(e.message)),
        };
        return rsx! {
            Answer {
                challenge: asked,
                error,
                on_answer,
                on_cancel: move |()| {
                    challenge.set(None);
                    error.set(None);
                },
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

/// The form that creates a server's first administrator with its one-time code.
#[component]
fn FirstAdminForm(on_done: EventHandler<session::Session>) -> Element {
    let mut code = use_signal(|| session::first_admin_code().unwrap_or_default());
    let mut username = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut repeated = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let submit = move |event: FormEvent| async move {
        event.prevent_default();
        if busy() {
            return;
        }
        if *password.peek() != *repeated.peek() {
            error.set(Some("The two passwords differ.".to_owned()));
            return;
        }
        busy.set(true);
        error.set(None);
        let (c, u, p) = (
            code.peek().trim().to_owned(),
            username.peek().trim().to_owned(),
            password.peek().clone(),
        );
        match session::set_up_first_admin(&c, &u, &p).await {
            Ok(done) => {
                // The code is used: out of the address bar and the history with it.
                if let Some(window) = web_sys::window()
                    && let (Ok(history), Ok(path)) = (window.history(), window.location().pathname())
                {
                    let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
                }
                password.set(String::new());
                repeated.set(String::new());
                on_done.call(done);
            }
            Err(e) if e.code == "UNAUTHENTICATED" => error.set(Some(
                "That set-up code is wrong or was used already. The server prints its code in its console when it starts with no user.".to_owned(),
            )),
            Err(e) => error.set(Some(e.message)),
        }
        busy.set(false);
    };
    rsx! {
        section { class: "card login", "aria-labelledby": "login-title",
            h1 { id: "login-title", "Create the first administrator" }
            p { class: "muted",
                "No one can sign in to this server yet. The set-up code is in the console where the server was started; it works once."
            }
            form { onsubmit: submit,
                label { r#for: "setup-code", "Set-up code" }
                input {
                    id: "setup-code",
                    autocomplete: "one-time-code",
                    required: true,
                    value: "{code}",
                    oninput: move |e| code.set(e.value()),
                }
                label { r#for: "username", "Your user name" }
                input {
                    id: "username",
                    autocomplete: "username",
                    required: true,
                    autofocus: true,
                    value: "{username}",
                    oninput: move |e| username.set(e.value()),
                }
                label { r#for: "new-password", "Password" }
                input {
                    id: "new-password",
                    r#type: "password",
                    autocomplete: "new-password",
                    required: true,
                    value: "{password}",
                    oninput: move |e| password.set(e.value()),
                }
                label { r#for: "repeat-password", "The password again" }
                input {
                    id: "repeat-password",
                    r#type: "password",
                    autocomplete: "new-password",
                    required: true,
                    value: "{repeated}",
                    oninput: move |e| repeated.set(e.value()),
                }
                if let Some(message) = error() {
                    p { class: "problem", role: "alert", "{message}" }
                }
                button { r#type: "submit", disabled: busy(), if busy() { "Creating…" } else { "Create and sign in" } }
            }
        }
    }
}

/// The form that answers one of Cognito's challenges.
#[component]
fn Answer(
    challenge: Challenge,
    error: Signal<Option<String>>,
    on_answer: EventHandler<Result<Step, ApiError>>,
    on_cancel: EventHandler<()>,
) -> Element {
    let mut given = use_signal(String::new);
    let mut repeated = use_signal(String::new);
    let mut busy = use_signal(|| false);
    let asked = challenge.ask.clone();
    let new_password = asked == Ask::NewPassword;
    let submit = move |event: FormEvent| {
        let challenge = challenge.clone();
        async move {
            event.prevent_default();
            if busy() {
                return;
            }
            if new_password && *given.peek() != *repeated.peek() {
                error.set(Some("The two passwords differ.".to_owned()));
                return;
            }
            busy.set(true);
            error.set(None);
            let value = given.peek().trim().to_owned();
            let outcome = session::answer(&challenge, &value).await;
            given.set(String::new());
            repeated.set(String::new());
            busy.set(false);
            on_answer.call(outcome);
        }
    };
    let (title, explain) = match &asked {
        Ask::NewPassword => (
            "Choose your password",
            "This is your first sign-in: replace the temporary password you were given with one of your own.".to_owned(),
        ),
        Ask::Code { sms: false } => (
            "Enter your code",
            "Enter the six-digit code your authenticator app shows for the chaos platform.".to_owned(),
        ),
        Ask::Code { sms: true } => (
            "Enter your code",
            "Enter the code sent to your phone by text message.".to_owned(),
        ),
        Ask::SetUpAuthenticator { .. } => (
            "Set up an authenticator app",
            "Signing in takes a code from an authenticator app. Add this key to yours (as a time-based key), then enter the six-digit code it shows.".to_owned(),
        ),
    };
    rsx! {
        section { class: "card login", "aria-labelledby": "login-title",
            h1 { id: "login-title", "{title}" }
            p { class: "muted", "{explain}" }
            if let Ask::SetUpAuthenticator { secret } = &asked {
                div { class: "secret",
                    p { "The key for your authenticator app:" }
                    code { id: "authenticator-key", "{secret}" }
                }
            }
            form { onsubmit: submit,
                if new_password {
                    label { r#for: "new-password", "New password" }
                    input {
                        id: "new-password",
                        r#type: "password",
                        autocomplete: "new-password",
                        required: true,
                        autofocus: true,
                        value: "{given}",
                        oninput: move |e| given.set(e.value()),
                    }
                    label { r#for: "repeat-password", "The new password again" }
                    input {
                        id: "repeat-password",
                        r#type: "password",
                        autocomplete: "new-password",
                        required: true,
                        value: "{repeated}",
                        oninput: move |e| repeated.set(e.value()),
                    }
                } else {
                    label { r#for: "code", "Code" }
                    input {
                        id: "code",
                        inputmode: "numeric",
                        autocomplete: "one-time-code",
                        required: true,
                        autofocus: true,
                        value: "{given}",
                        oninput: move |e| given.set(e.value()),
                    }
                }
                if let Some(message) = error() {
                    p { class: "problem", role: "alert", "{message}" }
                }
                div { class: "actions",
                    button { r#type: "submit", disabled: busy(), if busy() { "Signing in…" } else { "Continue" } }
                    button { r#type: "button", class: "secondary", onclick: move |_| on_cancel.call(()), "Start over" }
                }
            }
        }
    }
}
