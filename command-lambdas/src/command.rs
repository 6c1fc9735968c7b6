//! The command entry point: one JSON command in, its outcome out. The `command` Lambda serves
//! it to the API and to scripts; the caller has authenticated the actor, whose role is
//! checked here again (a viewer changes nothing; halting is for admins).
//!
//! ```json
//! {"command": "start", "experimentId": "0193...", "commandId": "ci-4711-start",
//!  "actor": {"id": "ci", "role": "OPERATOR"}, "source": "api"}
//! ```
//!
//! A start fails closed: it is refused, with nothing written, while any of the experiment's
//! stop-condition alarms is not OK. Once the start is recorded (or found recorded, on a
//! retry), the workflow is started under the experiment's id, so a repeated start never
//! runs it twice. Every refusal has a stable `code` and says whether a retry may help.
//!
//! A stop or a halt is recorded first, and from then on every step of the run's workflow
//! stops it. A run between steps would otherwise only see it when its wait is over, which can
//! be a whole poll interval: so each run it applies to whose execution is waiting is stopped
//! there and ended here, at once (see [`WorkflowEngine::hurry`]); one in a step is left to its
//! workflow, which rolls it back as the step ends. The answer lists both.

use std::time::{Duration, Instant};

use crate::store::Repository;
use domain::Timestamp;
use domain::experiment::ExperimentError;
use domain::provenance::{Actor, CommandContext, Role, Source};
use domain::spec::{ExperimentSpecInput, Problem};
use serde::{Deserialize, Serialize};

use crate::adapters::{AlarmSource, HealthProbe, Hurried, Started, TargetProvider, WorkflowEngine};
use crate::service::{ExperimentService, ServiceError};
use crate::store::{CommandOutcome, StoreError};
use crate::tasks::{TaskInput, Tasks};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "command",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Command {
    /// Create an experiment from a spec.
    Create {
        /// New experiment id.
        experiment_id: String,
        /// The spec, validated here.
        spec: ExperimentSpecInput,
    },
    /// Start it now (fails closed on stop-condition alarms), then run the workflow.
    Start {
        /// The experiment.
        experiment_id: String,
    },
    /// Plan its start.
    Schedule {
        /// The experiment.
        experiment_id: String,
        /// When (RFC 3339).
        start_at: Timestamp,
    },
    /// Ask a running experiment to stop (the workflow rolls back and ends it).
    Stop {
        /// The experiment.
        experiment_id: String,
        /// Why.
        reason: String,
    },
    /// Abandon it before it starts.
    Cancel {
        /// The experiment.
        experiment_id: String,
        /// Why.
        reason: String,
    },
    /// Archive it.
    Archive {
        /// The experiment.
        experiment_id: String,
    },
    /// Halt every experiment and block starts.
    Halt {
        /// Why.
        reason: String,
    },
    /// Lift the halt.
    Unhalt,
}

/// A command with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The command.
    #[serde(flatten)]
    pub command: Command,
    /// Idempotency key: the same command sent again with it is answered, not repeated.
    pub command_id: String,
    /// Correlation id (defaults to the command id).
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Who, as authenticated by the caller.
    pub actor: Actor,
    /// Through which interface.
    pub source: Source,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Whether the command was carried out (or had been, for a repeat).
    pub ok: bool,
    /// What was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The workflow execution a start runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// Runs a stop or halt has ended: each was waiting between steps, and is rolled back and
    /// stopped by the time of this answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<String>,
    /// Runs a stop or halt has not ended yet: each was in a step, and its workflow rolls it
    /// back as that step ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopping: Vec<String>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// What a carried-out command recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The stream.
    pub aggregate_id: String,
    /// Its version after the command.
    pub version: usize,
    /// The types of the events recorded.
    pub events: Vec<String>,
    /// True when the command had been recorded already and nothing was appended now.
    pub deduplicated: bool,
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable code: `INVALID_INPUT`, `FORBIDDEN`, `NOT_FOUND`, `REJECTED`,
    /// `STOP_CONDITION`, `CONFLICT`, `UNAVAILABLE`, `CORRUPT`.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
    /// For `INVALID_INPUT`: every problem of the input, each with its path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl Response {
    /// The answer to a request that does not parse: what is wrong with it.
    pub fn malformed(e: &serde_json::Error) -> Self {
        Self::refused("INVALID_INPUT", format!("malformed request: {e}"), false)
    }

    fn refused(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            ok: false,
            outcome: None,
            execution: None,
            stopped: Vec::new(),
            stopping: Vec::new(),
            error: Some(ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                retryable,
                problems: Vec::new(),
            }),
        }
    }

    fn from_service(e: &ServiceError) -> Self {
        let mut response = Self::refused(e.code(), e.to_string(), e.is_retryable());
        if let Some(body) = &mut response.error {
            body.problems = e.problems().to_vec();
        }
        response
    }

    /// The answer of a command carried out (or found carried out) with `outcome`.
    pub fn done(outcome: &CommandOutcome) -> Self {
        Self {
            ok: true,
            outcome: Some(Outcome {
                aggregate_id: outcome.aggregate_id.clone(),
                version: outcome.version,
                events: outcome
                    .events
                    .iter()
                    .map(|e| e.event_type.clone())
                    .collect(),
                deduplicated: outcome.deduplicated,
            }),
            execution: None,
            stopped: Vec::new(),
            stopping: Vec::new(),
            error: None,
        }
    }
}

