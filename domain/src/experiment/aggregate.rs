//! The `Experiment` aggregate: state folded from events, and the decisions on commands.

use std::collections::BTreeSet;
use std::fmt;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::{ExperimentCommand, HealthSnapshot, PlatformGate};
use super::error::ExperimentError;
// Every decision names the events it produces: `E::ExperimentStarted { .. }`.
use super::events::ExperimentEvent as E;
use super::events::{
    ExperimentEvent, FailureCode, FailureReason, Outcome, RollbackPlan, StopCause,
};
use crate::limits::{MAX_EXPERIMENT_EVENTS, MAX_HEALTH_SAMPLES, MAX_SCHEDULES};
use crate::spec::{ExperimentId, ExperimentSpec, StopCondition, TargetId, parse_text};
use crate::{BoundedStream, Timestamp};

/// Where an experiment is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Not created yet (only as the state of an empty stream).
    #[default]
    New,
    /// Created, not scheduled.
    Draft,
    /// Waiting for its start time.
    Scheduled,
    /// Started and not ended.
    Running,
    /// Ended normally (see the outcome).
    Completed,
    /// Could not be carried out.
    Failed,
    /// Ended early on a stop request or stop condition.
    Stopped,
    /// Abandoned before it started.
    Cancelled,
}

impl Status {
    /// Whether the run has ended (or will never start).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Stopped | Status::Cancelled
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Status::New => "new",
            Status::Draft => "draft",
            Status::Scheduled => "scheduled",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
            Status::Cancelled => "cancelled",
        };
        f.write_str(text)
    }
}

/// Step of a running experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Choosing targets.
    ResolvingTargets,
    /// Sampling baseline health.
    Baseline,
    /// Ready to inject.
    Injecting,
    /// Waiting for health to come back.
    ObservingRecovery,
    /// A stop is pending: undoing and ending.
    RollingBack,
}

/// State of one experiment, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    id: Option<ExperimentId>,
    spec: Option<ExperimentSpec>,
    status: Status,
    archived: bool,
    version: usize,
    schedules: u32,
    start_at: Option<Timestamp>,
    started_at: Option<Timestamp>,
    candidates: Option<u32>,
    targets: Option<Vec<TargetId>>,
    health_samples: u32,
    baseline: Option<HealthSnapshot>,
    injected: Option<(Timestamp, Vec<TargetId>, RollbackPlan)>,
    recovery_ms: Option<u64>,
    stop: Option<StopCause>,
    rolled_back: bool,
    outcome: Option<Outcome>,
    ended_at: Option<Timestamp>,
}

impl Experiment {
    /// Stream id, once created.
    pub fn id(&self) -> Option<&ExperimentId> {
        self.id.as_ref()
    }
    /// Spec, once created.
    pub fn spec(&self) -> Option<&ExperimentSpec> {
        self.spec.as_ref()
    }
    /// Lifecycle status.
    pub fn status(&self) -> Status {
        self.status
    }
    /// Whether archived.
    pub fn is_archived(&self) -> bool {
        self.archived
    }
    /// Step of a running experiment.
    pub fn phase(&self) -> Option<Phase> {
        if self.status != Status::Running {
            return None;
        }
        Some(if self.stop.is_some() {
            Phase::RollingBack
        } else if self.targets.is_none() {
            Phase::ResolvingTargets
        } else if self.baseline.is_none() {
            Phase::Baseline
        } else if self.injected.is_none() {
            Phase::Injecting
        } else {
            Phase::ObservingRecovery
        })
    }
    /// Planned start, when scheduled.
    pub fn start_at(&self) -> Option<Timestamp> {
        self.start_at
    }
    /// Actual start.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }
    /// Resolved targets.
    pub fn targets(&self) -> Option<&[TargetId]> {
        self.targets.as_deref()
    }
    /// The baseline, once recorded.
    pub fn baseline(&self) -> Option<&HealthSnapshot> {
        self.baseline.as_ref()
    }
    /// When the failure was injected and into which targets.
    pub fn injected(&self) -> Option<(Timestamp, &[TargetId])> {
        self.injected
            .as_ref()
            .map(|(at, targets, _)| (*at, targets.as_slice()))
    }
    /// Whether a rollback was recorded.
    pub fn is_rolled_back(&self) -> bool {
        self.rolled_back
    }
    /// Health samples recorded.
    pub fn health_samples(&self) -> u32 {
        self.health_samples
    }
    /// Recovery time, when observed.
    pub fn recovery_ms(&self) -> Option<u64> {
        self.recovery_ms
    }
    /// Outcome of a completed run.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
    /// Why a stop is pending or happened.
    pub fn stop_cause(&self) -> Option<StopCause> {
        self.stop
    }
    /// When the run ended.
    pub fn ended_at(&self) -> Option<Timestamp> {
        self.ended_at
    }

