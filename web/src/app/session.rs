//! The signed-in session: its access token in memory and in this tab's `sessionStorage` (so
//! a reload keeps it and closing the tab ends it), refreshed with its refresh token a minute
//! before it expires (or at once, when the API refuses it: a machine that slept, or a page
//! starved of time, may hold one that expired), and ended at logout.
//!
//! Two identity providers sign people in, as the server's `signInOptions` says:
//! - this server's own accounts (`login`, `refreshSession`, `logout`);
//! - a Cognito user pool (on AWS), spoken to directly from the page: `InitiateAuth` with
//!   `USER_PASSWORD_AUTH` (the password goes over TLS to Cognito, never to this API; SRP would
//!   spare even that, at the cost of big-number arithmetic in the bundle), answering what it
//!   asks on the way (a new password in place of a temporary one, a code from an authenticator
//!   app or a text message, an authenticator app to set up), then `REFRESH_TOKEN_AUTH`, and
//!   `GlobalSignOut` at logout (which ends the user's refresh
//!   tokens on every device, as the button says). The API is sent the access token and says
//!   who it belongs to (`me`).

use dioxus::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use web::backoff;

use super::api::{ApiError, request};

const KEY: &str = "chaos.session";

const SESSION_FIELDS: &str = "accessToken accessTokenExpiresAt refreshToken user { id role }";

/// A Cognito user pool's app client, as a browser signs in to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// The Cognito API endpoint.
    pub endpoint: String,
    /// The app client.
    pub client_id: String,
}

/// How this server signs people in.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// With its own accounts.
    Password,
    /// With its own accounts, of which there is none yet: the first administrator is made
    /// with the one-time code the server printed in its console.
    FirstAdmin,
    /// With a Cognito user pool.
    Cognito(Pool),
    /// Not at all: only API keys authenticate.
    Nobody,
}

