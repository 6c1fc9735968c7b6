//! Commands to the `Experiment` aggregate: imperative, each carrying its time and every fact
//! looked up at the edge (platform state, matching instances, observed health).

use serde::{Deserialize, Serialize};

use super::events::FailureReason;
use crate::Timestamp;
use crate::spec::{ExperimentId, ExperimentSpec, StopCondition, TargetId};

/// One health observation of the target group, integers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSnapshot {
    /// Instances answering health checks.
    pub healthy: u32,
    /// Instances expected (desired capacity).
    pub total: u32,
    /// 95th percentile latency through the load balancer, in milliseconds.
    pub latency_p95_ms: u32,
    /// Error rate through the load balancer, in basis points (10000 = 100 %).
    pub error_rate_bp: u32,
}

impl HealthSnapshot {
    /// Whether every expected instance is healthy.
    pub fn is_fully_healthy(&self) -> bool {
        self.total > 0 && self.healthy >= self.total
    }
}

/// Platform facts looked up by the edge before a start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformGate {
    /// The halt reason when the halt switch is on.
    pub halted: Option<String>,
    /// Platform cap on targets per run.
    pub max_targets_per_run: u32,
    /// Platform cap on run duration.
    pub max_duration_secs: u32,
    /// The blackout window now falls in, in words, when it falls in one.
    pub blackout: Option<String>,
}

/// Everything an experiment can be told to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExperimentCommand {
    /// Create an experiment from a validated spec.
    CreateExperiment {
        /// New stream id.
        id: ExperimentId,
        /// Validated spec.
        spec: ExperimentSpec,
        /// Now.
        at: Timestamp,
    },
    /// Plan (or move) the start.
    ScheduleExperiment {
        /// When to start.
        start_at: Timestamp,
        /// Now.
        at: Timestamp,
    },
    /// Abandon an experiment that has not started.
    CancelExperiment {
        /// Why.
        reason: String,
        /// Now.
        at: Timestamp,
    },
    /// Start the run.
    StartExperiment {
        /// Platform facts.
        gate: PlatformGate,
        /// Now.
        at: Timestamp,
    },
    /// Record the chosen targets (the selection applied to `candidates` matches).
    ResolveTargets {
        /// How many instances matched.
        candidates: u32,
        /// The chosen ones.
        targets: Vec<TargetId>,
        /// Now.
        at: Timestamp,
    },
    /// Record one health sample.
    RecordHealthCheck {
        /// Observation.
        health: HealthSnapshot,
        /// Now.
        at: Timestamp,
    },
    /// Record the baseline after its samples.
    RecordBaseline {
        /// Baseline health.
        health: HealthSnapshot,
        /// Now.
        at: Timestamp,
    },
    /// Inject the failure into these targets (recorded before acting).
    InjectFailure {
        /// Targets, a subset of the resolved ones.
        targets: Vec<TargetId>,
        /// Now.
        at: Timestamp,
    },
    /// Record that health came back.
    ObserveRecovery {
        /// Health at recovery.
        health: HealthSnapshot,
        /// Now.
        at: Timestamp,
    },
    /// A stop condition holds.
    TripStopCondition {
        /// Which one.
        condition: StopCondition,
        /// What was observed.
        detail: String,
        /// Now.
        at: Timestamp,
    },
    /// Ask the run to stop.
    RequestStop {
        /// Why.
        reason: String,
        /// Now.
        at: Timestamp,
    },
    /// Record that the process driving the run went away while its failure was in effect
    /// (the runner that takes the run up again says so before it does anything else).
    InterruptRun {
        /// What was lost, for people.
        detail: String,
        /// Now.
        at: Timestamp,
    },
    /// Record that the injected failure was undone.
    RecordRollback {
        /// What was done.
        detail: String,
        /// Now.
        at: Timestamp,
    },
    /// End the run normally (recovered, or not within the timeout).
    CompleteExperiment {
        /// Now.
        at: Timestamp,
    },
    /// End a dry run after its targets are resolved.
    FinishDryRun {
        /// Now.
        at: Timestamp,
    },
    /// End the run as failed.
    FailExperiment {
        /// Why.
        reason: FailureReason,
        /// Now.
        at: Timestamp,
    },
    /// End the run after a stop request or stop condition.
    MarkStopped {
        /// Now.
        at: Timestamp,
    },
    /// Archive (soft delete).
    ArchiveExperiment {
        /// Now.
        at: Timestamp,
    },
}

impl ExperimentCommand {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateExperiment { .. } => "CreateExperiment",
            Self::ScheduleExperiment { .. } => "ScheduleExperiment",
            Self::CancelExperiment { .. } => "CancelExperiment",
            Self::StartExperiment { .. } => "StartExperiment",
            Self::ResolveTargets { .. } => "ResolveTargets",
            Self::RecordHealthCheck { .. } => "RecordHealthCheck",
            Self::RecordBaseline { .. } => "RecordBaseline",
            Self::InjectFailure { .. } => "InjectFailure",
            Self::ObserveRecovery { .. } => "ObserveRecovery",
            Self::TripStopCondition { .. } => "TripStopCondition",
            Self::RequestStop { .. } => "RequestStop",
            Self::InterruptRun { .. } => "InterruptRun",
            Self::RecordRollback { .. } => "RecordRollback",
            Self::CompleteExperiment { .. } => "CompleteExperiment",
            Self::FinishDryRun { .. } => "FinishDryRun",
            Self::FailExperiment { .. } => "FailExperiment",
            Self::MarkStopped { .. } => "MarkStopped",
            Self::ArchiveExperiment { .. } => "ArchiveExperiment",
        }
    }
}
