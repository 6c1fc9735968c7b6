//! Amazon States Language, the subset the experiment workflow is written in, and an interpreter
//! of it: the embedded engine that runs `step-functions/experiment.asl.json` where Step
//! Functions runs it on AWS.
//!
//! States: `Task`, `Choice`, `Wait`, `Pass`, `Succeed`, `Fail`. Fields: `Next`/`End`,
//! `InputPath`, `OutputPath`, `Parameters`, `ResultSelector`, `ResultPath`, `Retry`
//! (`ErrorEquals`, `IntervalSeconds`, `MaxAttempts`, `BackoffRate`, `MaxDelaySeconds`),
//! `Catch` (`ErrorEquals`, `ResultPath`, `Next`), `Seconds`/`SecondsPath`, `Result`,
//! `Error`/`Cause`, and the comparison operators in [`definition::Comparison`].
//!
//! Loading is strict: a field or a state type outside the subset is an error naming where it
//! is, as are transitions to missing states. What this engine cannot run the same way as Step
//! Functions does not load, so the two engines cannot quietly part ways. The differential test
//! (`command-lambdas/tests/workflow_engines.rs`) runs the same definition through moto's Step
//! Functions and through this engine and compares every step.

pub mod definition;
pub mod engine;
pub mod path;

pub use definition::{Definition, DefinitionError};
pub use engine::{Event, Finished, Resources, TaskFailure, Timer};