/// Asks the server how people sign in.
pub async fn method() -> Result<Method, ApiError> {
    let data = request(
        None,
        "{ signInOptions { method firstAdmin cognito { endpoint clientId } } }",
        json!({}),
    )
    .await?;
    let options = &data["signInOptions"];
    Ok(match options["method"].as_str() {
        Some("COGNITO") => Method::Cognito(Pool {
            endpoint: options["cognito"]["endpoint"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            client_id: options["cognito"]["clientId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }),
        Some("NONE") => Method::Nobody,
        _ if options["firstAdmin"].as_bool() == Some(true) => Method::FirstAdmin,
        _ => Method::Password,
    })
}

/// A signed-in session.
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
    /// The Cognito pool it came from (none: this server's own accounts).
    #[serde(default)]
    pub pool: Option<Pool>,
}

impl Session {
    fn from_answer(session: &Value) -> Option<Session> {
        Some(Session {
            access_token: session["accessToken"].as_str()?.to_owned(),
            expires_at: session["accessTokenExpiresAt"].as_str()?.to_owned(),
            refresh_token: session["refreshToken"].as_str()?.to_owned(),
            user: session["user"]["id"].as_str()?.to_owned(),
            role: session["user"]["role"].as_str()?.to_owned(),
            pool: None,
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
fn forget() {
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
        problems: Vec::new(),
        message: "the server answered without a session".to_owned(),
    })?;
    keep(&session);
    Ok(session)
}

/// Makes this server's first administrator with its one-time `code`, and signs them in.
pub async fn set_up_first_admin(
    code: &str,
    username: &str,
    password: &str,
) -> Result<Session, ApiError> {
    let data = request(
        None,
        &format!(
            "mutation($c: String!, $u: String!, $p: String!) {{ setUpFirstAdmin(code: $c, username: $u, password: $p) {{ {SESSION_FIELDS} }} }}"
        ),
        json!({ "c": code, "u": username, "p": password }),
    )
    .await?;
    let session = Session::from_answer(&data["setUpFirstAdmin"]).ok_or_else(|| ApiError {
        code: "ERROR".to_owned(),
        problems: Vec::new(),
        message: "the server answered without a session".to_owned(),
    })?;
    keep(&session);
    Ok(session)
}

/// The one-time code in the address the server printed (`/#first-admin=CODE`), if there.
pub fn first_admin_code() -> Option<String> {
    let hash = web_sys::window()?.location().hash().ok()?;
    hash.strip_prefix("#first-admin=")
        .filter(|code| !code.is_empty())
        .map(str::to_owned)
}

/// One call of Cognito's API (`action`, e.g. `InitiateAuth`): its answer, or its error in
/// words (`UNAUTHENTICATED` for a refused credential).
async fn cognito(pool: &Pool, action: &str, body: Value) -> Result<Value, ApiError> {
    let failed = |code: &str, message: String| ApiError {
        code: code.to_owned(),
        problems: Vec::new(),
        message,
    };
    let response = gloo_net::http::Request::post(&pool.endpoint)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "X-Amz-Target",
            &format!("AWSCognitoIdentityProviderService.{action}"),
        )
        .body(body.to_string())
        .map_err(|e| failed("NETWORK", e.to_string()))?
        .send()
        .await
        .map_err(|e| failed("NETWORK", format!("Cognito cannot be reached ({e})")))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|_| failed("NETWORK", format!("Cognito answered HTTP {status}")))?;
    if response_ok(status) {
        return Ok(answer);
    }
    let kind = answer["__type"].as_str().unwrap_or_default();
    let message = answer["message"]
        .as_str()
        .unwrap_or("Cognito refused the request")
        .to_owned();
    Err(match kind.rsplit('#').next().unwrap_or(kind) {
        "NotAuthorizedException" | "UserNotFoundException" => failed("UNAUTHENTICATED", message),
        "TooManyRequestsException" => failed("RATE_LIMITED", message),
        other => failed("ERROR", format!("{message} ({other})")),
    })
}

fn response_ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// `AuthenticationResult` of an answer that signed the user in: the access token, when it
/// expires, and the refresh token if a new one came; none when Cognito asks for more.
fn tokens(answer: &Value) -> Option<(String, String, Option<String>)> {
    let result = &answer["AuthenticationResult"];
    let access = result["AccessToken"].as_str()?;
    let lifetime_ms = result["ExpiresIn"].as_f64().unwrap_or(3600.0) * 1000.0;
    let expires = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        js_sys::Date::now() + lifetime_ms,
    ));
    Some((
        access.to_owned(),
        String::from(expires.to_iso_string()),
        result["RefreshToken"].as_str().map(str::to_owned),
    ))
}

/// What Cognito asks for before it signs someone in.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// A new password in place of the temporary one an administrator set (a first sign-in).
    NewPassword,
    /// A one-time code: from the user's authenticator app, or (`sms`) sent to their phone.
    Code {
        /// Sent by text message.
        sms: bool,
    },
    /// An authenticator app, set up now: the key to add to it, then a code it shows.
    SetUpAuthenticator {
        /// The key (base32).
        secret: String,
    },
}

/// A sign-in to Cognito under way: what it asks for next.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// The pool.
    pub pool: Pool,
    /// The user, as Cognito names them.
    pub username: String,
    /// Cognito's session of this sign-in (not ours).
    pub session: String,
    /// What it asks.
    pub ask: Ask,
}

/// Where a sign-in to Cognito stands.
#[derive(Debug)]
pub enum Step {
    /// Signed in.
    Done(Session),
    /// Cognito asks for more.
    Asks(Challenge),
}

/// Signs in to the Cognito pool: signed in, or what Cognito asks for first.
pub async fn login_cognito(pool: &Pool, username: &str, password: &str) -> Result<Step, ApiError> {
    let answer = cognito(
        pool,
        "InitiateAuth",
        json!({
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": pool.client_id,
            "AuthParameters": { "USERNAME": username, "PASSWORD": password },
        }),
    )
    .await?;
    next_step(pool, username, &answer).await
}

