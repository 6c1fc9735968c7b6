//! The GraphQL API: one schema, kept apart from the transport, served on `POST /graphql`
//! (GraphiQL on `GET /graphql`).
//!
//! - **Identity** ([`crate::identity`]). A request presents an API key, an access token of
//!   the embedded identity provider (from the `login` mutation) or a Cognito token, as
//!   `Authorization: Bearer <credential>` (an API key also as `X-Api-Key`). Roles are read
//!   from the log on every request, so a revoked key, a removed user or a demotion holds at
//!   once. Every resolver requires a role (VIEWER reads, OPERATOR runs experiments, ADMIN
//!   halts and manages keys); an anonymous caller or a refused credential gets
//!   `UNAUTHENTICATED` (saying why), a weaker role `FORBIDDEN`.
//! - **Commands** go through [`command_lambdas::command::handle`], the same entry point the
//!   command Lambda serves: a start fails closed on stop-condition alarms, a stop or halt ends
//!   waiting runs at once, and every refusal has its stable code. The caller's actor is the
//!   command's, and so lands in the event metadata.
//! - **Errors** carry a stable `code` extension: the command codes (`INVALID_INPUT`,
//!   `REJECTED`, `STOP_CONDITION`, ...), `UNAUTHENTICATED`, `FORBIDDEN`, `NOT_FOUND`,
//!   `BAD_REQUEST` (a body that is not a GraphQL request), `INVALID_QUERY` (a query that does
//!   not parse or validate, or exceeds the depth or complexity limit), `UNAVAILABLE`. Invalid
//!   input lists every problem, each with its path, in a `problems` extension.
//! - **Limits:** headers sent within [`crate::serve::HEADER_TIMEOUT`], bodies of at most
//!   [`MAX_BODY_BYTES`], read within [`BODY_TIMEOUT`] (a body
//!   that trickles in is answered 408 `REQUEST_TIMEOUT`, so a slow client cannot hold a
//!   connection and its memory for long), queries at most [`MAX_DEPTH`] deep and
//!   [`MAX_COMPLEXITY`] complex, pages of at most [`MAX_PAGE`], and a request rate per caller
//!   ([`crate::limits`]: 429 with `Retry-After` and the code `RATE_LIMITED` over it).

mod mutation;
mod query;
mod subscription;
pub mod types;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use async_graphql::{Data, ErrorExtensions, Schema};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::platform::Concern;
use domain::provenance::{Actor, Role};

use futures::{SinkExt, StreamExt};

use crate::backend::SharedBackend;
use crate::identity::{Authenticator, Verdict};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

/// The schema as served.
pub type ApiSchema = Schema<Query, Mutation, Subscription>;

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest a request body may take to arrive, whole: [`MAX_BODY_BYTES`] at a slow mobile
/// link's pace takes a second or two.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deepest query: room for the standard introspection query of every common client
/// (graphql-js, GraphiQL, gql), whose type references nest nine `ofType`s deep, 15 levels in
/// all. The complexity limit, not the depth, bounds what a query costs.
pub const MAX_DEPTH: usize = 16;
/// Most complex query (each field selected counts one).
pub const MAX_COMPLEXITY: usize = 2_000;
/// Longest page of a list.
pub const MAX_PAGE: usize = 200;

/// What the resolvers work with.
#[derive(Debug, Clone)]
pub struct ApiContext {
    /// Where commands go and reads come from, the live feed, templates and preferences.
    pub backend: SharedBackend,
    /// The credentials the server trusts, and the embedded identity provider.
    pub auth: Authenticator,
    /// Rate limits.
    pub limits: Arc<crate::limits::Limits>,
}

impl ApiContext {
    /// The state of `concerns` of the platform, as the log holds it now.
    pub(crate) async fn platform(
        &self,
        concerns: &[Concern],
    ) -> async_graphql::Result<domain::platform::Platform> {
        self.backend
            .platform(concerns)
            .await
            .map_err(|e| coded("UNAVAILABLE", e.to_string()))
    }
}

/// Who sent the request.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No credential.
    Anonymous,
    /// A credential that authenticates no one: why.
    Refused(String),
    /// An authenticated actor.
    Actor(Actor),
    /// A user of the embedded identity provider, signed in with `session`.
    User {
        /// Who, with their current role.
        actor: Actor,
        /// Their sign-in session.
        session: String,
    },
}

