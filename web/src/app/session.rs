//! The signed-in session: its access token in memory and in this tab's `sessionStorage` (so
//! a reload keeps it and closing the tab ends it), refreshed with its one-use refresh token a
//! minute before it expires, and ended on the server at logout.

use dioxus::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use web::backoff;

use super::api::{ApiError, request};

const KEY: &str = "chaos.session";

const SESSION_FIELDS: &str = "accessToken accessTokenExpiresAt refreshToken user { id role }";

/// A session of the embedded identity provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The bearer token.
    pub access_token: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The one-use token for the next pair.
    pub refresh_token: String,
    /// The actor the user acts as.
    pub user: String,
    /// `ADMIN`, `OPERATOR` or `VIEWER`.
    pub role: String,
}

impl Session {
    fn from_answer(session: &Value) -> Option<Session> {
        Some(Session {
            access_token: session["accessToken"].as_str()?.to_owned(),
            expires_at: session["accessTokenExpiresAt"].as_str()?.to_owned(),
            refresh_token: session["refreshToken"].as_str()?.to_owned(),
            user: session["user"]["id"].as_str()?.to_owned(),
            role: session["user"]["role"].as_str()?.to_owned(),
        })
    }

    /// Whether the user may create, start and stop experiments.
    pub fn can_run(&self) -> bool {
        matches!(self.role.as_str(), "ADMIN" | "OPERATOR")
    }

    /// Whether the user may halt the platform.
    pub fn is_admin(&self) -> bool {
        self.role == "ADMIN"
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

/// The session this tab had, if any.
pub fn restore() -> Option<Session> {
    let text = storage()?.get_item(KEY).ok()??;
    serde_json::from_str(&text).ok()
}

fn keep(session: &Session) {
    if let (Some(storage), Ok(text)) = (storage(), serde_json::to_string(session)) {
        let _ = storage.set_item(KEY, &text);
    }
}

/// Forgets the session in this tab.
pub fn forget() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(KEY);
    }
}

/// Signs in.
pub async fn login(username: &str, password: &str) -> Result<Session, ApiError> {
    let data = request(
        None,
        &format!("mutation($u: String!, $p: String!) {{ login(username: $u, password: $p) {{ {SESSION_FIELDS} }} }}"),
        json!({ "u": username, "p": password }),
    )
    .await?;
    let session = Session::from_answer(&data["login"]).ok_or_else(|| ApiError {
        code: "ERROR".to_owned(),
        message: "the server answered without a session".to_owned(),
    })?;
    keep(&session);
    Ok(session)
}

/// Signs out: the server ends the session, and this tab forgets it.
pub async fn logout(mut session: Signal<Option<Session>>) {
    let current = session.peek().clone();
    if let Some(current) = current {
        let _ = request(
            Some(&current.access_token),
            "mutation($r: String) { logout(refreshToken: $r) }",
            json!({ "r": current.refresh_token }),
        )
        .await;
    }
    forget();
    session.set(None);
}

/// Keeps the session fresh for as long as the app runs: refreshes the access token before it
/// expires; a refused refresh signs the user out, a network failure is retried.
pub async fn keep_fresh(mut session: Signal<Option<Session>>) {
    loop {
        let current = session.peek().clone();
        let wait = match &current {
            Some(s) => {
                backoff::refresh_in_ms(js_sys::Date::now(), js_sys::Date::parse(&s.expires_at))
            }
            None => 1_000.0,
        };
        // A wait is at most the token's life (minutes), well inside u32 milliseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        gloo_timers::future::TimeoutFuture::new(wait.min(f64::from(u32::MAX)) as u32).await;
        let Some(current) = current else { continue };
        // Signed out or refreshed meanwhile (by another sign-in): start over.
        if session.peek().as_ref() != Some(&current) {
            continue;
        }
        let answer = request(
            None,
            &format!("mutation($r: String!) {{ refreshSession(refreshToken: $r) {{ {SESSION_FIELDS} }} }}"),
            json!({ "r": current.refresh_token }),
        )
        .await;
        match answer.map(|data| Session::from_answer(&data["refreshSession"])) {
            Ok(Some(fresh)) => {
                keep(&fresh);
                session.set(Some(fresh));
            }
            Err(e) if e.code == "NETWORK" || e.code == "RATE_LIMITED" => {
                gloo_timers::future::TimeoutFuture::new(5_000).await;
            }
            Ok(None) | Err(_) => {
                forget();
                session.set(None);
            }
        }
    }
}
