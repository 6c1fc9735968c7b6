//! The experiment workflow's tasks: resolve targets, baseline, inject, check health, finish and
//! roll back. Step Functions runs each as a Lambda (one thin binary each); the embedded
//! interpreter calls the same functions in-process.
//!
//! Every task takes the experiment id, loads the experiment, and first applies the guards
//! that hold at every step: a run that has ended is left alone (`done`); a pending stop, a
//! platform halt, a blackout window, a run past its `max_duration_secs`, or a stop-condition alarm that is not OK
//! (failing closed) sends the workflow to rollback (`stop`). Only then does the task do its
//! own step. What a task learns is recorded through the event store before the next step can
//! depend on it; the failure is recorded before it is injected.
//!
//! Tasks are safe to retry. Each command a task issues carries a command id derived from the
//! step (`workflow:inject`, `workflow:health:4`), unique in the experiment's stream, so a
//! retried invocation whose command was stored already appends nothing; and each step looks
//! at the state first, so a step done already is not done again (injecting acts only on
//! targets still in service).
//!
//! Errors carry [`TaskError::is_retryable`], which the binaries turn into the error names the
//! workflow's `Retry` and `Catch` tell apart.

use std::sync::Arc;

use crate::store::Repository;
use domain::Timestamp;
use domain::experiment::{
    Experiment, ExperimentCommand, FailureCode, FailureReason, HealthSnapshot, Outcome, Phase,
    Status, check_platform_caps,
};
use domain::limits::{MAX_HEALTH_SAMPLES, MAX_TEXT_CHARS};
use domain::platform::Concern;
use domain::provenance::{CommandContext, Source};
use domain::spec::{ExperimentSpec, Problem, SpecError, StopCondition, TargetId};
use serde::{Deserialize, Serialize};

use crate::adapters::{AdapterError, AlarmSource, HealthProbe, TargetClaims, TargetProvider};
use crate::clock::Clock;
use crate::cloudwatch::LOAD_BALANCER_TAG;
use crate::service::{ExperimentService, ServiceError, system_context};

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The experiment or a command was refused, or the store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The fleet, its health or its alarms could not be read or acted on.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// The experiment is not at a step this task can take.
    #[error("experiment {id} is {status}: {task} has nothing to do")]
    WrongStep {
        /// The experiment.
        id: String,
        /// Its status and phase.
        status: String,
        /// The task.
        task: &'static str,
    },
}

impl TaskError {
    /// Whether the workflow may run the task again (throttling, outages, write contention).
    pub fn is_retryable(&self) -> bool {
        match self {
            TaskError::Service(e) => e.is_retryable(),
            TaskError::Adapter(e) => e.is_retryable(),
            TaskError::WrongStep { .. } => false,
        }
    }

    /// The error name the workflow's `Retry` and `Catch` match on.
    pub fn name(&self) -> &'static str {
        if self.is_retryable() {
            "Chaos.Retryable"
        } else {
            "Chaos.Failed"
        }
    }
}

/// What every task is given (the workflow's state may hold more; the rest is ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInput {
    /// The experiment.
    pub experiment_id: String,
    /// Why the workflow is rolling back, when it got there by a caught error (the rollback
    /// task's input): the error's name and cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CaughtError>,
}

/// An error caught by the workflow (`ResultPath` of a `Catch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaughtError {
    /// Error name.
    #[serde(default)]
    pub error: String,
    /// Its cause.
    #[serde(default)]
    pub cause: String,
}

impl CaughtError {
    /// The error in words: its name, and the message of a task's error (Step Functions hands
    /// a Lambda's error payload, `{"errorType", "errorMessage"}`, over as the cause).
    pub fn describe(&self) -> String {
        let message = serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| self.cause.clone());
        if message.is_empty() {
            self.error.clone()
        } else {
            format!("{}: {message}", self.error)
        }
    }
}

/// What every task answers: where the experiment is now, for the workflow's `Choice` states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutput {
    /// The experiment.
    pub experiment_id: String,
    /// Its status.
    pub status: Status,
    /// Its step, while running.
    pub phase: Option<Phase>,
    /// The run has ended: nothing more to do.
    pub done: bool,
    /// A stop is pending: go to rollback.
    pub stop: bool,
    /// Whether this is a dry run.
    pub dry_run: bool,
    /// The baseline is recorded.
    pub baseline_done: bool,
    /// Seconds to wait before the next health check.
    pub wait_seconds: u32,
    /// Observing recovery is over (recovered, or the timeout passed): record the outcome.
    pub observation_over: bool,
    /// The outcome, once completed.
    pub outcome: Option<Outcome>,
}

