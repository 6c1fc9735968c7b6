//! The API server and the `chaos` command line.
//!
//! - [`api`]: the GraphQL API (schema, identity, errors, limits) served on `/graphql`.
//! - [`audit`]: the auditor's commands (`chaos audit verify | export | digest | replay`) over
//!   the embedded store, a DynamoDB events table or an export file.
//! - [`cli`]: the `chaos` binary's commands (serve, experiment, platform, audit) and their
//!   exit codes; the composition root of the embedded mode.
//! - [`engine`]: the embedded engine: the demo fleet, and the workflow runner kept in step
//!   with the log.
//! - [`http`]: the axum router served by `chaos serve`.
//!
//! This crate wires things together and translates errors at the edge; it decides nothing
//! about experiments (that is `domain`) and stores nothing itself (that is `command-lambdas`).

pub mod api;
pub mod audit;
pub mod cli;
pub mod engine;
pub mod http;
