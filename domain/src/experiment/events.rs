//! Events of the `Experiment` aggregate: facts, in the past tense, versioned.
//!
//! Every event type has a golden JSON fixture under `domain/tests/fixtures/events/`; changing a
//! field's name or shape fails a test. A new shape means a new version with an upcaster, never
//! an edit of an old one: stored events are evidence.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::commands::HealthSnapshot;
use crate::Timestamp;
use crate::spec::{ExperimentId, ExperimentSpec, StopCondition, TargetId};

/// How an experiment that ran to the end turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Health came back within the recovery timeout.
    Recovered,
    /// The recovery timeout passed without health coming back.
    NotRecovered,
    /// A dry run: targets resolved, nothing touched.
    DryRun,
}

/// How to undo an injected failure, recorded when it is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RollbackPlan {
    /// Nothing to undo: the fleet repairs itself (a terminated instance is replaced).
    None,
    /// Resume the paused processes of the injected targets.
    Resume,
}

/// Why a run was stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StopCause {
    /// Someone (or the halt switch, or the duration guard) asked it to stop.
    Requested,
    /// A stop condition held.
    StopCondition,
    /// The platform lost the process driving the run while its failure was in effect: what
    /// was observed afterwards would not measure this failure (see `RunInterrupted`).
    Interrupted,
}

/// Category of a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureCode {
    /// No instance matched the target selector.
    NoTargets,
    /// A workflow task failed after its retries.
    TaskError,
    /// Rolling back failed.
    RollbackFailed,
    /// The process running the workflow went away and the run cannot continue.
    RunnerLost,
    /// Another run was acting on the same target: one running experiment per target.
    TargetBusy,
    /// A stop condition cannot be observed on the target (an error-rate limit on a group
    /// whose traffic nothing measures): the run would have had no guardrail.
    UnobservableStopCondition,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    /// Category.
    pub code: FailureCode,
    /// Detail for people.
    pub message: String,
}