impl Identity {
    /// The authenticated actor, if any.
    pub fn actor(&self) -> Option<&Actor> {
        match self {
            Identity::Actor(actor) | Identity::User { actor, .. } => Some(actor),
            Identity::Anonymous | Identity::Refused(_) => None,
        }
    }
}

/// The SDL of the schema (committed as `graphql-api/schema.graphql`).
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}

/// The schema over `context`, with its limits.
pub fn schema(context: ApiContext) -> ApiSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(context)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// An error with its stable code.
pub(crate) fn coded(code: &str, message: impl Into<String>) -> async_graphql::Error {
    let code = code.to_owned();
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// An error with its stable code and, for invalid input, every problem with its path in
/// `extensions.problems` (`[{field, message}]`, paths within the argument the message names).
pub(crate) fn with_problems(
    code: &str,
    message: impl Into<String>,
    problems: &[domain::spec::Problem],
) -> async_graphql::Error {
    let error = coded(code, message);
    if problems.is_empty() {
        return error;
    }
    let problems = async_graphql::to_value(problems).unwrap_or_default();
    error.extend_with(|_, e| e.set("problems", problems))
}

/// A refused command as an error: its code, its retryability and its problems.
pub(crate) fn refusal(e: &command_lambdas::service::ServiceError) -> async_graphql::Error {
    let retryable = e.is_retryable();
    with_problems(e.code(), e.to_string(), e.problems()).extend_with(|_, x| {
        x.set("retryable", retryable);
    })
}

/// The experiment spec argument, read with every problem of shape and value at once.
pub(crate) fn spec_argument(
    spec: serde_json::Value,
) -> async_graphql::Result<domain::spec::ExperimentSpecInput> {
    domain::spec::ExperimentSpecInput::from_json(&spec)
        .map_err(|e| with_problems("INVALID_INPUT", format!("spec: {e}"), &e.problems))
}

/// The caller's actor, when its role is at least `needed`.
pub(crate) fn require(
    ctx: &async_graphql::Context<'_>,
    needed: Role,
) -> async_graphql::Result<Actor> {
    let identity = ctx.data_opt::<Identity>().unwrap_or(&Identity::Anonymous);
    match (identity.actor(), identity) {
        (Some(actor), _) if actor.role >= needed => Ok(actor.clone()),
        (Some(actor), _) => Err(coded(
            "FORBIDDEN",
            format!(
                "{} acts as {}; this takes {}",
                actor.id,
                actor.role.as_str(),
                needed.as_str()
            ),
        )),
        (None, Identity::Refused(why)) => Err(coded("UNAUTHENTICATED", why.clone())),
        (None, _) => Err(coded(
            "UNAUTHENTICATED",
            "no credential: sign in (the `login` mutation) or send an API key, as `Authorization: Bearer <credential>`",
        )),
    }
}

/// The identity a verdict stands for.
fn identity_of(verdict: Verdict) -> Identity {
    match verdict {
        Verdict::Actor {
            actor,
            session: Some(session),
        } => Identity::User { actor, session },
        Verdict::Actor {
            actor,
            session: None,
        } => Identity::Actor(actor),
        Verdict::Refused(why) => Identity::Refused(why),
    }
}

/// The credential a request presents, if any.
fn credential(headers: &HeaderMap) -> Option<Result<String, &'static str>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Ok(text) = value.to_str() else {
            return Some(Err("the Authorization header is not text"));
        };
        return Some(match text.split_once(' ') {
            Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(secret.trim().to_owned())
            }
            _ => Err("the Authorization header must be `Bearer <secret>`"),
        });
    }
    headers.get("x-api-key").map(|value| {
        value
            .to_str()
            .map(|s| s.trim().to_owned())
            .map_err(|_| "the X-Api-Key header is not text")
    })
}

async fn identify(context: &ApiContext, headers: &HeaderMap) -> Result<Identity, Response> {
    let secret = match credential(headers) {
        None => return Ok(Identity::Anonymous),
        Some(Err(why)) => return Ok(Identity::Refused(why.to_owned())),
        Some(Ok(secret)) => secret,
    };
    match context
        .auth
        .identify(context.backend.as_ref(), &secret)
        .await
    {
        Ok(verdict) => Ok(identity_of(verdict)),
        Err(e) => {
            tracing::error!(error = %e, "cannot check a credential");
            Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                &format!("credentials cannot be checked now: {e}"),
            ))
        }
    }
}

