//! The embedded workflow runner: runs the experiment workflow, `step-functions/experiment.asl.json`
//! (the one definition, compiled in), with the [`asl`] interpreter, its tasks in-process
//! through the same [`Tasks`] the Lambdas run.
//!
//! - **One execution per experiment**, named by its id, like Step Functions' execution name:
//!   a second start finds the first ([`WorkflowEngine`]).
//! - **Durable through the event log.** What a run has done is in its events, so a run whose
//!   process went away resumes where its phase says ([`resume_state`]): resolving or baseline
//!   at `ResolveTargets` (which does nothing twice), injecting at `Inject`, observing at
//!   `CheckHealth`, rolling back at `Rollback`. [`Workflows::reconcile`] is given the experiments
//!   the log says are running, and runs every one that has no execution here; so runs started
//!   by another process (the CLI) are picked up, and none is left running after a restart.
//! - **A run lost while its failure was in effect is interrupted, not resumed.** Once the
//!   failure is injected, only the execution that injected it can tell its effect from what
//!   happened to the fleet meanwhile (a restarted server's fleet comes up whole): a run taken up
//!   after injection and before its recovery was observed is recorded as interrupted
//!   (`RunInterrupted`), rolled back and stopped, and kept out of recovery times and rates.
//! - **One running experiment per target**: the tasks' claims (in this process: every run
//!   executes here, runs started elsewhere included); resumed runs claim their targets again.
//! - **No run stays running forever.** An execution that ends while its experiment is still
//!   running (its rollback failed after every retry, or the definition failed) ends the run
//!   as failed, with the error.
//! - **Woken, not polled, for what cannot wait:** [`Workflows::wake`] cuts the current `Wait`
//!   (or retry delay) of an execution short, so its next task runs now and sees what changed:
//!   a stop request, a halt, or a fleet whose health changed (so recovery is observed when it
//!   happens, not at the next poll). A task never runs twice at once for one experiment.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use command_lambdas::store::Repository;
use domain::experiment::{ExperimentCommand, FailureCode, FailureReason, Phase, Status};
use domain::limits::MAX_TEXT_CHARS;
use serde_json::{Value, json};
use tokio::sync::Notify;

use asl::{Definition, DefinitionError, Event, Finished, Resources, TaskFailure, Timer};
use command_lambdas::adapters::{
    AdapterError, AlarmSource, HealthProbe, Hurried, Started, TargetProvider, WorkflowEngine,
};
use command_lambdas::tasks::{Task, TaskInput, Tasks};

/// The workflow definition, as deployed to Step Functions.
pub const DEFINITION: &str = include_str!("../../../step-functions/experiment.asl.json");

/// The state a run in `phase` resumes at.
pub fn resume_state(phase: Option<Phase>) -> &'static str {
    match phase {
        None | Some(Phase::ResolvingTargets | Phase::Baseline) => "ResolveTargets",
        Some(Phase::Injecting) => "Inject",
        Some(Phase::ObservingRecovery) => "CheckHealth",
        Some(Phase::RollingBack) => "Rollback",
    }
}

/// Why the runner could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The definition does not load.
    #[error("the workflow definition does not load: {0}")]
    Definition(#[from] DefinitionError),
    /// A Task's resource names no task.
    #[error("state {state}: resource {resource} is not a task of this platform")]
    UnknownResource {
        /// The state.
        state: String,
        /// Its resource.
        resource: String,
    },
}

struct Inner<R, T, H, A> {
    definition: Definition,
    tasks: Tasks<R, T, H, A>,
    executions: Mutex<HashMap<String, Arc<Notify>>>,
    /// Runs this runner could not end after their execution ended: not run again.
    abandoned: Mutex<HashSet<String>>,
}

/// The embedded engine: runs experiments' workflows in this process.
pub struct Workflows<R, T, H, A> {
    inner: Arc<Inner<R, T, H, A>>,
}