/// The workflow's tasks: one Lambda each on AWS, one `Resource` each in the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// [`Tasks::resolve_targets`].
    ResolveTargets,
    /// [`Tasks::baseline`].
    Baseline,
    /// [`Tasks::inject`].
    Inject,
    /// [`Tasks::check_health`].
    CheckHealth,
    /// [`Tasks::finish`].
    Finish,
    /// [`Tasks::rollback`].
    Rollback,
}

impl Task {
    /// Every task.
    pub const ALL: [Task; 6] = [
        Task::ResolveTargets,
        Task::Baseline,
        Task::Inject,
        Task::CheckHealth,
        Task::Finish,
        Task::Rollback,
    ];

    /// Its name in the definition's placeholders: `ResolveTargets` in
    /// `${ResolveTargetsFunctionArn}`.
    pub fn name(self) -> &'static str {
        match self {
            Task::ResolveTargets => "ResolveTargets",
            Task::Baseline => "Baseline",
            Task::Inject => "Inject",
            Task::CheckHealth => "CheckHealth",
            Task::Finish => "Finish",
            Task::Rollback => "Rollback",
        }
    }

    /// Whether the task runs the guards before anything else, so that once a stop or halt is
    /// in the log it acts on nothing. Every `Wait` of the definition leads to one of these,
    /// which is what lets a stop end a waiting run from outside its execution.
    pub fn guards_first(self) -> bool {
        match self {
            Task::ResolveTargets | Task::Baseline | Task::Inject | Task::CheckHealth => true,
            Task::Finish | Task::Rollback => false,
        }
    }

    /// The task a definition's `Resource` placeholder names (`${BaselineFunctionArn}`).
    pub fn from_resource(resource: &str) -> Option<Task> {
        let name = resource.strip_prefix("${")?.strip_suffix("FunctionArn}")?;
        Task::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The workflow's tasks over one event store and one fleet.
pub struct Tasks<R, T, H, A> {
    service: ExperimentService<R>,
    targets: T,
    health: H,
    alarms: A,
    clock: Arc<dyn Clock>,
    claims: Option<Arc<dyn TargetClaims>>,
}

impl<R, T, H, A> std::fmt::Debug for Tasks<R, T, H, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

/// The context of the workflow's step `step` of an experiment.
pub(crate) fn workflow_context(
    experiment_id: &str,
    step: &str,
) -> Result<CommandContext, ServiceError> {
    system_context(
        format!("workflow:{step}"),
        experiment_id,
        "workflow",
        Source::Workflow,
    )
}

/// The spec of a loaded experiment (every created experiment has one).
fn spec(experiment: &Experiment) -> Result<&ExperimentSpec, ServiceError> {
    experiment.spec().ok_or_else(|| {
        ServiceError::Experiment(crate::store::StoreError::Rejected(
            domain::experiment::ExperimentError::NotFound,
        ))
    })
}

/// What a selector would hit now ([`Tasks::preview`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPreview {
    /// The group's members in service, in id order.
    pub candidates: Vec<TargetId>,
    /// The ones the run would hit, in id order.
    pub would_hit: Vec<TargetId>,
}