/// A response in GraphQL's error shape, for a request that never reached the schema.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{"message": message, "extensions": {"code": code}}]
    });
    (status, axum::Json(body)).into_response()
}

/// Whether a request says its body is JSON, as the GraphQL-over-HTTP spec asks of a POST
/// (`application/json`, with any parameters, such as `charset=utf-8`). A body sent as text,
/// a form or with no type at all is what a page of another site can send without asking the
/// browser first: it is refused before anything runs.
fn json_body(headers: &HeaderMap) -> Result<(), String> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = given.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else if media.is_empty() {
        Err("the request has no Content-Type: send the body as application/json".to_owned())
    } else {
        Err(format!("the body is {media}: send it as application/json"))
    }
}

/// A body as a GraphQL request: a JSON object with a `query` string (and optionally
/// `variables` and `operationName`).
fn parse_request(body: &[u8]) -> Result<async_graphql::Request, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !value.get("query").is_some_and(serde_json::Value::is_string) {
        return Err("the body is not a GraphQL request: it has no `query` string".to_owned());
    }
    serde_json::from_value(value).map_err(|e| format!("the body is not a GraphQL request: {e}"))
}

/// The API as served: the schema, and the context it was built over.
#[derive(Clone)]
pub struct Api {
    /// The schema.
    pub schema: ApiSchema,
    /// Its context (identities are checked against its store).
    pub context: ApiContext,
}

impl Api {
    /// The API over `context`.
    pub fn new(context: ApiContext) -> Self {
        Api {
            schema: schema(context.clone()),
            context,
        }
    }
}

/// Takes a request token for the caller (its actor, else its address): the 429 answer when
/// it has none left.
fn rate_limited(
    context: &ApiContext,
    identity: &Identity,
    peer: Option<std::net::SocketAddr>,
) -> Option<Response> {
    let key = match (identity.actor(), peer) {
        (Some(actor), _) => actor.id.clone(),
        (None, Some(peer)) => format!("ip:{}", peer.ip()),
        (None, None) => "anonymous".to_owned(),
    };
    let wait = context.limits.requests.take(&key, Instant::now()).err()?;
    let seconds = wait.as_secs().saturating_add(1);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        &format!("too many requests from {key}: try again in {seconds} s"),
    );
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// `POST /graphql`.
pub async fn serve(
    State(api): State<Api>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (schema, context) = (&api.schema, &api.context);
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Err(why) = json_body(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            &why,
        );
    }
    let request = match parse_request(&body) {
        Ok(request) => request,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &why),
    };
    let identity = match identify(context, &headers).await {
        Ok(identity) => identity,
        Err(response) => return response,
    };
    let peer = peer.map(|axum::Extension(axum::extract::ConnectInfo(addr))| addr);
    if let Some(response) = rate_limited(context, &identity, peer) {
        return response;
    }
    let scope = crate::limits::RequestScope::from(peer.map(|addr| addr.ip()));
    let response = schema.execute(request.data(identity).data(scope)).await;
    axum::Json(with_codes(response)).into_response()
}

/// The whole body, if it is at most [`MAX_BODY_BYTES`] and arrives within [`BODY_TIMEOUT`].
async fn read_body(body: axum::body::Body) -> Result<Bytes, Response> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "BAD_REQUEST",
                    &format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
                )
            } else {
                error_response(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    &format!("the body cannot be read: {e}"),
                )
            })
        }
        Err(_) => {
            let mut response = error_response(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                &format!(
                    "the body did not arrive whole within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            );
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            Err(response)
        }
    }
}

/// Gives a code to the errors raised before any resolver ran (parse, validation, limits),
/// which carry none.
fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let coded = error
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !coded {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "INVALID_QUERY");
        }
    }
    response
}

/// The schema as a socket runs it: every error with its code, as over HTTP.
#[derive(Clone)]
struct CodedSchema(ApiSchema);

impl async_graphql::Executor for CodedSchema {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        with_codes(self.0.execute(request).await)
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> futures::stream::BoxStream<'static, async_graphql::Response> {
        self.0
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(with_codes)
            .boxed()
    }
}