/// The least role each command needs.
fn required_role(command: &Command) -> Role {
    match command {
        Command::Halt { .. } | Command::Unhalt => Role::Admin,
        _ => Role::Operator,
    }
}

/// Carries out one request. Never fails: every problem is an answer with a code.
pub async fn handle<R, T, H, A, W>(
    tasks: &Tasks<R, T, H, A>,
    workflow: &W,
    request: Request,
) -> Response
where
    R: Repository,
    T: TargetProvider,
    H: HealthProbe,
    A: AlarmSource,
    W: WorkflowEngine,
{
    let service = tasks.service();
    let needed = required_role(&request.command);
    if request.actor.role < needed {
        return Response::refused(
            "FORBIDDEN",
            format!(
                "{} {} may not {}: it takes {}",
                request.actor.role.as_str(),
                request.actor.id,
                command_name(&request.command),
                needed.as_str()
            ),
            false,
        );
    }
    let correlation = request
        .correlation_id
        .clone()
        .unwrap_or_else(|| request.command_id.clone());
    let context = match CommandContext::new(
        request.command_id.clone(),
        correlation,
        request.actor.clone(),
        request.source,
    ) {
        Ok(context) => context,
        Err(e) => return Response::refused("INVALID_INPUT", e.to_string(), false),
    };
    let result = match request.command {
        Command::Create {
            experiment_id,
            spec,
        } => service.create(&experiment_id, spec, &context).await,
        Command::Start { experiment_id } => {
            return start(service, tasks.alarms(), workflow, &experiment_id, &context).await;
        }
        Command::Schedule {
            experiment_id,
            start_at,
        } => service.schedule(&experiment_id, start_at, &context).await,
        Command::Stop {
            experiment_id,
            reason,
        } => {
            return match service.stop(&experiment_id, &reason, &context).await {
                Ok(outcome) => {
                    let mut response = Response::done(&outcome);
                    let reason = format!("stop requested: {reason}");
                    settle(tasks, workflow, vec![experiment_id], &reason, &mut response).await;
                    response
                }
                Err(e) => Response::from_service(&e),
            };
        }
        Command::Cancel {
            experiment_id,
            reason,
        } => service.cancel(&experiment_id, &reason, &context).await,
        Command::Archive { experiment_id } => service.archive(&experiment_id, &context).await,
        Command::Halt { reason } => {
            return match service.halt(&reason, &context).await {
                Ok(outcome) => {
                    let mut response = Response::done(&outcome);
                    // The halt is in force: every run's next step stops it. Ending the runs
                    // now is on top of that, so a failure to list them refuses nothing.
                    match workflow.running().await {
                        Ok(ids) => {
                            let reason = format!("platform halted: {reason}");
                            settle(tasks, workflow, ids, &reason, &mut response).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot list the running executions to stop them now")
                        }
                    }
                    response
                }
                Err(e) => Response::from_service(&e),
            };
        }
        Command::Unhalt => service.lift_halt(&context).await,
    };
    match result {
        Ok(outcome) => Response::done(&outcome),
        Err(e) => Response::from_service(&e),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Create { .. } => "create experiments",
        Command::Start { .. } => "start experiments",
        Command::Schedule { .. } => "schedule experiments",
        Command::Stop { .. } => "stop experiments",
        Command::Cancel { .. } => "cancel experiments",
        Command::Archive { .. } => "archive experiments",
        Command::Halt { .. } => "halt the platform",
        Command::Unhalt => "lift a halt",
    }
}

/// How long a stop or halt waits for a run's step in flight to end so that it can end the run
/// itself; a run still in a step then is left to its workflow, which rolls it back as the
/// step ends. Within it, a halt answers in under two seconds.
pub const SETTLE_WITHIN: Duration = Duration::from_millis(1_500);

/// Ends now, rather than when their current wait is over, the runs `ids` that a stop or a
/// halt (in the log already) applies to, and says in `response` which ended and which are
/// still ending. An execution is only ever stopped between steps, never during a task, and
/// the step it would have taken next is taken here, as the workflow's.
async fn settle<R, T, H, A, W>(
    tasks: &Tasks<R, T, H, A>,
    workflow: &W,
    ids: Vec<String>,
    reason: &str,
    response: &mut Response,
) where
    R: Repository,
    T: TargetProvider,
    H: HealthProbe,
    A: AlarmSource,
    W: WorkflowEngine,
{
    let deadline = Instant::now() + SETTLE_WITHIN;
    let ended = futures::future::join_all(
        ids.iter()
            .map(|id| settle_one(tasks, workflow, id, reason, deadline)),
    )
    .await;
    for (id, ended) in ids.into_iter().zip(ended) {
        if ended {
            response.stopped.push(id);
        } else {
            response.stopping.push(id);
        }
    }
}

