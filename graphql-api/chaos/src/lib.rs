//! The `chaos` binary: the composition root of the embedded mode and every command line.
//!
//! - [`cli`]: the commands (serve, experiment, platform, webhooks, users, audit, ...), their
//!   exit codes, and the wiring of `chaos serve` (store, lease, engine, projector, webhook
//!   sender, the API's router) from the API library, `graphql_api`.
//! - [`audit`]: the auditors' commands, one module per verb (`verify`, `export`, `digest`,
//!   `replay`), over the embedded store, a DynamoDB events table or an export file.
//! - [`fleet_args`]: the demo fleet's options.
//!
//! Its end-to-end tests run this binary: the API, the dashboard in chromium, the CLI, the
//! auditors' tools.

pub mod audit;
pub mod cli;
pub mod fleet_args;