impl<R, T, H, A> Clone for Workflows<R, T, H, A> {
    fn clone(&self) -> Self {
        Workflows {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R, T, H, A> std::fmt::Debug for Workflows<R, T, H, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = lock(&self.inner.executions).len();
        f.debug_struct("Workflows")
            .field("running", &running)
            .finish_non_exhaustive()
    }
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tasks as the interpreter's [`Resources`]: a failed task is reported as Step Functions
/// reports a failed Lambda, its error payload (`errorType`, `errorMessage`) as the cause.
struct InProcess<'a, R, T, H, A>(&'a Inner<R, T, H, A>);

impl<R, T, H, A> Resources for InProcess<'_, R, T, H, A>
where
    R: Repository,
    T: TargetProvider,
    H: HealthProbe,
    A: AlarmSource,
{
    async fn invoke(
        &self,
        state: &str,
        resource: &str,
        input: Value,
    ) -> Result<Value, TaskFailure> {
        let failure = |error: &str, message: String| TaskFailure {
            error: error.to_owned(),
            cause: json!({"errorType": error, "errorMessage": message}).to_string(),
        };
        let task = Task::from_resource(resource)
            .ok_or_else(|| failure("Chaos.Failed", format!("no task for resource {resource}")))?;
        let input: TaskInput = serde_json::from_value(input)
            .map_err(|e| failure("Chaos.Failed", format!("bad task input: {e}")))?;
        match self.0.tasks.perform(task, &input).await {
            Ok(output) => {
                serde_json::to_value(output).map_err(|e| failure("Chaos.Failed", e.to_string()))
            }
            Err(e) => {
                tracing::warn!(experiment = %input.experiment_id, state, error = %e, retryable = e.is_retryable(), "task failed");
                Err(failure(e.name(), e.to_string()))
            }
        }
    }
}

/// Waits, unless woken.
struct Wakeable(Arc<Notify>);

impl Timer for Wakeable {
    async fn sleep(&self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.0.notified() => {}
        }
    }
}