/// Facts about one experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExperimentEvent {
    /// A validated spec was accepted.
    ExperimentCreated {
        /// Stream id.
        id: ExperimentId,
        /// What will be run.
        spec: ExperimentSpec,
        /// When.
        at: Timestamp,
    },
    /// The run was scheduled (or rescheduled) to start at `start_at`.
    ExperimentScheduled {
        /// Planned start.
        start_at: Timestamp,
        /// When the schedule was set.
        at: Timestamp,
    },
    /// The experiment was cancelled before it started.
    ExperimentCancelled {
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// The run started.
    ExperimentStarted {
        /// When.
        at: Timestamp,
    },
    /// The targets of the run were chosen from the matching instances.
    TargetsResolved {
        /// Instances that matched the selector.
        candidates: u32,
        /// Instances chosen (the selection applied to the candidates, within the caps).
        targets: Vec<TargetId>,
        /// When.
        at: Timestamp,
    },
    /// Healthy-state reference taken before injecting.
    BaselineRecorded {
        /// Baseline health.
        health: HealthSnapshot,
        /// When.
        at: Timestamp,
    },
    /// The failure was injected into these targets (recorded before acting).
    FailureInjected {
        /// Targets affected.
        targets: Vec<TargetId>,
        /// How to undo it, decided now so it is on record before it is needed.
        rollback: RollbackPlan,
        /// When.
        at: Timestamp,
    },
    /// One health sample (bounded: see `limits::MAX_HEALTH_SAMPLES`).
    HealthChecked {
        /// 1-based sample number within the run.
        sample: u32,
        /// Health observed.
        health: HealthSnapshot,
        /// When.
        at: Timestamp,
    },
    /// Health came back after the injection.
    RecoveryObserved {
        /// Milliseconds from injection to recovery.
        recovery_ms: u64,
        /// Health at recovery.
        health: HealthSnapshot,
        /// When.
        at: Timestamp,
    },
    /// A stop condition held; the run must stop.
    StopConditionTripped {
        /// Which condition.
        condition: StopCondition,
        /// What was observed.
        detail: String,
        /// When.
        at: Timestamp,
    },
    /// Someone asked the run to stop.
    StopRequested {
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// The process driving the run went away while the injected failure was in effect and
    /// before recovery was observed, and the run was taken up by another. What happens to the
    /// targets meanwhile (a restarted fleet comes up whole) is not the failure's effect: the
    /// run is rolled back and stopped, and kept out of recovery times and success rates.
    RunInterrupted {
        /// What was lost, for people.
        detail: String,
        /// When the run was taken up again.
        at: Timestamp,
    },
    /// The injected failure was undone.
    RollbackPerformed {
        /// What was done.
        detail: String,
        /// When.
        at: Timestamp,
    },
    /// The run ended normally.
    ExperimentCompleted {
        /// Result.
        outcome: Outcome,
        /// Recovery time, when recovered.
        recovery_ms: Option<u64>,
        /// When.
        at: Timestamp,
    },
    /// The run could not be carried out.
    ExperimentFailed {
        /// Why.
        reason: FailureReason,
        /// When.
        at: Timestamp,
    },
    /// The run ended early on a stop request or a stop condition.
    ExperimentStopped {
        /// Why.
        cause: StopCause,
        /// When.
        at: Timestamp,
    },
    /// The experiment was archived (hidden from lists, kept in the log).
    ExperimentArchived {
        /// When.
        at: Timestamp,
    },
}

impl ExperimentEvent {
    /// Every event type name, in lifecycle order.
    pub const TYPES: [&'static str; 17] = [
        "ExperimentCreated",
        "ExperimentScheduled",
        "ExperimentCancelled",
        "ExperimentStarted",
        "TargetsResolved",
        "BaselineRecorded",
        "FailureInjected",
        "HealthChecked",
        "RecoveryObserved",
        "StopConditionTripped",
        "StopRequested",
        "RunInterrupted",
        "RollbackPerformed",
        "ExperimentCompleted",
        "ExperimentFailed",
        "ExperimentStopped",
        "ExperimentArchived",
    ];

    /// The type name of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ExperimentCreated { .. } => "ExperimentCreated",
            Self::ExperimentScheduled { .. } => "ExperimentScheduled",
            Self::ExperimentCancelled { .. } => "ExperimentCancelled",
            Self::ExperimentStarted { .. } => "ExperimentStarted",
            Self::TargetsResolved { .. } => "TargetsResolved",
            Self::BaselineRecorded { .. } => "BaselineRecorded",
            Self::FailureInjected { .. } => "FailureInjected",
            Self::HealthChecked { .. } => "HealthChecked",
            Self::RecoveryObserved { .. } => "RecoveryObserved",
            Self::StopConditionTripped { .. } => "StopConditionTripped",
            Self::StopRequested { .. } => "StopRequested",
            Self::RunInterrupted { .. } => "RunInterrupted",
            Self::RollbackPerformed { .. } => "RollbackPerformed",
            Self::ExperimentCompleted { .. } => "ExperimentCompleted",
            Self::ExperimentFailed { .. } => "ExperimentFailed",
            Self::ExperimentStopped { .. } => "ExperimentStopped",
            Self::ExperimentArchived { .. } => "ExperimentArchived",
        }
    }

    /// When the fact happened (as decided at the edge).
    pub fn at(&self) -> Timestamp {
        match self {
            Self::ExperimentCreated { at, .. }
            | Self::ExperimentScheduled { at, .. }
            | Self::ExperimentCancelled { at, .. }
            | Self::ExperimentStarted { at }
            | Self::TargetsResolved { at, .. }
            | Self::BaselineRecorded { at, .. }
            | Self::FailureInjected { at, .. }
            | Self::HealthChecked { at, .. }
            | Self::RecoveryObserved { at, .. }
            | Self::StopConditionTripped { at, .. }
            | Self::StopRequested { at, .. }
            | Self::RunInterrupted { at, .. }
            | Self::RollbackPerformed { at, .. }
            | Self::ExperimentCompleted { at, .. }
            | Self::ExperimentFailed { at, .. }
            | Self::ExperimentStopped { at, .. }
            | Self::ExperimentArchived { at } => *at,
        }
    }
}

impl DomainEvent for ExperimentEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