/// Ends one run now if its execution is between steps; whether it has ended.
async fn settle_one<R, T, H, A, W>(
    tasks: &Tasks<R, T, H, A>,
    workflow: &W,
    id: &str,
    reason: &str,
    deadline: Instant,
) -> bool
where
    R: Repository,
    T: TargetProvider,
    H: HealthProbe,
    A: AlarmSource,
    W: WorkflowEngine,
{
    match workflow.hurry(id, reason, deadline).await {
        Ok(Hurried::Stopped) => {
            let input = TaskInput {
                experiment_id: id.to_owned(),
                error: None,
            };
            let mut delay = Duration::from_millis(50);
            loop {
                match tasks.take_over(&input).await {
                    Ok(out) => return out.done,
                    Err(e) if e.is_retryable() && Instant::now() < deadline => {
                        tracing::warn!(experiment = id, error = %e, "ending a stopped run, again");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => {
                        // Housekeeping ends a run whose execution ended without ending it.
                        tracing::error!(experiment = id, error = %e, "cannot end a run whose execution was stopped");
                        return false;
                    }
                }
            }
        }
        Ok(Hurried::Woken | Hurried::Busy | Hurried::Ended) => {
            matches!(tasks.service().load(id).await, Ok(loaded) if loaded.aggregate.status().is_terminal())
        }
        Err(e) => {
            tracing::warn!(experiment = id, error = %e, "cannot hurry a run's execution; it stops at its next step");
            false
        }
    }
}

async fn start<R, A, W>(
    service: &ExperimentService<R>,
    alarms: &A,
    workflow: &W,
    id: &str,
    context: &CommandContext,
) -> Response
where
    R: Repository,
    A: AlarmSource,
    W: WorkflowEngine,
{
    let loaded = match service.load(id).await {
        Ok(loaded) => loaded,
        Err(e) => return Response::from_service(&e),
    };
    let experiment = &loaded.aggregate;
    let Some(spec) = experiment.spec() else {
        return Response::from_service(&ServiceError::Experiment(StoreError::Rejected(
            ExperimentError::NotFound,
        )));
    };
    // Fail closed before anything is written; a start already recorded (a retry) goes on to
    // make sure its workflow runs.
    let already = loaded
        .events
        .iter()
        .any(|e| e.metadata.command_id == context.command_id());
    if !already {
        match alarms
            .first_tripped(&spec.guardrails().stop_conditions)
            .await
        {
            Ok(None) => {}
            Ok(Some(tripped)) => {
                return Response::refused(
                    "STOP_CONDITION",
                    format!("not started: {}", tripped.detail),
                    false,
                );
            }
            Err(e) => {
                return Response::refused(
                    "UNAVAILABLE",
                    format!("not started: stop conditions could not be checked: {e}"),
                    true,
                );
            }
        }
    }
    let mut response = match service.start(id, context).await {
        Ok(outcome) => Response::done(&outcome),
        Err(e) => return Response::from_service(&e),
    };
    let input = serde_json::json!({ "experimentId": id });
    match workflow.start(id, &input).await {
        Ok(Started::New { execution } | Started::Existing { execution }) => {
            response.execution = Some(execution);
            response
        }
        Err(e) => {
            // The start is recorded; sending the same request again starts the workflow.
            let retryable = e.is_retryable();
            let mut refused = Response::refused(
                "UNAVAILABLE",
                format!(
                    "started, but the workflow did not start: {e}; send the same request again"
                ),
                retryable,
            );
            refused.outcome = response.outcome;
            refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_does_not_parse_is_answered_with_what_is_wrong() {
        for (request, says) in [
            (
                serde_json::json!({"command": "explode", "commandId": "c", "actor": {"id": "a", "role": "ADMIN"}, "source": "api"}),
                "unknown variant `explode`",
            ),
            (
                serde_json::json!({"command": "start", "commandId": "c", "actor": {"id": "a", "role": "ADMIN"}, "source": "api"}),
                "missing field `experimentId`",
            ),
            (
                serde_json::json!({"command": "unhalt", "commandId": "c", "actor": {"id": "a", "role": "ROOT"}, "source": "api"}),
                "unknown variant `ROOT`",
            ),
        ] {
            let Err(e) = serde_json::from_value::<Request>(request) else {
                panic!("parsed");
            };
            let response = Response::malformed(&e);
            assert!(!response.ok);
            let error = response.error.expect("error");
            assert_eq!(error.code, "INVALID_INPUT");
            assert!(error.message.contains(says), "{}", error.message);
            assert!(!error.retryable);
        }
    }
}
