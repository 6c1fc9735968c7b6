//! The read side as `chaos serve` runs it in one process (embedded mode), beside the Lambdas
//! in `projection-lambdas` so that no Lambda links SQLite:
//!
//! - [`projector`]: read models in SQLite beside the events, fed by a catch-up reader with a
//!   durable position and per-projection, per-stream checkpoints, under the delivery rules of
//!   `projection_lambdas::plan`; and the rebuild of them all from the log;
//! - [`queries`]: what the API and the CLI read from them (the questions and answers of
//!   `projection_lambdas::reads`, as the DynamoDB read models answer them on AWS);
//! - [`notify`]: webhook deliveries, from an outbox fed by the log, sent at least once.

pub mod notify;
pub mod projector;
pub mod queries;
