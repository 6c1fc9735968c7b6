//! The GraphQL API, as a library: the `chaos` binary (`graphql-api/chaos`) serves it, embedded
//! or as the API task of an AWS deployment.
//!
//! - [`api`]: the GraphQL API (schema, identity, errors, limits) served on `/graphql`.
//! - [`backend`]: the one seam between the server and where the platform's state is: the
//!   embedded store (with its workflow engine, read models, log tail and settings tables), or
//!   the platform deployed on AWS (dynamo-es, Step Functions, the read-model table, the events
//!   table's stream). Nothing else knows which mode it runs in.
//! - [`chain`]: the log's rows read for checking its chain (the `auditChain` query, and the
//!   auditors' commands).
//! - [`dashboard`]: the built web dashboard, served with a strict Content-Security-Policy.
//! - [`feed`]: the log as it grows, for the API's subscriptions: one catch-up state machine
//!   over either mode's source.
//! - [`http`]: the axum router served by `chaos serve`.
//! - [`identity`]: who a request is: API keys, the embedded identity provider (users,
//!   passwords, sessions, tokens), Cognito tokens.
//! - [`limits`]: request rates per caller and sign-in attempts per user.
//! - [`settings`]: experiment templates and users' preferences, kept beside the log.
//!
//! This crate wires things together and translates errors at the edge; it decides nothing
//! about experiments (that is `domain`), and stores nothing of them itself (that is
//! `command-lambdas`); the only state it keeps is what must not or need not reach the
//! log: the embedded identity provider's credentials, templates and preferences.

pub mod api;
pub mod backend;
pub mod chain;
pub mod dashboard;
pub mod feed;
pub mod graphiql;
pub mod http;
pub mod identity;
pub mod limits;
pub mod serve;
pub mod settings;