impl<R, T, H, A> Workflows<R, T, H, A>
where
    R: Repository + 'static,
    T: TargetProvider + 'static,
    H: HealthProbe + 'static,
    A: AlarmSource + 'static,
{
    /// The runner over `tasks`, with the compiled-in definition.
    pub fn new(tasks: Tasks<R, T, H, A>) -> Result<Self, WorkflowError> {
        let definition = Definition::from_json(DEFINITION)?;
        for (state, s) in definition.states() {
            if let asl::definition::State::Task(task) = s
                && Task::from_resource(&task.resource).is_none()
            {
                return Err(WorkflowError::UnknownResource {
                    state: state.to_owned(),
                    resource: task.resource.clone(),
                });
            }
        }
        Ok(Workflows {
            inner: Arc::new(Inner {
                definition,
                tasks,
                executions: Mutex::new(HashMap::new()),
                abandoned: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The tasks it runs.
    pub fn tasks(&self) -> &Tasks<R, T, H, A> {
        &self.inner.tasks
    }

    /// The experiments with an execution here.
    pub fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.inner.executions).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Cuts the current wait of `id`'s execution short (or the next one, if it is running a
    /// task now).
    pub fn wake(&self, id: &str) {
        if let Some(notify) = lock(&self.inner.executions).get(id) {
            notify.notify_one();
        }
    }

    /// Wakes every execution.
    pub fn wake_all(&self) {
        for notify in lock(&self.inner.executions).values() {
            notify.notify_one();
        }
    }

    /// Runs an execution for `id` from `state`, unless one is running; says which.
    fn launch(&self, id: &str, state: &str) -> Started {
        let notify = {
            let mut executions = lock(&self.inner.executions);
            if executions.contains_key(id) {
                return Started::Existing {
                    execution: id.to_owned(),
                };
            }
            let notify = Arc::new(Notify::new());
            executions.insert(id.to_owned(), Arc::clone(&notify));
            notify
        };
        let this = self.clone();
        let (execution, state) = (id.to_owned(), state.to_owned());
        tokio::spawn(async move {
            let running = tokio::spawn({
                let (this, execution) = (this.clone(), execution.clone());
                async move { this.execute(&execution, &state, notify).await }
            });
            // A panic in the execution must not leave the run RUNNING with nothing driving it
            // and its slot taken (which keeps `reconcile` from resuming it): it ends the run.
            if let Err(e) = running.await {
                tracing::error!(experiment = %execution, error = %e, "the workflow execution panicked");
                let finished = Finished::Failed {
                    error: "Chaos.Panicked".to_owned(),
                    cause: e.to_string(),
                    state: "unknown".to_owned(),
                };
                if let Err(e) = this.end_if_running(&execution, &finished).await {
                    tracing::error!(experiment = %execution, error = %e, "the run outlived its execution and could not be ended; it is left as it is until the next restart");
                    lock(&this.inner.abandoned).insert(execution.clone());
                }
            }
            lock(&this.inner.executions).remove(&execution);
        });
        Started::New {
            execution: id.to_owned(),
        }
    }

    async fn execute(&self, id: &str, from: &str, notify: Arc<Notify>) {
        tracing::info!(experiment = id, from, "workflow execution started");
        let inner = &self.inner;
        let finished = asl::engine::run(
            &inner.definition,
            from,
            json!({ "experimentId": id }),
            &InProcess(inner),
            &Wakeable(notify),
            &mut |event| {
                if let Event::Entered { state, .. } = event {
                    tracing::debug!(experiment = id, state = %state, "workflow state");
                }
            },
        )
        .await;
        match &finished {
            Finished::Succeeded { .. } => {
                tracing::info!(experiment = id, "workflow execution succeeded");
            }
            Finished::Failed {
                error,
                cause,
                state,
            } => {
                tracing::warn!(experiment = id, error = %error, cause = %cause, state = %state, "workflow execution failed");
            }
        }
        if let Err(e) = self.end_if_running(id, &finished).await {
            tracing::error!(experiment = id, error = %e, "the run outlived its execution and could not be ended; it is left as it is until the next restart");
            lock(&inner.abandoned).insert(id.to_owned());
        }
    }

    /// Ends a run its execution left running: failed, with why.
    async fn end_if_running(
        &self,
        id: &str,
        finished: &Finished,
    ) -> Result<(), command_lambdas::tasks::TaskError> {
        let service = self.inner.tasks.service();
        let experiment = service.load(id).await?.aggregate;
        if experiment.status() != Status::Running {
            return Ok(());
        }
        let (code, message) = match finished {
            Finished::Failed {
                error,
                cause,
                state,
            } if error == "Chaos.RollbackFailed" => (
                FailureCode::RollbackFailed,
                format!("rolling back failed at {state}: {cause}"),
            ),
            Finished::Failed {
                error,
                cause,
                state,
            } => (
                FailureCode::RunnerLost,
                format!("the workflow failed at {state} ({error}): {cause}"),
            ),
            Finished::Succeeded { .. } => (
                FailureCode::RunnerLost,
                "the workflow ended without ending the run".to_owned(),
            ),
        };
        self.inner
            .tasks
            .command(
                id,
                "abandon",
                ExperimentCommand::FailExperiment {
                    reason: FailureReason {
                        code,
                        message: message.chars().take(MAX_TEXT_CHARS).collect(),
                    },
                    at: self.inner.tasks.now(),
                },
            )
            .await?;
        Ok(())
    }

    /// Records that run `id`, running with no execution here, lost the execution that injected
    /// its failure before its recovery was observed; returns its phase afterwards (rolling
    /// back), or `None` when it was not in effect and goes on where it was.
    async fn interrupt_if_lost_in_effect(
        &self,
        id: &str,
        experiment: &domain::experiment::Experiment,
    ) -> Result<Option<Phase>, command_lambdas::tasks::TaskError> {
        let in_effect = experiment.injected().is_some()
            && experiment.recovery_ms().is_none()
            && experiment.stop_cause().is_none();
        if !in_effect {
            return Ok(None);
        }
        let injected_at = experiment
            .injected()
            .map(|(at, _)| at.to_string())
            .unwrap_or_default();
        let detail = format!(
            "the process running it went away while its failure was in effect (injected at \
             {injected_at}, recovery not yet observed); what the fleet did meanwhile does not \
             measure this failure"
        );
        tracing::warn!(
            experiment = id,
            "a run lost while its failure was in effect is interrupted"
        );
        self.inner
            .tasks
            .command(
                id,
                "interrupt",
                ExperimentCommand::InterruptRun {
                    detail,
                    at: self.inner.tasks.now(),
                },
            )
            .await?;
        Ok(self.inner.tasks.service().load(id).await?.aggregate.phase())
    }

    /// Runs every experiment of `running` (those the log says are running) that has no
    /// execution here, from where its phase says; returns the ids it started.
    pub async fn reconcile(&self, running: &[String]) -> Vec<String> {
        let mut started = Vec::new();
        for id in running {
            if lock(&self.inner.executions).contains_key(id)
                || lock(&self.inner.abandoned).contains(id)
            {
                continue;
            }
            let phase = match self.inner.tasks.service().load(id).await {
                Ok(loaded) if loaded.aggregate.status() == Status::Running => {
                    // A run past resolving acts on its target: it holds it again.
                    if let (Some(claims), Some(spec)) =
                        (self.inner.tasks.claims(), loaded.aggregate.spec())
                        && loaded.aggregate.targets().is_some()
                        && !spec.dry_run()
                    {
                        match claims.claim(&spec.target().key(), id, None).await {
                            Ok(None) => {}
                            Ok(Some(holder)) => {
                                tracing::error!(experiment = %id, holder = %holder, "two runs act on one target")
                            }
                            Err(e) => {
                                tracing::warn!(experiment = %id, error = %e, "cannot claim the target again")
                            }
                        }
                    }
                    match self
                        .interrupt_if_lost_in_effect(id, &loaded.aggregate)
                        .await
                    {
                        Ok(Some(phase)) => Some(phase),
                        Ok(None) => loaded.aggregate.phase(),
                        Err(e) => {
                            tracing::warn!(experiment = %id, error = %e, "cannot record that a run was interrupted; it is taken up at the next reconcile");
                            continue;
                        }
                    }
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(experiment = %id, error = %e, "cannot load a running experiment to resume it");
                    continue;
                }
            };
            if let Started::New { .. } = self.launch(id, resume_state(phase)) {
                tracing::info!(experiment = %id, phase = ?phase, "resuming a run");
                started.push(id.clone());
            }
        }
        started
    }
}

impl<R, T, H, A> WorkflowEngine for Workflows<R, T, H, A>
where
    R: Repository + 'static,
    T: TargetProvider + 'static,
    H: HealthProbe + 'static,
    A: AlarmSource + 'static,
{
    async fn start(&self, experiment_id: &str, _input: &Value) -> Result<Started, AdapterError> {
        let start_at = self.inner.definition.start_at().to_owned();
        Ok(self.launch(experiment_id, &start_at))
    }

    async fn hurry(
        &self,
        experiment_id: &str,
        _reason: &str,
        _deadline: std::time::Instant,
    ) -> Result<Hurried, AdapterError> {
        // The stop is in the log already; the execution's next task sees it and rolls back.
        let woken = match lock(&self.inner.executions).get(experiment_id) {
            Some(notify) => {
                notify.notify_one();
                Hurried::Woken
            }
            None => Hurried::Ended,
        };
        Ok(woken)
    }

    async fn running(&self) -> Result<Vec<String>, AdapterError> {
        Ok(Workflows::running(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asl::definition::State;

    #[test]
    fn every_resume_state_is_a_task_of_the_definition() {
        let definition = Definition::from_json(DEFINITION).expect("loads");
        for phase in [
            None,
            Some(Phase::ResolvingTargets),
            Some(Phase::Baseline),
            Some(Phase::Injecting),
            Some(Phase::ObservingRecovery),
            Some(Phase::RollingBack),
        ] {
            let state = resume_state(phase);
            assert!(
                matches!(definition.state(state), Some(State::Task(_))),
                "{phase:?} resumes at {state}, which is not a Task state"
            );
        }
        for (name, state) in definition.states() {
            if let State::Task(task) = state {
                assert!(Task::from_resource(&task.resource).is_some(), "{name}");
            }
        }
    }
}
