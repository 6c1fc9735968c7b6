//! The write side of the chaos platform.
//!
//! - [`store`]: the event store layer every command goes through (hash chain, idempotency,
//!   bounded retries, bounded streams), generic over the cqrs-es repository.
//! - [`dynamo`]: the AWS backend (dynamo-es over the `Events` table) and table verification.
//! - [`clock`]: the clock and id sources, the only non-deterministic inputs.
//! - [`adapters`]: the traits the workflow acts and observes through (targets, health,
//!   stop-condition alarms, the workflow engine); on AWS: [`asg`] (EC2 Auto Scaling groups),
//!   [`cloudwatch`] (health and alarms), [`sfn`] (Step Functions); embedded: the local demo
//!   fleet of worker processes behind a load balancer (the `demo-fleet` crate,
//!   `command-lambdas/fleet`).
//!
//! - [`tasks`]: the workflow's tasks (resolve targets, baseline, inject, check health,
//!   finish, roll back) over the event store and the adapters.
//! - [`scheduler`]: the embedded scheduler (due scheduled starts, recurring schedules, blackout
//!   windows).
//! - [`housekeeping`]: the AWS counterpart of the embedded loop: the scheduler's tick and the
//!   runs' reconciliation with their Step Functions executions, every minute.
//! - [`command`]: the command entry point (JSON command in, outcome or coded refusal out).
//! - [`lambda`]: what the Lambda binaries (`src/bin/`) share: configuration, clients, error
//!   names.
//!
//! Embedded mode's store (one SQLite file) and workflow runner are the `embedded-write` crate
//! (`command-lambdas/embedded`), over these same layers, so no Lambda links SQLite or the
//! workflow interpreter.
//!
//! The Lambda entry points are thin over these; the domain rules themselves live in the
//! `domain` crate and never here.

pub mod adapters;
pub mod api_keys;
pub mod asg;
pub mod clock;
pub mod cloudwatch;
pub mod command;
pub mod dynamo;
pub mod housekeeping;
pub mod lambda;
pub mod scheduler;
pub mod service;
pub mod sfn;
pub mod store;
pub mod tasks;

pub use store::{CommandOutcome, EventStore, StoreError};