    fn spec_ref(&self) -> Result<&ExperimentSpec, ExperimentError> {
        self.spec.as_ref().ok_or(ExperimentError::NotFound)
    }

    fn invalid(&self, action: &'static str) -> ExperimentError {
        ExperimentError::InvalidState {
            action,
            status: self.status,
        }
    }

    fn require_running(&self, action: &'static str) -> Result<(), ExperimentError> {
        if self.status == Status::Running {
            Ok(())
        } else {
            Err(self.invalid(action))
        }
    }

    /// Running and no stop pending: the forward path of the workflow.
    fn require_progressing(&self, action: &'static str) -> Result<(), ExperimentError> {
        self.require_running(action)?;
        if self.stop.is_some() {
            return Err(ExperimentError::StopPending);
        }
        Ok(())
    }

    fn require_real_run(&self) -> Result<(), ExperimentError> {
        if self.spec_ref()?.dry_run() {
            Err(ExperimentError::DryRun)
        } else {
            Ok(())
        }
    }

    /// The pure decision: which events a command produces from this state.
    pub fn decide(
        &self,
        command: ExperimentCommand,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        use ExperimentCommand as C;

        match (&command, self.status) {
            (C::CreateExperiment { .. }, Status::New) => {}
            (C::CreateExperiment { .. }, _) => return Err(ExperimentError::AlreadyExists),
            (_, Status::New) => return Err(ExperimentError::NotFound),
            _ if self.archived => return Err(ExperimentError::Archived),
            _ => {}
        }

        let events = match command {
            C::CreateExperiment { id, spec, at } => vec![E::ExperimentCreated { id, spec, at }],
            C::ScheduleExperiment { start_at, at } => self.schedule_experiment(start_at, at)?,
            C::CancelExperiment { reason, at } => self.cancel_experiment(reason, at)?,
            C::StartExperiment { gate, at } => self.start_experiment(gate, at)?,
            C::ResolveTargets {
                candidates,
                targets,
                at,
            } => self.resolve_targets(candidates, targets, at)?,
            C::RecordHealthCheck { health, at } => self.record_health_check(health, at)?,
            C::RecordBaseline { health, at } => self.record_baseline(health, at)?,
            C::InjectFailure { targets, at } => self.inject_failure(targets, at)?,
            C::ObserveRecovery { health, at } => self.observe_recovery(health, at)?,
            C::CompleteExperiment { at } => self.complete_experiment(at)?,
            C::FinishDryRun { at } => self.finish_dry_run(at)?,
            C::TripStopCondition {
                condition,
                detail,
                at,
            } => self.trip_stop_condition(condition, detail, at)?,
            C::RequestStop { reason, at } => self.request_stop(reason, at)?,
            C::InterruptRun { detail, at } => self.interrupt_run(detail, at)?,
            C::RecordRollback { detail, at } => self.record_rollback(detail, at)?,
            C::MarkStopped { at } => self.mark_stopped(at)?,
            C::FailExperiment { reason, at } => self.fail_experiment(reason, at)?,
            C::ArchiveExperiment { at } => self.archive_experiment(at)?,
        };

        if self.version + events.len() > MAX_EXPERIMENT_EVENTS {
            return Err(ExperimentError::StreamFull {
                max: MAX_EXPERIMENT_EVENTS,
            });
        }
        Ok(events)
    }