impl<R, T, H, A> Tasks<R, T, H, A>
where
    R: Repository,
    T: TargetProvider,
    H: HealthProbe,
    A: AlarmSource,
{
    /// The tasks over `service`, acting on and observing the fleet through the adapters.
    pub fn new(
        service: ExperimentService<R>,
        targets: T,
        health: H,
        alarms: A,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            service,
            targets,
            health,
            alarms,
            clock,
            claims: None,
        }
    }

    /// The tasks with one running experiment per target, kept by `claims`: a run claims its
    /// target before resolving, and one that finds it held by a running experiment fails with
    /// `TARGET_BUSY`, having touched nothing.
    pub fn with_claims(mut self, claims: Arc<dyn TargetClaims>) -> Self {
        self.claims = Some(claims);
        self
    }

    /// The claims on targets, when kept.
    pub fn claims(&self) -> Option<&Arc<dyn TargetClaims>> {
        self.claims.as_ref()
    }

    /// Claims the target of `spec` for run `id`; the running experiment holding it otherwise.
    /// A holder whose run is over is taken over from.
    async fn claim(&self, id: &str, spec: &ExperimentSpec) -> Result<Option<String>, TaskError> {
        let Some(claims) = &self.claims else {
            return Ok(None);
        };
        let target = spec.target().key();
        let mut stale: Option<String> = None;
        for _ in 0..3 {
            let Some(holder) = claims.claim(&target, id, stale.as_deref()).await? else {
                return Ok(None);
            };
            if holder.is_empty() {
                // Released between the refusal and the look: claim again.
                stale = None;
                continue;
            }
            let running = match self.load(&holder).await {
                Ok(experiment) => experiment.status() == Status::Running,
                Err(e) if e.code() == "NOT_FOUND" => false,
                Err(e) => return Err(e.into()),
            };
            if running {
                return Ok(Some(holder));
            }
            stale = Some(holder);
        }
        Err(TaskError::Adapter(AdapterError::Unavailable {
            service: "target claims",
            message: format!("the claim on {target} kept changing hands"),
        }))
    }

    /// Releases the target of a run that has ended (best effort: a claim left behind is taken
    /// over, its holder's run being over).
    async fn release(&self, id: &str, experiment: &Experiment) {
        if let (Some(claims), Some(spec)) = (&self.claims, experiment.spec())
            && experiment.status().is_terminal()
            && let Err(e) = claims.release(&spec.target().key(), id).await
        {
            tracing::warn!(experiment = id, error = %e, "releasing the target claim failed");
        }
    }

    /// What a run of `spec` with id `seed` would hit if it resolved its targets now, without
    /// recording or touching anything: the same choice the run makes from the same members.
    /// A spec over the platform's caps is refused here as its start would be, naming the field.
    pub async fn preview(
        &self,
        spec: &ExperimentSpec,
        seed: &str,
    ) -> Result<TargetPreview, TaskError> {
        let config = self
            .service
            .platform_of(&[Concern::Limits])
            .await?
            .aggregate
            .config();
        check_platform_caps(spec, config.max_targets_per_run, config.max_duration_secs)
            .map_err(|e| ServiceError::Experiment(crate::store::StoreError::Rejected(e)))?;
        let problems = self.unobservable(spec).await?;
        if !problems.is_empty() {
            return Err(ServiceError::InvalidInput(SpecError { problems }).into());
        }
        let candidates = self.targets.candidates(spec.target()).await?;
        let would_hit = spec
            .selection()
            .choose(&candidates, spec.max_targets(), seed);
        let mut candidates = candidates;
        candidates.sort();
        candidates.dedup();
        Ok(TargetPreview {
            candidates,
            would_hit,
        })
    }

    /// The stop conditions of `spec` that its target's probe cannot observe, as problems at
    /// their paths: a `MAX_ERROR_RATE` limit on a target whose traffic nothing measures would
    /// read 0 % and never hold. Checked at create (by the API), at preview and before a run
    /// resolves its targets.
    pub async fn unobservable(&self, spec: &ExperimentSpec) -> Result<Vec<Problem>, AdapterError> {
        let limits: Vec<usize> = spec
            .guardrails()
            .stop_conditions
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, StopCondition::MaxErrorRate { .. }))
            .map(|(i, _)| i)
            .collect();
        if limits.is_empty() || self.health.measures_traffic(spec.target()).await? {
            return Ok(Vec::new());
        }
        let target = spec.target().key();
        Ok(limits
            .into_iter()
            .map(|i| Problem {
                field: format!("guardrails.stop_conditions[{i}]"),
                message: format!(
                    "nothing measures the traffic of {target} (an Auto Scaling group needs its \
                     {LOAD_BALANCER_TAG} tag): its error rate would read 0 % and this limit \
                     could never stop the run"
                ),
            })
            .collect())
    }

    /// The service the tasks command through.
    pub fn service(&self) -> &ExperimentService<R> {
        &self.service
    }

    /// The stop-condition alarms the tasks read.
    pub fn alarms(&self) -> &A {
        &self.alarms
    }

    /// The time, from the tasks' clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn load(&self, id: &str) -> Result<Experiment, ServiceError> {
        Ok(self.service.load(id).await?.aggregate)
    }

    /// Issues `command` on experiment `id` as the workflow's step `step` (the runner's own
    /// commands, such as failing a run whose execution ended, go through here too).
    pub async fn command(
        &self,
        id: &str,
        step: &str,
        command: ExperimentCommand,
    ) -> Result<(), ServiceError> {
        let context = workflow_context(id, step)?;
        self.service.experiment(id, command, &context).await?;
        Ok(())
    }

    fn output(&self, id: &str, experiment: &Experiment) -> TaskOutput {
        let spec = experiment.spec();
        TaskOutput {
            experiment_id: id.to_owned(),
            status: experiment.status(),
            phase: experiment.phase(),
            done: experiment.status().is_terminal(),
            stop: experiment.phase() == Some(Phase::RollingBack),
            dry_run: spec.is_some_and(ExperimentSpec::dry_run),
            baseline_done: experiment.baseline().is_some(),
            wait_seconds: spec.map_or(1, |s| s.recovery().poll_interval_secs.max(1)),
            observation_over: false,
            outcome: experiment.outcome(),
        }
    }

    /// The guards of every step. Returns the experiment as it is after them, and whether the
    /// task may go on with its own step (the run is still going and no stop is pending).
    async fn guard(&self, id: &str) -> Result<(Experiment, bool), TaskError> {
        let experiment = self.load(id).await?;
        if experiment.status() != Status::Running || experiment.phase() == Some(Phase::RollingBack)
        {
            return Ok((experiment, false));
        }
        let spec = spec(&experiment)?.clone();
        let now = self.now();
        let platform = self
            .service
            .platform_of(&[Concern::HaltSwitch, Concern::Blackouts])
            .await?
            .aggregate;
        let reason = if let Some((reason, _)) = platform.halted() {
            Some(format!("platform halted: {reason}"))
        } else if let Some(window) = platform.blackout_at(now) {
            Some(format!("in {window}"))
        } else {
            let limit_ms = u64::from(spec.guardrails().max_duration_secs) * 1_000;
            experiment
                .started_at()
                .and_then(|started| now.millis_since(started))
                .filter(|ran| *ran > limit_ms)
                .map(|ran| {
                    format!(
                        "ran {} s, longer than its limit of {} s",
                        ran / 1_000,
                        spec.guardrails().max_duration_secs
                    )
                })
        };
        if let Some(reason) = reason {
            self.command(
                id,
                "stop",
                ExperimentCommand::RequestStop { reason, at: now },
            )
            .await?;
            return Ok((self.load(id).await?, false));
        }
        if let Some(tripped) = self
            .alarms
            .first_tripped(&spec.guardrails().stop_conditions)
            .await?
        {
            self.command(
                id,
                "stop-condition",
                ExperimentCommand::TripStopCondition {
                    condition: tripped.condition,
                    detail: tripped.detail,
                    at: now,
                },
            )
            .await?;
            return Ok((self.load(id).await?, false));
        }
        Ok((experiment, true))
    }

    /// Records a health sample, tripping an error-rate stop condition it breaches. Returns
    /// whether the run may go on.
    async fn record_sample(
        &self,
        id: &str,
        experiment: &Experiment,
        health: HealthSnapshot,
    ) -> Result<bool, TaskError> {
        let spec = spec(experiment)?;
        let at = self.now();
        // A run's samples are bounded; past the bound a sample still counts for the stop
        // conditions but is not recorded (a run woken often must not fail for it).
        if experiment.health_samples() < MAX_HEALTH_SAMPLES {
            let step = format!("health:{}", experiment.health_samples() + 1);
            self.command(
                id,
                &step,
                ExperimentCommand::RecordHealthCheck { health, at },
            )
            .await?;
        }
        if let Some((condition, detail)) = spec
            .guardrails()
            .stop_conditions
            .iter()
            .find_map(|c| c.breached_by(&health).map(|d| (c.clone(), d)))
        {
            self.command(
                id,
                "stop-condition",
                ExperimentCommand::TripStopCondition {
                    condition,
                    detail,
                    at,
                },
            )
            .await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Runs `task` on `input`.
    pub async fn perform(&self, task: Task, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        match task {
            Task::ResolveTargets => self.resolve_targets(input).await,
            Task::Baseline => self.baseline(input).await,
            Task::Inject => self.inject(input).await,
            Task::CheckHealth => self.check_health(input).await,
            Task::Finish => self.finish(input).await,
            Task::Rollback => self.rollback(input).await,
        }
    }

    /// Resolves the targets: the spec's selection of the group's members in service. A dry
    /// run goes to [`Self::finish`] next (`dryRun`), having changed nothing.
    pub async fn resolve_targets(&self, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        let id = input.experiment_id.as_str();
        let (experiment, go_on) = self.guard(id).await?;
        if !go_on || experiment.targets().is_some() {
            return Ok(self.output(id, &experiment));
        }
        let spec = spec(&experiment)?;
        if !spec.dry_run()
            && let Some(holder) = self.claim(id, spec).await?
        {
            let target = spec.target().key();
            tracing::warn!(experiment = id, target = %target, holder = %holder, "target busy: the run fails");
            self.command(
                id,
                "target-busy",
                ExperimentCommand::FailExperiment {
                    reason: FailureReason {
                        code: FailureCode::TargetBusy,
                        message: format!(
                            "target {target} is busy with experiment {holder}: one running experiment per target"
                        )
                        .chars()
                        .take(MAX_TEXT_CHARS)
                        .collect(),
                    },
                    at: self.now(),
                },
            )
            .await?;
            return Ok(self.output(id, &self.load(id).await?));
        }
        if !spec.dry_run() {
            let problems = self.unobservable(spec).await?;
            if !problems.is_empty() {
                let message = SpecError { problems }.to_string();
                tracing::warn!(experiment = id, %message, "a stop condition cannot be observed: the run fails");
                self.command(
                    id,
                    "unobservable",
                    ExperimentCommand::FailExperiment {
                        reason: FailureReason {
                            code: FailureCode::UnobservableStopCondition,
                            message: message.chars().take(MAX_TEXT_CHARS).collect(),
                        },
                        at: self.now(),
                    },
                )
                .await?;
                self.release(id, &self.load(id).await?).await;
                return Ok(self.output(id, &self.load(id).await?));
            }
        }
        let candidates = self.targets.candidates(spec.target()).await?;
        let targets = spec.selection().choose(&candidates, spec.max_targets(), id);
        let candidates = u32::try_from(candidates.len()).unwrap_or(u32::MAX);
        self.command(
            id,
            "resolve",
            ExperimentCommand::ResolveTargets {
                candidates,
                targets,
                at: self.now(),
            },
        )
        .await?;
        Ok(self.output(id, &self.load(id).await?))
    }

    /// Takes one baseline sample; once the spec's count is reached, records the baseline.
    pub async fn baseline(&self, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        let id = input.experiment_id.as_str();
        let (experiment, go_on) = self.guard(id).await?;
        if !go_on || experiment.phase() != Some(Phase::Baseline) {
            return Ok(self.output(id, &experiment));
        }
        let spec = spec(&experiment)?;
        let health = self.health.sample(spec.target()).await?;
        if !self.record_sample(id, &experiment, health).await? {
            return Ok(self.output(id, &self.load(id).await?));
        }
        let experiment = self.load(id).await?;
        if experiment.health_samples() >= spec.recovery().baseline_samples {
            self.command(
                id,
                "baseline",
                ExperimentCommand::RecordBaseline {
                    health,
                    at: self.now(),
                },
            )
            .await?;
            return Ok(self.output(id, &self.load(id).await?));
        }
        Ok(self.output(id, &experiment))
    }

    /// Records the injection, then injects into the resolved targets still in service.
    pub async fn inject(&self, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        let id = input.experiment_id.as_str();
        let (experiment, go_on) = self.guard(id).await?;
        let injecting = matches!(
            experiment.phase(),
            Some(Phase::Injecting | Phase::ObservingRecovery)
        );
        if !go_on || !injecting {
            return Ok(self.output(id, &experiment));
        }
        let spec = spec(&experiment)?.clone();
        let targets: Vec<TargetId> = match experiment.injected() {
            Some((_, targets)) => targets.to_vec(),
            None => {
                let targets = experiment.targets().unwrap_or_default().to_vec();
                self.command(
                    id,
                    "inject",
                    ExperimentCommand::InjectFailure {
                        targets: targets.clone(),
                        at: self.now(),
                    },
                )
                .await?;
                targets
            }
        };
        // A retry after the action may find some targets gone already: act on the others.
        let in_service = self.targets.candidates(spec.target()).await?;
        let pending: Vec<TargetId> = targets
            .into_iter()
            .filter(|t| in_service.contains(t))
            .collect();
        if !pending.is_empty() {
            let injected = self
                .targets
                .inject(spec.target(), &pending, spec.failure())
                .await?;
            tracing::info!(experiment = id, detail = %injected.detail, "failure injected");
        }
        Ok(self.output(id, &self.load(id).await?))
    }

    /// One health check while waiting for recovery: records the recovery when the group is
    /// whole again, a sample otherwise; says when observing is over (recovered, or the
    /// timeout passed), for [`Self::finish`] to record the outcome.
    pub async fn check_health(&self, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        let id = input.experiment_id.as_str();
        let (experiment, go_on) = self.guard(id).await?;
        if !go_on || experiment.phase() != Some(Phase::ObservingRecovery) {
            return Ok(self.output(id, &experiment));
        }
        if experiment.recovery_ms().is_some() {
            // Recovered already (a retry): the outcome is what is left to record.
            let mut out = self.output(id, &experiment);
            out.observation_over = true;
            return Ok(out);
        }
        let spec = spec(&experiment)?.clone();
        let health = self.health.sample(spec.target()).await?;
        if health.is_fully_healthy() {
            self.command(
                id,
                "recovered",
                ExperimentCommand::ObserveRecovery {
                    health,
                    at: self.now(),
                },
            )
            .await?;
        } else if !self.record_sample(id, &experiment, health).await? {
            return Ok(self.output(id, &self.load(id).await?));
        }
        let experiment = self.load(id).await?;
        let deadline_passed = experiment.injected().is_some_and(|(at, _)| {
            let timeout_ms = i64::from(spec.recovery().timeout_secs) * 1_000;
            self.now()
                .millis_since(at.plus_millis(timeout_ms))
                .is_some()
        });
        let mut out = self.output(id, &experiment);
        out.observation_over = experiment.recovery_ms().is_some() || deadline_passed;
        Ok(out)
    }

    /// Records the outcome: a dry run's once its targets are resolved, a real run's (recovered
    /// or not) once observing is over, or stopped after a rollback.
    pub async fn finish(&self, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        let id = input.experiment_id.as_str();
        let experiment = self.load(id).await?;
        if experiment.status() != Status::Running {
            return Ok(self.output(id, &experiment));
        }
        let dry_run = spec(&experiment)?.dry_run();
        let command = match experiment.phase() {
            Some(Phase::RollingBack) => ExperimentCommand::MarkStopped { at: self.now() },
            Some(Phase::Baseline) if dry_run => ExperimentCommand::FinishDryRun { at: self.now() },
            Some(Phase::ObservingRecovery) => {
                ExperimentCommand::CompleteExperiment { at: self.now() }
            }
            _ => {
                return Err(TaskError::WrongStep {
                    id: id.to_owned(),
                    status: format!("{} ({:?})", experiment.status(), experiment.phase()),
                    task: "finish",
                });
            }
        };
        self.command(id, "finish", command).await?;
        let experiment = self.load(id).await?;
        self.release(id, &experiment).await;
        Ok(self.output(id, &experiment))
    }

    /// Takes the step an execution stopped between steps would have taken next (see
    /// [`crate::adapters::Hurried::Stopped`]): the guards, then the rollback when a stop is
    /// pending, as the workflow's own steps.
    pub async fn take_over(&self, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        let id = input.experiment_id.as_str();
        let (experiment, _) = self.guard(id).await?;
        if experiment.status() == Status::Running && experiment.phase() == Some(Phase::RollingBack)
        {
            return self.rollback(input).await;
        }
        Ok(self.output(id, &experiment))
    }

    /// Undoes what was injected where that is an action, records it, and ends the run:
    /// stopped when a stop was pending, failed when the workflow got here by an error.
    pub async fn rollback(&self, input: &TaskInput) -> Result<TaskOutput, TaskError> {
        let id = input.experiment_id.as_str();
        let experiment = self.load(id).await?;
        if experiment.status() != Status::Running {
            return Ok(self.output(id, &experiment));
        }
        let spec = spec(&experiment)?.clone();
        if !experiment.is_rolled_back() {
            let detail = match experiment.injected() {
                Some((_, targets)) => {
                    self.targets
                        .rollback(spec.target(), targets, spec.failure())
                        .await?
                }
                None => "nothing was injected".to_owned(),
            };
            self.command(
                id,
                "rollback",
                ExperimentCommand::RecordRollback {
                    detail,
                    at: self.now(),
                },
            )
            .await?;
        }
        let experiment = self.load(id).await?;
        let command = if experiment.phase() == Some(Phase::RollingBack) {
            ExperimentCommand::MarkStopped { at: self.now() }
        } else {
            let message = match &input.error {
                Some(e) => e.describe(),
                None => "the workflow rolled back".to_owned(),
            };
            ExperimentCommand::FailExperiment {
                reason: FailureReason {
                    code: FailureCode::TaskError,
                    message: message.chars().take(MAX_TEXT_CHARS).collect(),
                },
                at: self.now(),
            }
        };
        self.command(id, "end", command).await?;
        let experiment = self.load(id).await?;
        self.release(id, &experiment).await;
        Ok(self.output(id, &experiment))
    }
}