/// Answers `challenge` with what the user gave (a new password, or a code).
pub async fn answer(challenge: &Challenge, given: &str) -> Result<Step, ApiError> {
    let pool = &challenge.pool;
    let respond = |name: &str, session: &str, responses: Value| {
        cognito(
            pool,
            "RespondToAuthChallenge",
            json!({
                "ChallengeName": name,
                "ClientId": pool.client_id,
                "Session": session,
                "ChallengeResponses": responses,
            }),
        )
    };
    let user = challenge.username.as_str();
    let answer = match &challenge.ask {
        Ask::NewPassword => {
            respond(
                "NEW_PASSWORD_REQUIRED",
                &challenge.session,
                json!({ "USERNAME": user, "NEW_PASSWORD": given }),
            )
            .await?
        }
        Ask::Code { sms: false } => {
            respond(
                "SOFTWARE_TOKEN_MFA",
                &challenge.session,
                json!({ "USERNAME": user, "SOFTWARE_TOKEN_MFA_CODE": given }),
            )
            .await?
        }
        Ask::Code { sms: true } => {
            respond(
                "SMS_MFA",
                &challenge.session,
                json!({ "USERNAME": user, "SMS_MFA_CODE": given }),
            )
            .await?
        }
        Ask::SetUpAuthenticator { .. } => {
            let verified = cognito(
                pool,
                "VerifySoftwareToken",
                json!({
                    "Session": challenge.session,
                    "UserCode": given,
                    "FriendlyDeviceName": "chaos dashboard",
                }),
            )
            .await?;
            let session = verified["Session"].as_str().unwrap_or(&challenge.session);
            respond("MFA_SETUP", session, json!({ "USERNAME": user })).await?
        }
    };
    next_step(pool, user, &answer).await
}