    /// Decides [`ExperimentCommand::ScheduleExperiment`].
    fn schedule_experiment(
        &self,
        start_at: Timestamp,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        if !matches!(self.status, Status::Draft | Status::Scheduled) {
            return Err(self.invalid("schedule"));
        }
        if start_at <= at {
            return Err(ExperimentError::ScheduleInPast {
                start_at: start_at.to_string(),
            });
        }
        if self.schedules >= MAX_SCHEDULES {
            return Err(ExperimentError::TooManySchedules { max: MAX_SCHEDULES });
        }
        Ok(vec![E::ExperimentScheduled { start_at, at }])
    }

    /// Decides [`ExperimentCommand::CancelExperiment`].
    fn cancel_experiment(
        &self,
        reason: String,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        if !matches!(self.status, Status::Draft | Status::Scheduled) {
            return Err(self.invalid("cancel"));
        }
        let reason = parse_text("reason", &reason)?;
        Ok(vec![E::ExperimentCancelled { reason, at }])
    }

    /// Decides [`ExperimentCommand::StartExperiment`].
    fn start_experiment(
        &self,
        gate: PlatformGate,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        if !matches!(self.status, Status::Draft | Status::Scheduled) {
            return Err(self.invalid("start"));
        }
        self.check_gate(&gate)?;
        Ok(vec![E::ExperimentStarted { at }])
    }

    /// Decides [`ExperimentCommand::ResolveTargets`].
    fn resolve_targets(
        &self,
        candidates: u32,
        targets: Vec<TargetId>,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_progressing("resolve targets")?;
        if self.targets.is_some() {
            return Err(ExperimentError::TargetsAlreadyResolved);
        }
        let spec = self.spec_ref()?;
        let expected = spec
            .selection()
            .resolve_count(candidates, spec.max_targets());
        let got = u32::try_from(targets.len()).unwrap_or(u32::MAX);
        if candidates == 0 && targets.is_empty() {
            let message = format!(
                "no instance matched target {}: refusing to widen the selection",
                spec.target().key()
            );
            return Ok(vec![E::ExperimentFailed {
                reason: FailureReason {
                    code: FailureCode::NoTargets,
                    message,
                },
                at,
            }]);
        }
        if got != expected {
            return Err(ExperimentError::TargetCountMismatch {
                candidates,
                expected,
                got,
            });
        }
        check_distinct(&targets)?;
        Ok(vec![E::TargetsResolved {
            candidates,
            targets,
            at,
        }])
    }

    /// Decides [`ExperimentCommand::RecordHealthCheck`].
    fn record_health_check(
        &self,
        health: HealthSnapshot,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_progressing("record health")?;
        self.require_real_run()?;
        if self.targets.is_none() {
            return Err(ExperimentError::TargetsNotResolved);
        }
        check_health(&health)?;
        if self.health_samples >= MAX_HEALTH_SAMPLES {
            return Err(ExperimentError::HealthSampleLimit {
                max: MAX_HEALTH_SAMPLES,
            });
        }
        Ok(vec![E::HealthChecked {
            sample: self.health_samples + 1,
            health,
            at,
        }])
    }

    /// Decides [`ExperimentCommand::RecordBaseline`].
    fn record_baseline(
        &self,
        health: HealthSnapshot,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_progressing("record baseline")?;
        self.require_real_run()?;
        if self.targets.is_none() {
            return Err(ExperimentError::TargetsNotResolved);
        }
        if self.baseline.is_some() {
            return Err(ExperimentError::BaselineAlreadyRecorded);
        }
        check_health(&health)?;
        let needed = self.spec_ref()?.recovery().baseline_samples;
        if self.health_samples < needed {
            return Err(ExperimentError::BaselineIncomplete {
                needed,
                recorded: self.health_samples,
            });
        }
        Ok(vec![E::BaselineRecorded { health, at }])
    }

