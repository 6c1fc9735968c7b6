//! The GraphQL API as the pages use it: queries and mutations over HTTP with the session's
//! token, and subscriptions over `graphql-transport-ws` that reconnect by themselves.
//!
//! The WebSocket protocol is spoken here directly over the browser's `WebSocket`: one
//! subscription per socket needs only `connection_init`/`ack`, `subscribe`, `next`, `error`,
//! `complete` and `ping`/`pong`, and a client library for it cost the bundle about a tenth of
//! its size.

use dioxus::prelude::*;
use futures::StreamExt;
use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web::backoff;

use super::session::{Renewal, Session, renew};

/// An error the API answered with (its stable `code`), or a transport failure (`NETWORK`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// `INVALID_INPUT`, `FORBIDDEN`, `UNAUTHENTICATED`, `NETWORK`, ...
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
    /// For `INVALID_INPUT`: every problem, as (path of the field, what is wrong).
    pub problems: Vec<(String, String)>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn network(e: impl std::fmt::Display) -> ApiError {
    ApiError {
        code: "NETWORK".to_owned(),
        problems: Vec::new(),
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
            problems: error["extensions"]["problems"]
                .as_array()
                .map(|problems| {
                    problems
                        .iter()
                        .filter_map(|p| {
                            Some((
                                p["field"].as_str()?.to_owned(),
                                p["message"].as_str()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(answer["data"].clone())
}

/// The strings of a JSON array (none when it is not one).
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An answer of the API still to come, boxed (see [`use_api`]).
pub type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, ApiError>>>>;

/// `use_resource` for an API answer. Dioxus's hooks are compiled anew for every distinct
/// closure and future they are given; boxed, every page shares one copy, which keeps several
/// kilobytes per use out of the bundle.
pub fn use_api(make: impl FnMut() -> Answer + 'static) -> Resource<Result<Value, ApiError>> {
    use_api_boxed(Box::new(make))
}

fn use_api_boxed(make: Box<dyn FnMut() -> Answer>) -> Resource<Result<Value, ApiError>> {
    use_resource(make)
}

/// `use_future` for work that runs as long as its component (see [`use_api`] for why boxed).
pub fn use_task(
    make: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + 'static,
) -> UseFuture {
    use_task_boxed(Box::new(make))
}

fn use_task_boxed(
    make: Box<dyn FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>,
) -> UseFuture {
    use_future(make)
}

fn unauthenticated(answer: &Result<Value, ApiError>) -> bool {
    matches!(answer, Err(e) if e.code == "UNAUTHENTICATED")
}

fn token(session: Signal<Option<Session>>) -> Option<String> {
    session.peek().as_ref().map(|s| s.access_token.clone())
}

/// How many times one request renews the session before it gives up (each renewal brings a
/// token that a starved page may again hold past its expiry).
const RENEWALS_PER_REQUEST: usize = 3;

/// A request as the signed-in user. A refused access token (expired while the machine slept,
/// or before a slow request reached the server) is renewed and the request made once more:
/// the API refuses a credential before it runs anything, so nothing runs twice. Only the
/// identity provider ends the session (by refusing a renewal); a request refused however
/// often is answered with its refusal and the user stays signed in.
pub async fn call(
    session: Signal<Option<Session>>,
    query: &str,
    variables: Value,
) -> Result<Value, ApiError> {
    let Some(mut stale) = token(session) else {
        return request(None, query, variables).await;
    };
    let mut renewals = 0;
    loop {
        let answer = request(Some(&stale), query, variables.clone()).await;
        if !unauthenticated(&answer) || renewals == RENEWALS_PER_REQUEST {
            return answer;
        }
        renewals += 1;
        match renew(session, &stale).await {
            Renewal::Renewed => match token(session) {
                Some(fresh) => stale = fresh,
                None => return answer,
            },
            Renewal::Unavailable(e) => return Err(e),
            Renewal::Ended => return answer,
        }
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

/// What the server's `complete` of a subscription means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completes {
    /// Everything has been sent: the stream has a last item (an experiment's updates end
    /// with its run, at once for a run that had ended), so the page stops following.
    Ended,
    /// The stream never ends by itself: the server let it go, and the page connects again.
    Resume,
}

/// How a connection ended.
struct Followed {
    /// `on` said the subscription is done, or the server completed a stream that ends.
    done: bool,
    /// At least one answer arrived.
    received: bool,
}

/// Why a connection ended before its subscription did.
struct Dropped {
    /// The close frame's code (4403: the credential was refused), or 0.
    code: u16,
    /// Why, in words.
    why: String,
}

impl From<String> for Dropped {
    fn from(why: String) -> Self {
        Dropped { code: 0, why }
    }
}

/// What the socket reported.
enum Incoming {
    Opened,
    Text(String),
    Closed(Dropped),
}

/// A WebSocket speaking `graphql-transport-ws`, whose events arrive on a channel; closed
/// (and its handlers dropped) when dropped.
struct Socket {
    socket: web_sys::WebSocket,
    events: futures::channel::mpsc::UnboundedReceiver<Incoming>,
    // Kept alive as long as the socket may call them.
    _handlers: [Closure<dyn FnMut(web_sys::Event)>; 4],
}

impl Socket {
    fn open(url: &str) -> Result<Socket, String> {
        let socket = web_sys::WebSocket::new_with_str(url, "graphql-transport-ws")
            .map_err(|e| format!("cannot open {url}: {e:?}"))?;
        let (sender, events) = futures::channel::mpsc::unbounded();
        let handler = |f: fn(web_sys::Event) -> Incoming| {
            let sender = sender.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                // A closed receiver means the page has stopped listening: nothing to do.
                let _ = sender.unbounded_send(f(event));
            })
        };
        let handlers = [
            handler(|_| Incoming::Opened),
            handler(|event| {
                let text = event
                    .dyn_ref::<web_sys::MessageEvent>()
                    .and_then(|m| m.data().as_string())
                    .unwrap_or_default();
                Incoming::Text(text)
            }),
            handler(|event| {
                let dropped = event
                    .dyn_ref::<web_sys::CloseEvent>()
                    .map(|c| Dropped {
                        code: c.code(),
                        why: match c.reason() {
                            reason if reason.is_empty() => format!("closed ({})", c.code()),
                            reason => format!("closed ({}: {reason})", c.code()),
                        },
                    })
                    .unwrap_or_else(|| Dropped::from("closed".to_owned()));
                Incoming::Closed(dropped)
            }),
            handler(|_| Incoming::Closed(Dropped::from("the connection failed".to_owned()))),
        ];
        socket.set_onopen(Some(handlers[0].as_ref().unchecked_ref()));
        socket.set_onmessage(Some(handlers[1].as_ref().unchecked_ref()));
        socket.set_onclose(Some(handlers[2].as_ref().unchecked_ref()));
        socket.set_onerror(Some(handlers[3].as_ref().unchecked_ref()));
        Ok(Socket {
            socket,
            events,
            _handlers: handlers,
        })
    }

    fn send(&self, message: &Value) -> Result<(), String> {
        self.socket
            .send_with_str(&message.to_string())
            .map_err(|e| format!("cannot send: {e:?}"))
    }

    /// The next message, parsed; an error once the socket is closed.
    async fn next(&mut self) -> Result<Value, Dropped> {
        loop {
            match self.events.next().await {
                Some(Incoming::Opened) => {}
                Some(Incoming::Text(text)) => {
                    return serde_json::from_str(&text).map_err(|e| {
                        Dropped::from(format!("the server sent what is not JSON: {e}"))
                    });
                }
                Some(Incoming::Closed(dropped)) => return Err(dropped),
                None => return Err(Dropped::from("closed".to_owned())),
            }
        }
    }

    /// Waits until the socket is open.
    async fn opened(&mut self) -> Result<(), Dropped> {
        match self.events.next().await {
            Some(Incoming::Opened) => Ok(()),
            Some(Incoming::Closed(dropped)) => Err(dropped),
            _ => Err(Dropped::from("the connection failed".to_owned())),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        self.socket.set_onerror(None);
        let _ = self.socket.close();
    }
}

/// One connection: `connection_init` with the token, one `subscribe`, and every `next`
/// answer's `data` handed to `on` until `on` says the subscription is done (true), the server
/// completes it, or the socket drops. Pings are answered.
async fn follow(
    token: &str,
    query: &str,
    variables: Value,
    on: &mut impl FnMut(Value) -> bool,
    completes: Completes,
    mut status: Signal<Live>,
) -> Result<Followed, Dropped> {
    let mut socket = Socket::open(&socket_url())?;
    socket.opened().await?;
    socket.send(&json!({
        "type": "connection_init",
        "payload": { "Authorization": format!("Bearer {token}") },
    }))?;
    loop {
        let message = socket.next().await?;
        match message["type"].as_str() {
            Some("connection_ack") => break,
            Some("ping") => socket.send(&json!({ "type": "pong" }))?,
            _ => return Err(format!("the server refused the connection: {message}").into()),
        }
    }
    socket.send(&json!({
        "type": "subscribe",
        "id": "1",
        "payload": { "query": query, "variables": variables },
    }))?;
    status.set(Live::Receiving);
    let mut received = false;
    loop {
        let message = socket.next().await?;
        match message["type"].as_str() {
            Some("next") => {
                let answer = &message["payload"];
                if let Some(error) = answer["errors"].get(0) {
                    return Err(error["message"]
                        .as_str()
                        .unwrap_or("refused")
                        .to_owned()
                        .into());
                }
                received = true;
                if on(answer["data"].clone()) {
                    let _ = socket.send(&json!({ "type": "complete", "id": "1" }));
                    return Ok(Followed {
                        done: true,
                        received,
                    });
                }
            }
            Some("error") => {
                let error = &message["payload"][0];
                return Err(error["message"]
                    .as_str()
                    .unwrap_or("refused")
                    .to_owned()
                    .into());
            }
            Some("complete") => {
                return Ok(Followed {
                    done: completes == Completes::Ended,
                    received,
                });
            }
            Some("ping") => socket.send(&json!({ "type": "pong" }))?,
            _ => {}
        }
    }
}

/// Follows a subscription for as long as the page lives: when the socket drops it connects
/// again after a growing wait, with the variables `variables` gives then (so a page resumes
/// after the last update it has). A socket closed because its credential no longer holds
/// (4403: the access token expired, or the role changed) renews the session first. Returns
/// once `on` says it is done, the server completes a stream that [`Completes::Ended`], or the
/// session has ended.
pub async fn live(
    session: Signal<Option<Session>>,
    query: &'static str,
    mut variables: impl FnMut() -> Value,
    mut on: impl FnMut(Value) -> bool,
    completes: Completes,
    mut status: Signal<Live>,
) {
    let mut attempt = 0;
    loop {
        let Some(token) = token(session) else {
            return;
        };
        status.set(Live::Connecting);
        let why = match follow(&token, query, variables(), &mut on, completes, status).await {
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
            Err(Dropped { code: 4403, why }) => match renew(session, &token).await {
                Renewal::Ended => return,
                Renewal::Renewed | Renewal::Unavailable(_) => why,
            },
            Err(Dropped { why, .. }) => why,
        };
        let wait = backoff::delay_ms(attempt, js_sys::Math::random());
        attempt = attempt.saturating_add(1);
        status.set(Live::Retrying(format!(
            "{why}; reconnecting in {}",
            web::units::seconds(i64::from(wait))
        )));
        gloo_timers::future::TimeoutFuture::new(wait).await;
    }
}
