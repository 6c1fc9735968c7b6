//! The experiments read model: one record per experiment, for lists and the detail page.
//! (An experiment's timeline is its audit log entries, see [`super::audit_log`].)
//!
//! Status and phase come from folding the events with the aggregate's own `apply`, so the read
//! model can never disagree with what the write side decides on.

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::Envelope;
use crate::Timestamp;
use crate::experiment::{Experiment, ExperimentEvent, FailureReason, Outcome, Phase, Status};
use crate::spec::{ExperimentSpec, TargetKind};

/// Everything the detail page shows about one experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// Stream id.
    pub id: String,
    /// The folded aggregate state.
    pub state: Experiment,
    /// Creation time.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Time of the last event.
    pub updated_at: Timestamp,
    /// Last applied sequence.
    pub version: u64,
    /// Why it failed, when it did.
    pub failure: Option<FailureReason>,
    /// Why a stop was requested or tripped, when it was.
    pub stop_reason: Option<String>,
}

/// The list row of an experiment: the fields lists filter, sort and show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    /// Stream id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Target key (`fleet:web`, `asg:web-prod`).
    pub target: String,
    /// Target kind.
    pub target_kind: TargetKind,
    /// `TERMINATE` or `PAUSE`.
    pub failure_type: String,
    /// Dry run?
    pub dry_run: bool,
    /// Lifecycle status.
    pub status: Status,
    /// Phase while running.
    pub phase: Option<Phase>,
    /// Archived?
    pub archived: bool,
    /// Outcome of a completed run.
    pub outcome: Option<Outcome>,
    /// Recovery time, when observed.
    pub recovery_ms: Option<u64>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Planned start.
    pub start_at: Option<Timestamp>,
    /// Actual start.
    pub started_at: Option<Timestamp>,
    /// End.
    pub ended_at: Option<Timestamp>,
    /// Time of the last event.
    pub updated_at: Timestamp,
    /// Events applied.
    pub version: u64,
}

/// Name of a failure type as shown and filtered on.
pub fn failure_type_name(spec: &ExperimentSpec) -> &'static str {
    match spec.failure() {
        crate::spec::FailureType::Terminate => "TERMINATE",
        crate::spec::FailureType::Pause { .. } => "PAUSE",
    }
}

impl ExperimentRecord {
    /// Folds one event into the record (`None` before the first event).
    pub fn apply(record: Option<Self>, envelope: &Envelope, event: &ExperimentEvent) -> Self {
        let mut record = record.unwrap_or_else(|| Self {
            id: envelope.aggregate_id.clone(),
            state: Experiment::default(),
            created_at: event.at(),
            created_by: envelope.metadata.actor.clone(),
            updated_at: event.at(),
            version: 0,
            failure: None,
            stop_reason: None,
        });
        record.state.apply(event.clone());
        record.version = envelope.sequence;
        record.updated_at = event.at();
        match event {
            ExperimentEvent::ExperimentFailed { reason, .. } => {
                record.failure = Some(reason.clone())
            }
            ExperimentEvent::StopRequested { reason, .. } => {
                record.stop_reason = Some(reason.clone())
            }
            ExperimentEvent::StopConditionTripped { detail, .. } => {
                record.stop_reason = Some(detail.clone());
            }
            ExperimentEvent::RunInterrupted { detail, .. } => {
                record.stop_reason = Some(format!("interrupted: {detail}"));
            }
            _ => {}
        }
        record
    }

    /// The list row, or `None` while the stream has no `ExperimentCreated` (cannot happen for a
    /// valid stream).
    pub fn summary(&self) -> Option<ExperimentSummary> {
        let spec = self.state.spec()?;
        Some(ExperimentSummary {
            id: self.id.clone(),
            name: spec.name().to_owned(),
            target: spec.target().key(),
            target_kind: spec.target().kind,
            failure_type: failure_type_name(spec).to_owned(),
            dry_run: spec.dry_run(),
            status: self.state.status(),
            phase: self.state.phase(),
            archived: self.state.is_archived(),
            outcome: self.state.outcome(),
            recovery_ms: self.state.recovery_ms(),
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            start_at: self.state.start_at(),
            started_at: self.state.started_at(),
            ended_at: self.state.ended_at(),
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}