    /// Decides [`ExperimentCommand::InjectFailure`].
    fn inject_failure(
        &self,
        targets: Vec<TargetId>,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_progressing("inject")?;
        let Some(resolved) = &self.targets else {
            return Err(ExperimentError::TargetsNotResolved);
        };
        self.require_real_run()?;
        if self.injected.is_some() {
            return Err(ExperimentError::AlreadyInjected);
        }
        if self.rolled_back {
            // A rollback recorded before the injection must not count as undoing it.
            return Err(ExperimentError::AlreadyRolledBack);
        }
        if self.baseline.is_none() {
            return Err(ExperimentError::BaselineNotRecorded);
        }
        if targets.is_empty() {
            return Err(ExperimentError::NoTargetsToInject);
        }
        check_distinct(&targets)?;
        if let Some(unknown) = targets.iter().find(|t| !resolved.contains(t)) {
            return Err(ExperimentError::UnknownTarget(unknown.clone()));
        }
        let rollback = if self.spec_ref()?.failure().is_reversible() {
            RollbackPlan::Resume
        } else {
            RollbackPlan::None
        };
        Ok(vec![E::FailureInjected {
            targets,
            rollback,
            at,
        }])
    }

    /// Decides [`ExperimentCommand::ObserveRecovery`].
    fn observe_recovery(
        &self,
        health: HealthSnapshot,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_progressing("observe recovery")?;
        let Some((injected_at, _, _)) = &self.injected else {
            return Err(ExperimentError::NotInjected);
        };
        if self.recovery_ms.is_some() {
            return Err(ExperimentError::AlreadyRecovered);
        }
        check_health(&health)?;
        let recovery_ms =
            at.millis_since(*injected_at)
                .ok_or_else(|| ExperimentError::ClockSkew {
                    at: at.to_string(),
                    injected_at: injected_at.to_string(),
                })?;
        Ok(vec![E::RecoveryObserved {
            recovery_ms,
            health,
            at,
        }])
    }