/// `GET /graphql`: a WebSocket for subscriptions when one is asked for (subprotocol
/// `graphql-transport-ws`, or the older `graphql-ws`), else GraphiQL.
pub async fn upgrade_or_graphiql(
    State(api): State<Api>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let wants_socket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_socket {
        return crate::graphiql::index(&parts.headers);
    }
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        });
    let Some(protocol) = protocol else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "a subscription socket needs the subprotocol graphql-transport-ws",
        );
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return error_response(rejection.status(), "BAD_REQUEST", &rejection.body_text());
        }
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| subscriptions(api, socket, protocol))
}

/// Least time between two checks of a socket's credential while it delivers.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);
/// Longest time between two checks of an idle socket's credential.
pub const RECHECK_IDLE: Duration = Duration::from_secs(30);

/// What a socket knows of its caller.
#[derive(Debug, Default)]
struct SocketCaller {
    /// `connection_init` was refused.
    refused: AtomicBool,
    /// The credential accepted, and who it was.
    accepted: std::sync::Mutex<Option<(String, Actor)>>,
}

impl SocketCaller {
    /// Why the socket must close: its credential no longer authenticates the same caller
    /// with the same role (revoked, expired, signed out, removed, demoted). An outage of the
    /// store is not a reason.
    async fn recheck(&self, context: &ApiContext) -> Option<String> {
        let (credential, actor) = self.accepted.lock().ok()?.clone()?;
        match context
            .auth
            .identify(context.backend.as_ref(), &credential)
            .await
        {
            Ok(verdict) => match identity_of(verdict) {
                Identity::Refused(why) => Some(format!("the credential no longer holds: {why}")),
                identity => match identity.actor() {
                    Some(now) if now.id == actor.id && now.role == actor.role => None,
                    _ => Some("the caller's role changed: connect again".to_owned()),
                },
            },
            Err(e) => {
                tracing::warn!(error = %e, "a socket's credential cannot be checked now");
                None
            }
        }
    }
}

/// The identity a socket's `connection_init` payload presents: `{"Authorization": "Bearer
/// <credential>"}` (or `{"token": "<credential>"}`). A socket without a good one is closed
/// (4403, with the reason); `caller` records which.
async fn connection_identity(
    context: ApiContext,
    payload: serde_json::Value,
    caller: Arc<SocketCaller>,
) -> async_graphql::Result<Data> {
    match socket_identity(&context, &payload).await {
        Ok((credential, identity)) => {
            if let (Some(actor), Ok(mut accepted)) = (identity.actor(), caller.accepted.lock()) {
                *accepted = Some((credential, actor.clone()));
            }
            let mut data = Data::default();
            data.insert(identity);
            data.insert(crate::limits::RequestScope::default());
            Ok(data)
        }
        Err(e) => {
            caller.refused.store(true, Ordering::SeqCst);
            Err(e)
        }
    }
}

async fn socket_identity(
    context: &ApiContext,
    payload: &serde_json::Value,
) -> async_graphql::Result<(String, Identity)> {
    let field = |name: &str| payload.get(name).and_then(|v| v.as_str());
    let credential = field("Authorization")
        .or_else(|| field("authorization"))
        .map(|value| match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => value.trim(),
        })
        .or_else(|| field("token"));
    let Some(credential) = credential else {
        return Err(async_graphql::Error::new(
            "no credential: send {\"Authorization\": \"Bearer <credential>\"} in connection_init",
        ));
    };
    let verdict = context
        .auth
        .identify(context.backend.as_ref(), credential)
        .await
        .map_err(|e| {
            async_graphql::Error::new(format!("credentials cannot be checked now: {e}"))
        })?;
    match identity_of(verdict) {
        Identity::Refused(why) => Err(async_graphql::Error::new(why)),
        identity => Ok((credential.to_owned(), identity)),
    }
}

/// How long a socket may stay open without `connection_init` (then it is closed 4408, as
/// `graphql-transport-ws` says).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a socket's message starts an operation (`subscribe`; `start` in the older
/// `graphql-ws`), which costs its caller a request of their rate.
fn starts_operation(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|m| m.get("type")?.as_str().map(str::to_owned))
        .is_some_and(|kind| kind == "subscribe" || kind == "start")
}

