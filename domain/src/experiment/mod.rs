//! The `Experiment` aggregate: one run of one failure against one target group.
//!
//! Lifecycle: `Draft` or `Scheduled` -> `Running` (phases: resolving targets, baseline,
//! injecting, observing recovery, rolling back) -> `Completed` | `Failed` | `Stopped`;
//! `Draft`/`Scheduled` -> `Cancelled`; any non-running state -> archived (soft delete).
//! Re-running an experiment means creating a new one (from the same spec or a template),
//! which keeps every stream short and bounded: see [`crate::limits`].

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Experiment, Phase, Status, check_platform_caps};
pub use commands::{ExperimentCommand, HealthSnapshot, PlatformGate};
pub use error::ExperimentError;
pub use events::{ExperimentEvent, FailureCode, FailureReason, Outcome, RollbackPlan, StopCause};
