//! The results read model: one row per finished run.
//!
//! A run is finished when it completes, fails or is stopped after starting; a cancelled
//! experiment never ran and has no result. While a run is in progress its [`RunTracker`]
//! accumulates the health summary; the terminal event turns it into a [`RunResult`].

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::experiments::failure_type_name;
use crate::Timestamp;
use crate::experiment::{
    Experiment, ExperimentEvent, FailureCode, FailureReason, HealthSnapshot, Outcome, Status,
    StopCause,
};

/// How a run ended, as results and analytics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunOutcome {
    /// Health came back within the timeout.
    Recovered,
    /// It did not.
    NotRecovered,
    /// Dry run: targets resolved only.
    DryRun,
    /// The run could not be carried out.
    Failed,
    /// Stopped early on request or by a stop condition.
    Stopped,
    /// The platform lost the run while its failure was in effect (stopped with
    /// `StopCause::Interrupted`, or failed with `RUNNER_LOST`): it measured nothing about the
    /// target and is kept out of the rates and recovery times.
    Interrupted,
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// Experiment id.
    pub experiment_id: String,
    /// Experiment name.
    pub name: String,
    /// Target key.
    pub target: String,
    /// `TERMINATE` or `PAUSE`.
    pub failure_type: String,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Injection to recovery, when recovered.
    pub recovery_ms: Option<u64>,
    /// Start.
    pub started_at: Timestamp,
    /// End.
    pub ended_at: Timestamp,
    /// End minus start.
    pub duration_ms: u64,
    /// UTC day of the end, `YYYY-MM-DD` (for per-day analytics).
    pub day: String,
    /// Instances that matched the selector.
    pub candidates: u32,
    /// Instances the failure was injected into.
    pub targets_hit: Vec<String>,
    /// For a dry run, the instances it resolved: those a real run would have hit then (empty
    /// for any other run, whose `targets_hit` says what it hit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub would_hit: Vec<String>,
    /// Health samples taken.
    pub samples: u32,
    /// Lowest healthy count seen.
    pub min_healthy: Option<u32>,
    /// Highest error rate seen, basis points.
    pub max_error_rate_bp: Option<u32>,
    /// Highest p95 latency seen, milliseconds.
    pub max_latency_p95_ms: Option<u32>,
    /// Mean share of healthy instances over the samples, basis points.
    pub availability_bp: Option<u32>,
}

/// Progress of a run, folded until it finishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTracker {
    state: Experiment,
    candidates: u32,
    targets_hit: Vec<String>,
    #[serde(default)]
    resolved: Vec<String>,
    samples: u32,
    healthy_share_bp_sum: u64,
    min_healthy: Option<u32>,
    max_error_rate_bp: Option<u32>,
    max_latency_p95_ms: Option<u32>,
}

impl RunTracker {
    fn observe(&mut self, h: &HealthSnapshot) {
        self.samples += 1;
        let share = if h.total == 0 {
            0
        } else {
            u64::from(h.healthy.min(h.total)) * 10_000 / u64::from(h.total)
        };
        self.healthy_share_bp_sum += share;
        self.min_healthy = Some(self.min_healthy.map_or(h.healthy, |m| m.min(h.healthy)));
        self.max_error_rate_bp = Some(
            self.max_error_rate_bp
                .map_or(h.error_rate_bp, |m| m.max(h.error_rate_bp)),
        );
        self.max_latency_p95_ms = Some(
            self.max_latency_p95_ms
                .map_or(h.latency_p95_ms, |m| m.max(h.latency_p95_ms)),
        );
    }

    /// Folds one event; returns the run's result when this event finished it.
    pub fn apply(&mut self, aggregate_id: &str, event: &ExperimentEvent) -> Option<RunResult> {
        match event {
            ExperimentEvent::TargetsResolved {
                candidates,
                targets,
                ..
            } => {
                self.candidates = *candidates;
                self.resolved = targets.iter().map(|t| t.as_str().to_owned()).collect();
            }
            ExperimentEvent::FailureInjected { targets, .. } => {
                self.targets_hit = targets.iter().map(|t| t.as_str().to_owned()).collect();
            }
            ExperimentEvent::HealthChecked { health, .. } => self.observe(health),
            _ => {}
        }
        let was_running = self.state.status() == Status::Running;
        self.state.apply(event.clone());
        let status = self.state.status();
        if !was_running || !matches!(status, Status::Completed | Status::Failed | Status::Stopped) {
            return None;
        }
        let spec = self.state.spec()?;
        let started_at = self.state.started_at()?;
        let ended_at = self.state.ended_at()?;
        let outcome = match (status, event) {
            (
                Status::Failed,
                ExperimentEvent::ExperimentFailed {
                    reason:
                        FailureReason {
                            code: FailureCode::RunnerLost,
                            ..
                        },
                    ..
                },
            ) => RunOutcome::Interrupted,
            (Status::Failed, _) => RunOutcome::Failed,
            (Status::Stopped, _) if self.state.stop_cause() == Some(StopCause::Interrupted) => {
                RunOutcome::Interrupted
            }
            (Status::Stopped, _) => RunOutcome::Stopped,
            _ => match self.state.outcome() {
                Some(Outcome::Recovered) => RunOutcome::Recovered,
                Some(Outcome::DryRun) => RunOutcome::DryRun,
                _ => RunOutcome::NotRecovered,
            },
        };
        let availability_bp = (self.samples > 0).then(|| {
            u32::try_from(self.healthy_share_bp_sum / u64::from(self.samples)).unwrap_or(10_000)
        });
        Some(RunResult {
            experiment_id: aggregate_id.to_owned(),
            name: spec.name().to_owned(),
            target: spec.target().key(),
            failure_type: failure_type_name(spec).to_owned(),
            outcome,
            recovery_ms: self.state.recovery_ms(),
            started_at,
            ended_at,
            duration_ms: ended_at.millis_since(started_at).unwrap_or(0),
            day: ended_at.to_string()[..10].to_owned(),
            candidates: self.candidates,
            targets_hit: self.targets_hit.clone(),
            would_hit: if outcome == RunOutcome::DryRun {
                self.resolved.clone()
            } else {
                Vec::new()
            },
            samples: self.samples,
            min_healthy: self.min_healthy,
            max_error_rate_bp: self.max_error_rate_bp,
            max_latency_p95_ms: self.max_latency_p95_ms,
            availability_bp,
        })
    }
}