    /// Decides [`ExperimentCommand::CompleteExperiment`].
    fn complete_experiment(&self, at: Timestamp) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_progressing("complete")?;
        self.require_real_run()?;
        let Some((injected_at, _, _)) = &self.injected else {
            return Err(ExperimentError::NotInjected);
        };
        let (outcome, recovery_ms) = match self.recovery_ms {
            Some(ms) => (Outcome::Recovered, Some(ms)),
            None => {
                let timeout_ms = i64::from(self.spec_ref()?.recovery().timeout_secs) * 1_000;
                let deadline = injected_at.plus_millis(timeout_ms);
                if let Some(remaining_ms) = deadline.millis_since(at).filter(|ms| *ms > 0) {
                    return Err(ExperimentError::RecoveryPending { remaining_ms });
                }
                (Outcome::NotRecovered, None)
            }
        };
        Ok(vec![E::ExperimentCompleted {
            outcome,
            recovery_ms,
            at,
        }])
    }

    /// Decides [`ExperimentCommand::FinishDryRun`].
    fn finish_dry_run(&self, at: Timestamp) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_progressing("finish dry run")?;
        if !self.spec_ref()?.dry_run() {
            return Err(ExperimentError::NotDryRun);
        }
        if self.targets.is_none() {
            return Err(ExperimentError::TargetsNotResolved);
        }
        Ok(vec![E::ExperimentCompleted {
            outcome: Outcome::DryRun,
            recovery_ms: None,
            at,
        }])
    }

    /// Decides [`ExperimentCommand::TripStopCondition`].
    fn trip_stop_condition(
        &self,
        condition: StopCondition,
        detail: String,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_running("trip a stop condition")?;
        if !self
            .spec_ref()?
            .guardrails()
            .stop_conditions
            .contains(&condition)
        {
            return Err(ExperimentError::UnknownStopCondition);
        }
        let detail = parse_text("detail", &detail)?;
        if self.stop.is_some() {
            // Already stopping: a second observer of the same trouble changes nothing.
            return Ok(Vec::new());
        }
        Ok(vec![E::StopConditionTripped {
            condition,
            detail,
            at,
        }])
    }

    /// Decides [`ExperimentCommand::RequestStop`].
    fn request_stop(
        &self,
        reason: String,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_running("stop")?;
        let reason = parse_text("reason", &reason)?;
        if self.stop.is_some() {
            return Ok(Vec::new());
        }
        Ok(vec![E::StopRequested { reason, at }])
    }

    /// Decides [`ExperimentCommand::InterruptRun`].
    fn interrupt_run(
        &self,
        detail: String,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_running("interrupt")?;
        self.require_real_run()?;
        let detail = parse_text("detail", &detail)?;
        if self.injected.is_none() {
            // Nothing acts on the targets yet: the run just goes on where it was.
            return Err(ExperimentError::NotInjected);
        }
        if self.recovery_ms.is_some() {
            // The recovery was measured before the loss: the measurement stands.
            return Err(ExperimentError::AlreadyRecovered);
        }
        if self.stop.is_some() {
            // Already stopping: the stop's own cause is the one on record.
            return Ok(Vec::new());
        }
        Ok(vec![E::RunInterrupted { detail, at }])
    }

    /// Decides [`ExperimentCommand::RecordRollback`].
    fn record_rollback(
        &self,
        detail: String,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_running("roll back")?;
        if self.rolled_back {
            return Err(ExperimentError::AlreadyRolledBack);
        }
        let detail = parse_text("detail", &detail)?;
        Ok(vec![E::RollbackPerformed { detail, at }])
    }

    /// Decides [`ExperimentCommand::MarkStopped`].
    fn mark_stopped(&self, at: Timestamp) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_running("mark stopped")?;
        let Some(cause) = self.stop else {
            return Err(ExperimentError::StopNotRequested);
        };
        self.require_rolled_back_if_needed()?;
        Ok(vec![E::ExperimentStopped { cause, at }])
    }

    /// Decides [`ExperimentCommand::FailExperiment`].
    fn fail_experiment(
        &self,
        reason: FailureReason,
        at: Timestamp,
    ) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        self.require_running("fail")?;
        let message = parse_text("reason.message", &reason.message)?;
        Ok(vec![E::ExperimentFailed {
            reason: FailureReason {
                code: reason.code,
                message,
            },
            at,
        }])
    }

    /// Decides [`ExperimentCommand::ArchiveExperiment`].
    fn archive_experiment(&self, at: Timestamp) -> Result<Vec<ExperimentEvent>, ExperimentError> {
        if self.status == Status::Running {
            return Err(self.invalid("archive"));
        }
        Ok(vec![E::ExperimentArchived { at }])
    }

    fn check_gate(&self, gate: &PlatformGate) -> Result<(), ExperimentError> {
        if let Some(reason) = &gate.halted {
            return Err(ExperimentError::PlatformHalted {
                reason: reason.clone(),
            });
        }
        if let Some(window) = &gate.blackout {
            return Err(ExperimentError::InBlackout {
                window: window.clone(),
            });
        }
        check_platform_caps(
            self.spec_ref()?,
            gate.max_targets_per_run,
            gate.max_duration_secs,
        )
    }

    fn require_rolled_back_if_needed(&self) -> Result<(), ExperimentError> {
        match &self.injected {
            Some((_, _, RollbackPlan::Resume)) if !self.rolled_back => {
                Err(ExperimentError::RollbackRequired)
            }
            _ => Ok(()),
        }
    }
}

