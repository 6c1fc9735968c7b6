//! The GraphQL API as the pages use it: queries and mutations over HTTP with the session's
//! token, and subscriptions over `graphql-transport-ws` that reconnect by themselves.

use dioxus::prelude::*;
use futures::StreamExt;
use graphql_ws_client::Client;
use graphql_ws_client::graphql::GraphqlOperation;
use serde::Serialize;
use serde_json::{Value, json};
use web::backoff;

use super::session::{Session, forget};

/// An error the API answered with (its stable `code`), or a transport failure (`NETWORK`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// `INVALID_INPUT`, `FORBIDDEN`, `UNAUTHENTICATED`, `NETWORK`, ...
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn network(e: impl std::fmt::Display) -> ApiError {
    ApiError {
        code: "NETWORK".to_owned(),
        message: format!("the server cannot be reached ({e})"),
    }
}

/// One request to `/graphql`; the `data` of the answer, or its first error.
pub async fn request(
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value, ApiError> {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let mut builder =
        gloo_net::http::Request::post("/graphql").header("Content-Type", "application/json");
    if let Some(token) = token {
        builder = builder.header("Authorization", &format!("Bearer {token}"));
    }
    let response = builder
        .body(body)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|_| network(format!("HTTP {status}")))?;
    if let Some(error) = answer["errors"].get(0).or_else(|| answer.get("error")) {
        return Err(ApiError {
            code: error["extensions"]["code"]
                .as_str()
                .or_else(|| error["code"].as_str())
                .unwrap_or("ERROR")
                .to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("request refused")
                .to_owned(),
        });
    }
    Ok(answer["data"].clone())
}

/// A request as the signed-in user; a refused credential signs the user out.
pub async fn call(
    mut session: Signal<Option<Session>>,
    query: &str,
    variables: Value,
) -> Result<Value, ApiError> {
    let token = session.peek().as_ref().map(|s| s.access_token.clone());
    let answer = request(token.as_deref(), query, variables).await;
    if let Err(e) = &answer
        && e.code == "UNAUTHENTICATED"
    {
        forget();
        session.set(None);
    }
    answer
}

/// A subscription as graphql-ws-client sends it; answers are passed on as JSON.
#[derive(Debug, Serialize)]
struct Operation {
    query: String,
    variables: Value,
}

impl GraphqlOperation for Operation {
    type Response = Value;
    type Error = serde_json::Error;

    fn decode(&self, data: Value) -> Result<Value, serde_json::Error> {
        Ok(data)
    }
}

/// The state of a page's live connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    /// Connecting (or connecting again).
    Connecting,
    /// Receiving updates.
    Receiving,
    /// The socket dropped; trying again after a wait.
    Retrying(String),
    /// The subscription ended (the run is over).
    Ended,
}

/// The WebSocket URL of the API, on this page's origin.
fn socket_url() -> String {
    let location = web_sys::window().map(|w| w.location());
    let host = location
        .as_ref()
        .and_then(|l| l.host().ok())
        .unwrap_or_default();
    let secure = location
        .and_then(|l| l.protocol().ok())
        .is_some_and(|p| p == "https:");
    format!("{}://{host}/graphql", if secure { "wss" } else { "ws" })
}

/// How a connection ended.
struct Followed {
    /// `on` said the subscription is done.
    done: bool,
    /// At least one answer arrived.
    received: bool,
}

/// One connection: subscribes and hands every answer's `data` to `on` until `on` says the
/// subscription is done (true), the server ends it, or the socket drops.
async fn follow(
    token: &str,
    query: &str,
    variables: Value,
    on: &mut impl FnMut(Value) -> bool,
    mut status: Signal<Live>,
) -> Result<Followed, String> {
    let (meta, stream) =
        ws_stream_wasm::WsMeta::connect(socket_url(), Some(vec!["graphql-transport-ws"]))
            .await
            .map_err(|e| e.to_string())?;
    let connection = graphql_ws_client::ws_stream_wasm::Connection::new((meta, stream)).await;
    let mut subscription = Client::build(connection)
        .payload(json!({ "Authorization": format!("Bearer {token}") }))
        .map_err(|e| e.to_string())?
        .subscribe(Operation {
            query: query.to_owned(),
            variables,
        })
        .await
        .map_err(|e| e.to_string())?;
    status.set(Live::Receiving);
    let mut received = false;
    while let Some(answer) = subscription.next().await {
        let answer = answer.map_err(|e| e.to_string())?;
        if let Some(error) = answer["errors"].get(0) {
            return Err(error["message"].as_str().unwrap_or("refused").to_owned());
        }
        received = true;
        if on(answer["data"].clone()) {
            return Ok(Followed {
                done: true,
                received,
            });
        }
    }
    Ok(Followed {
        done: false,
        received,
    })
}

/// Follows a subscription for as long as the page lives: when the socket drops it connects
/// again after a growing wait, with the variables `variables` gives then (so a page resumes
/// after the last update it has). Returns once `on` says it is done.
pub async fn live(
    session: Signal<Option<Session>>,
    query: &'static str,
    mut variables: impl FnMut() -> Value,
    mut on: impl FnMut(Value) -> bool,
    mut status: Signal<Live>,
) {
    let mut attempt = 0;
    loop {
        let Some(token) = session.peek().as_ref().map(|s| s.access_token.clone()) else {
            return;
        };
        status.set(Live::Connecting);
        let why = match follow(&token, query, variables(), &mut on, status).await {
            Ok(Followed { done: true, .. }) => {
                status.set(Live::Ended);
                return;
            }
            Ok(Followed { received, .. }) => {
                if received {
                    attempt = 0;
                }
                "the connection closed".to_owned()
            }
            Err(e) => e,
        };
        let wait = backoff::delay_ms(attempt, js_sys::Math::random());
        attempt = attempt.saturating_add(1);
        status.set(Live::Retrying(format!(
            "{why}; reconnecting in {:.1} s",
            f64::from(wait) / 1000.0
        )));
        gloo_timers::future::TimeoutFuture::new(wait).await;
    }
}
