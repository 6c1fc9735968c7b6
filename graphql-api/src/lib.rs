//! The GraphQL API, as a library: the `chaos` binary (`graphql-api/chaos`) serves it, embedded
//! or as the API task of an AWS deployment.
//!
//! - [`api`]: the GraphQL API (schema, identity, errors, limits) served on `/graphql`.
//! - [`backend`]: where the API's commands go and its reads come from: the embedded store,
//!   or the platform deployed on AWS.
//! - [`chain`]: the log's rows read for checking its chain (the `auditChain` query, and the
//!   auditors' commands).
//! - [`dashboard`]: the built web dashboard, served with a strict Content-Security-Policy.
//! - [`engine`]: the embedded engine: the workflow runner acting on the demo fleet, kept in
//!   step with the log.
//! - [`feed`]: the log as it grows, for the API's subscriptions (the embedded log, or the
//!   events table's DynamoDB Stream on AWS).
//! - [`http`]: the axum router served by `chaos serve`.
//! - [`identity`]: who a request is: API keys, the embedded identity provider (users,
//!   passwords, sessions, tokens), Cognito tokens.
//! - [`limits`]: request rates per caller and sign-in attempts per user.
//! - [`reads`]: connections to the read models, reused between queries.
//! - [`settings`]: experiment templates and users' preferences, kept beside the log.
//! - [`webhook_secret`]: issuing a webhook its signing secret, named in the log.
//!
//! This crate wires things together and translates errors at the edge; it decides nothing
//! about experiments (that is `domain`), and stores nothing of them itself (that is
//! `command-lambdas`); the only state it keeps is what must not or need not reach the
//! log: the embedded identity provider's credentials, templates and preferences.

pub mod api;
pub mod backend;
pub mod chain;
pub mod dashboard;
pub mod engine;
pub mod feed;
pub mod graphiql;
pub mod http;
pub mod identity;
pub mod lease;
pub mod limits;
pub mod reads;
pub mod serve;
pub mod settings;
pub mod webhook_secret;