/// An answer of Cognito's as the next step: signed in (then the API says who the token is),
/// or the challenge it poses (an authenticator to set up is asked for its key first).
async fn next_step(pool: &Pool, username: &str, answer: &Value) -> Result<Step, ApiError> {
    let Some((access_token, expires_at, refresh_token)) = tokens(answer) else {
        let name = answer["ChallengeName"].as_str().unwrap_or("none");
        let mut session = answer["Session"].as_str().unwrap_or_default().to_owned();
        let username = answer["ChallengeParameters"]["USERNAME"]
            .as_str()
            .unwrap_or(username)
            .to_owned();
        let ask = match name {
            "NEW_PASSWORD_REQUIRED" => Ask::NewPassword,
            "SOFTWARE_TOKEN_MFA" => Ask::Code { sms: false },
            "SMS_MFA" => Ask::Code { sms: true },
            "MFA_SETUP" => {
                let associated = cognito(
                    pool,
                    "AssociateSoftwareToken",
                    json!({ "Session": session }),
                )
                .await?;
                if let Some(next) = associated["Session"].as_str() {
                    next.clone_into(&mut session);
                }
                Ask::SetUpAuthenticator {
                    secret: associated["SecretCode"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                }
            }
            other => {
                return Err(ApiError {
                    code: "ERROR".to_owned(),
                    problems: Vec::new(),
                    message: format!(
                        "Cognito asks for more before signing in ({other}), which this dashboard cannot answer: ask an administrator"
                    ),
                });
            }
        };
        return Ok(Step::Asks(Challenge {
            pool: pool.clone(),
            username,
            session,
            ask,
        }));
    };
    let me = request(Some(&access_token), "{ me { id role } }", json!({}))
        .await
        .map_err(|e| ApiError {
            code: "NO_ROLE".to_owned(),
            problems: Vec::new(),
            message: format!(
                "Cognito signed you in, but the platform refused your token: {} (an administrator adds accounts to a group: ADMIN, OPERATOR or VIEWER)",
                e.message
            ),
        })?;
    let session = Session {
        access_token,
        expires_at,
        refresh_token: refresh_token.unwrap_or_default(),
        user: me["me"]["id"].as_str().unwrap_or_default().to_owned(),
        role: me["me"]["role"].as_str().unwrap_or_default().to_owned(),
        pool: Some(pool.clone()),
    };
    keep(&session);
    Ok(Step::Done(session))
}

/// The next access token of `current`.
async fn refreshed(current: &Session) -> Result<Option<Session>, ApiError> {
    let Some(pool) = &current.pool else {
        let data = request(
            None,
            &format!("mutation($r: String!) {{ refreshSession(refreshToken: $r) {{ {SESSION_FIELDS} }} }}"),
            json!({ "r": current.refresh_token }),
        )
        .await?;
        return Ok(Session::from_answer(&data["refreshSession"]));
    };
    let answer = cognito(
        pool,
        "InitiateAuth",
        json!({
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "ClientId": pool.client_id,
            "AuthParameters": { "REFRESH_TOKEN": current.refresh_token },
        }),
    )
    .await?;
    let (access_token, expires_at, refresh_token) = tokens(&answer).ok_or_else(|| ApiError {
        code: "UNAUTHENTICATED".to_owned(),
        problems: Vec::new(),
        message: "Cognito asks to sign in again".to_owned(),
    })?;
    Ok(Some(Session {
        access_token,
        expires_at,
        refresh_token: refresh_token.unwrap_or_else(|| current.refresh_token.clone()),
        ..current.clone()
    }))
}

/// Signs out: the identity provider ends the session (this server's; or Cognito ends every
/// refresh token of the user), and this tab forgets it.
pub async fn logout(mut session: Signal<Option<Session>>) {
    let current = session.peek().clone();
    match current {
        Some(Session {
            pool: Some(pool),
            access_token,
            ..
        }) => {
            let _ = cognito(
                &pool,
                "GlobalSignOut",
                json!({ "AccessToken": access_token }),
            )
            .await;
        }
        Some(current) => {
            let _ = request(
                Some(&current.access_token),
                "mutation($r: String) { logout(refreshToken: $r) }",
                json!({ "r": current.refresh_token }),
            )
            .await;
        }
        None => {}
    }
    forget();
    session.set(None);
}

/// What renewing a session came to.
#[derive(Debug)]
pub enum Renewal {
    /// The session has a new access token (from this renewal or one that ran meanwhile).
    Renewed,
    /// The identity provider cannot be reached now: the session is kept, to try again later.
    Unavailable(ApiError),
    /// The session is over (its refresh was refused, or the user signed out): forgotten.
    Ended,
}

thread_local! {
    /// Held while a renewal runs: a refresh token works once, and presented a second time
    /// it ends its session, so two renewals must never overlap.
    static RENEWING: std::rc::Rc<futures::lock::Mutex<()>> = std::rc::Rc::default();
}

/// Renews the session whose access token `stale` was refused or is about to expire. However
/// many pages ask at once, the refresh token is presented once: whoever comes after a renewal
/// finds the session renewed and is told so.
pub async fn renew(mut session: Signal<Option<Session>>, stale: &str) -> Renewal {
    let lock = RENEWING.with(std::rc::Rc::clone);
    let _turn = lock.lock().await;
    let Some(current) = session.peek().clone() else {
        return Renewal::Ended;
    };
    if current.access_token != stale {
        return Renewal::Renewed;
    }
    let answer = refreshed(&current).await;
    // Signed out (or in again) while the refresh was on its way: that stands.
    if session.peek().as_ref() != Some(&current) {
        return if session.peek().is_some() {
            Renewal::Renewed
        } else {
            Renewal::Ended
        };
    }
    match answer {
        Ok(Some(fresh)) => {
            keep(&fresh);
            session.set(Some(fresh));
            Renewal::Renewed
        }
        // Only the identity provider's refusal ends the session. Anything else (no answer, an
        // answer cut short, a busy or failing server) leaves it as it is, to try again: the
        // refresh token is still good, or the provider takes it once more within its grace.
        Err(e) if e.code == "UNAUTHENTICATED" => {
            forget();
            session.set(None);
            Renewal::Ended
        }
        Err(e) => Renewal::Unavailable(e),
        Ok(None) => Renewal::Unavailable(ApiError {
            code: "ERROR".to_owned(),
            problems: Vec::new(),
            message: "the server answered the renewal without a session".to_owned(),
        }),
    }
}

/// Keeps the session fresh for as long as the app runs: renews the access token before it
/// expires; a refused refresh signs the user out, any other failure is retried.
pub async fn keep_fresh(session: Signal<Option<Session>>) {
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
        if let Renewal::Unavailable(_) = renew(session, &current.access_token).await {
            gloo_timers::future::TimeoutFuture::new(5_000).await;
        }
    }
}