/// Serves one subscription socket until either side closes it.
async fn subscriptions(api: Api, socket: WebSocket, protocol: WebSocketProtocols) {
    let (mut sink, stream) = socket.split();
    let caller = Arc::new(SocketCaller::default());
    // Every operation started over the socket takes a request of its caller's rate, as over
    // HTTP; one over the rate ends the socket's input, and the socket is closed 4429.
    let over_rate = Arc::new(AtomicBool::new(false));
    let input = {
        let (context, caller, over_rate) = (
            api.context.clone(),
            Arc::clone(&caller),
            Arc::clone(&over_rate),
        );
        stream
            .take_while(|message| futures::future::ready(message.is_ok()))
            .filter_map(|message| {
                futures::future::ready(match message {
                    Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                        Some(message.into_data())
                    }
                    _ => None,
                })
            })
            .take_while(move |data| {
                let allowed = !starts_operation(data) || {
                    let key = caller
                        .accepted
                        .lock()
                        .ok()
                        .and_then(|accepted| accepted.as_ref().map(|(_, actor)| actor.id.clone()))
                        .unwrap_or_else(|| "unauthenticated socket".to_owned());
                    context.limits.requests.take(&key, Instant::now()).is_ok()
                };
                if !allowed {
                    over_rate.store(true, Ordering::SeqCst);
                }
                futures::future::ready(allowed)
            })
    };
    let context = api.context.clone();
    let init_caller = Arc::clone(&caller);
    let refused = Arc::clone(&caller);
    let outgoing =
        async_graphql::http::WebSocket::new(CodedSchema(api.schema.clone()), input, protocol)
            .on_connection_init(move |payload| connection_identity(context, payload, init_caller))
            .map(move |message| match message {
                WsMessage::Text(text) => Message::Text(text.into()),
                WsMessage::Close(code, reason) => {
                    // graphql-transport-ws: 4403 for a refused connection_init, 4401 for a
                    // subscription before it (async-graphql says 1002 and 1011).
                    let code = match code {
                        1002 if refused.refused.load(Ordering::SeqCst) => 4403,
                        1011 => 4401,
                        other => other,
                    };
                    Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    }))
                }
            });
    futures::pin_mut!(outgoing);
    // The caller's credential is checked again before delivering (at most every
    // RECHECK_AFTER) and while idle (every RECHECK_IDLE): a socket does not outlive the
    // revocation, expiry or sign-out of what opened it.
    let mut checked = Instant::now();
    let mut idle =
        tokio::time::interval_at(tokio::time::Instant::now() + RECHECK_IDLE, RECHECK_IDLE);
    let init_deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
    let initialised = || {
        caller.refused.load(Ordering::SeqCst)
            || caller
                .accepted
                .lock()
                .is_ok_and(|accepted| accepted.is_some())
    };
    loop {
        let message = tokio::select! {
            message = outgoing.next() => match message {
                Some(message) => Some(message),
                None => break,
            },
            _ = idle.tick() => None,
            () = tokio::time::sleep_until(init_deadline), if !initialised() => {
                let close = Message::Close(Some(CloseFrame {
                    code: 4408,
                    reason: "Connection initialisation timeout".into(),
                }));
                let _ = sink.send(close).await;
                return;
            }
        };
        if checked.elapsed() >= RECHECK_AFTER {
            checked = Instant::now();
            if let Some(why) = caller.recheck(&api.context).await {
                let close = Message::Close(Some(CloseFrame {
                    code: 4403,
                    reason: why.into(),
                }));
                let _ = sink.send(close).await;
                break;
            }
        }
        if let Some(message) = message
            && sink.send(message).await.is_err()
        {
            break;
        }
    }
    if over_rate.load(Ordering::SeqCst) {
        let close = Message::Close(Some(CloseFrame {
            code: 4429,
            reason: "too many operations: the caller's request rate is spent".into(),
        }));
        let _ = sink.send(close).await;
    }
}

/// The API's routes: `GET /graphql` (GraphiQL, or the subscription socket),
/// `POST /graphql`, and GraphiQL's files under `/graphiql/`.
pub fn routes(api: Api) -> axum::Router {
    axum::Router::new()
        .route(
            "/graphql",
            axum::routing::get(upgrade_or_graphiql).post(serve),
        )
        .route(
            "/graphiql/{file}",
            axum::routing::get(crate::graphiql::asset),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}