/// Whether `spec` stays within the platform's caps: checked when a run starts and when its
/// targets are previewed. The refusal names the spec field that exceeds the cap.
pub fn check_platform_caps(
    spec: &ExperimentSpec,
    max_targets_per_run: u32,
    max_duration_secs: u32,
) -> Result<(), ExperimentError> {
    if spec.max_targets() > max_targets_per_run {
        return Err(ExperimentError::ExceedsPlatformCap {
            what: "max_targets",
            value: spec.max_targets(),
            limit: max_targets_per_run,
        });
    }
    let duration = spec.guardrails().max_duration_secs;
    if duration > max_duration_secs {
        return Err(ExperimentError::ExceedsPlatformCap {
            what: "guardrails.max_duration_secs",
            value: duration,
            limit: max_duration_secs,
        });
    }
    Ok(())
}

fn check_distinct(targets: &[TargetId]) -> Result<(), ExperimentError> {
    let mut seen = BTreeSet::new();
    match targets.iter().find(|t| !seen.insert(*t)) {
        Some(dup) => Err(ExperimentError::DuplicateTarget(dup.clone())),
        None => Ok(()),
    }
}

fn check_health(health: &HealthSnapshot) -> Result<(), ExperimentError> {
    if health.healthy > health.total {
        return Err(ExperimentError::InvalidHealth("healthy exceeds total"));
    }
    if health.error_rate_bp > 10_000 {
        return Err(ExperimentError::InvalidHealth(
            "error_rate_bp exceeds 10000",
        ));
    }
    Ok(())
}

impl Aggregate for Experiment {
    const TYPE: &'static str = "Experiment";
    type Command = ExperimentCommand;
    type Event = ExperimentEvent;
    type Error = ExperimentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            E::ExperimentCreated { id, spec, .. } => {
                self.id = Some(id);
                self.spec = Some(spec);
                self.status = Status::Draft;
            }
            E::ExperimentScheduled { start_at, .. } => {
                self.status = Status::Scheduled;
                self.start_at = Some(start_at);
                self.schedules += 1;
            }
            E::ExperimentCancelled { at, .. } => {
                self.status = Status::Cancelled;
                self.ended_at = Some(at);
            }
            E::ExperimentStarted { at } => {
                self.status = Status::Running;
                self.started_at = Some(at);
            }
            E::TargetsResolved {
                candidates,
                targets,
                ..
            } => {
                self.candidates = Some(candidates);
                self.targets = Some(targets);
            }
            E::BaselineRecorded { health, .. } => self.baseline = Some(health),
            E::FailureInjected {
                targets,
                rollback,
                at,
            } => self.injected = Some((at, targets, rollback)),
            E::HealthChecked { .. } => self.health_samples += 1,
            E::RecoveryObserved { recovery_ms, .. } => self.recovery_ms = Some(recovery_ms),
            E::StopConditionTripped { .. } => self.stop = Some(StopCause::StopCondition),
            E::StopRequested { .. } => self.stop = Some(StopCause::Requested),
            E::RunInterrupted { .. } => self.stop = Some(StopCause::Interrupted),
            E::RollbackPerformed { .. } => self.rolled_back = true,
            E::ExperimentCompleted { outcome, at, .. } => {
                self.status = Status::Completed;
                self.outcome = Some(outcome);
                self.ended_at = Some(at);
            }
            E::ExperimentFailed { at, .. } => {
                self.status = Status::Failed;
                self.ended_at = Some(at);
            }
            E::ExperimentStopped { at, .. } => {
                self.status = Status::Stopped;
                self.ended_at = Some(at);
            }
            E::ExperimentArchived { .. } => self.archived = true,
        }
    }
}

impl BoundedStream for Experiment {
    const MAX_EVENTS: usize = MAX_EXPERIMENT_EVENTS;

    fn version(&self) -> usize {
        self.version
    }
}
