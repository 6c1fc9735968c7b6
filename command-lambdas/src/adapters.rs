//! What the workflow acts on and observes, behind traits: the target fleet, its health, the
//! stop-condition alarms and the workflow engine. The task handlers take these traits, so the
//! same handlers run against AWS (EC2 Auto Scaling, CloudWatch, Step Functions: [`crate::asg`],
//! [`crate::cloudwatch`], [`crate::sfn`]) and against the embedded demo fleet.
//!
//! Errors say whether trying again may help ([`AdapterError::is_retryable`]): the workflow
//! retries throttling and outages, and goes straight to rollback on a refusal.

use std::future::Future;

use domain::experiment::HealthSnapshot;
use domain::spec::{FailureType, StopCondition, Target, TargetId};

/// Why an adapter call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The target group does not exist (or this adapter does not serve its kind).
    #[error("target group {0} does not exist")]
    NoSuchGroup(String),
    /// The fleet cannot inject or undo this failure.
    #[error("{kind} targets cannot {action}")]
    Unsupported {
        /// The fleet kind.
        kind: &'static str,
        /// What was asked.
        action: String,
    },
    /// The service refused the request as made (access denied, invalid parameter): asking
    /// again the same way fails again.
    #[error("{service} refused: {message}")]
    Refused {
        /// The service.
        service: &'static str,
        /// What it said.
        message: String,
    },
    /// The service could not answer now (throttled, unavailable, timed out, network).
    #[error("{service} unavailable: {message}")]
    Unavailable {
        /// The service.
        service: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl AdapterError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AdapterError::Unavailable { .. })
    }
}

/// What an injection did, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The targets acted on, in order.
    pub targets: Vec<TargetId>,
    /// What was done, in words.
    pub detail: String,
}

/// The fleet an experiment acts on.
pub trait TargetProvider: Send + Sync {
    /// The instances a run may hit now: members of the group that are in service. Listed in
    /// any order; an unknown group is an error, an empty one is not (the run fails on it).
    fn candidates(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Vec<TargetId>, AdapterError>> + Send;

    /// Injects `failure` into `ids`, members of `target`. Never called by a dry run.
    fn inject(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> impl Future<Output = Result<Injected, AdapterError>> + Send;

    /// Undoes what [`Self::inject`] did where that is an action (resuming paused processes);
    /// says what it did. A terminated instance has nothing to undo: its group replaces it.
    fn rollback(
        &self,
        target: &Target,
        ids: &[TargetId],
        failure: FailureType,
    ) -> impl Future<Output = Result<String, AdapterError>> + Send;
}

/// How healthy a target group is now.
pub trait HealthProbe: Send + Sync {
    /// One sample: healthy and expected instances, latency and error rate over the probe's
    /// window.
    fn sample(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<HealthSnapshot, AdapterError>> + Send;

    /// Whether the samples of `target` carry a measured error rate (and latency): traffic the
    /// probe reads, such as the group's load balancer. Without it a sample's error rate is 0 and
    /// a `MAX_ERROR_RATE` stop condition could never hold, so such a spec is refused.
    fn measures_traffic(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;
}

/// A stop condition found to hold, with what was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tripped {
    /// The condition.
    pub condition: StopCondition,
    /// What was observed.
    pub detail: String,
}

/// The state of stop-condition alarms.
pub trait AlarmSource: Send + Sync {
    /// The first of `conditions` that holds, judging alarms only (error-rate limits are judged
    /// on health samples: [`StopCondition::breached_by`]). Fails closed: an alarm in any state
    /// but OK, or one that does not exist, holds.
    fn first_tripped(
        &self,
        conditions: &[StopCondition],
    ) -> impl Future<Output = Result<Option<Tripped>, AdapterError>> + Send;
}

/// Whether a start began a run of the workflow or found one already there. Two starts racing
/// may both hear `New` for the same execution (Step Functions answers a start identical to a
/// running one with that execution); there is still one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new execution.
    New {
        /// Its id (ARN on AWS).
        execution: String,
    },
    /// An execution of this experiment existed already; nothing was started.
    Existing {
        /// Its id.
        execution: String,
    },
}

/// What became of an execution asked to act on a stop now rather than at its next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hurried {
    /// The engine acts on it now itself: its current wait is cut short and its next task sees
    /// the stop (the embedded runner).
    Woken,
    /// It was waiting between steps, with no task in flight, and has been stopped there: the
    /// step it would have taken next (the guards, then the rollback) is the caller's to take
    /// ([`crate::tasks::Tasks::take_over`]).
    Stopped,
    /// It was in a step until the deadline; that step sees the stop when it ends, or the next
    /// one does, and the workflow rolls back itself.
    Busy,
    /// It had ended, or there was none.
    Ended,
}

/// The engine that runs the experiment workflow.
pub trait WorkflowEngine: Send + Sync {
    /// Starts the workflow for an experiment, at most once per experiment: the execution is
    /// named by the experiment id, so a repeated or concurrent start finds the first one.
    fn start(
        &self,
        experiment_id: &str,
        input: &serde_json::Value,
    ) -> impl Future<Output = Result<Started, AdapterError>> + Send;

    /// Makes the experiment's execution act now on a stop (or halt) already in the log, rather
    /// than when its current wait is over, without ever cutting a task short: a task in flight
    /// may be acting on the targets, and only the workflow may follow it. Gives up waiting for
    /// a task to end at `deadline`.
    fn hurry(
        &self,
        experiment_id: &str,
        reason: &str,
        deadline: std::time::Instant,
    ) -> impl Future<Output = Result<Hurried, AdapterError>> + Send;

    /// The experiments whose executions are running.
    fn running(&self) -> impl Future<Output = Result<Vec<String>, AdapterError>> + Send;
}

/// Who acts on each target: one running experiment per target. A run claims its target before
/// resolving its instances and releases it when it ends.
pub trait TargetClaims: Send + Sync + std::fmt::Debug {
    /// Claims `target` for `experiment`, or takes it over from `stale` (a holder whose run is
    /// known to be over). Returns the run holding it when that is another one.
    fn claim<'a>(
        &'a self,
        target: &'a str,
        experiment: &'a str,
        stale: Option<&'a str>,
    ) -> futures::future::BoxFuture<'a, Result<Option<String>, AdapterError>>;

    /// Releases `target` if `experiment` holds it.
    fn release<'a>(
        &'a self,
        target: &'a str,
        experiment: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), AdapterError>>;
}

/// Claims kept in this process: right when every run executes in it (embedded mode).
#[derive(Debug, Default)]
pub struct InProcessClaims {
    holders: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl InProcessClaims {
    fn holders(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.holders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TargetClaims for InProcessClaims {
    fn claim<'a>(
        &'a self,
        target: &'a str,
        experiment: &'a str,
        stale: Option<&'a str>,
    ) -> futures::future::BoxFuture<'a, Result<Option<String>, AdapterError>> {
        let mut holders = self.holders();
        let answer = match holders.get(target) {
            Some(holder) if holder != experiment && Some(holder.as_str()) != stale => {
                Some(holder.clone())
            }
            _ => {
                holders.insert(target.to_owned(), experiment.to_owned());
                None
            }
        };
        Box::pin(std::future::ready(Ok(answer)))
    }

    fn release<'a>(
        &'a self,
        target: &'a str,
        experiment: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), AdapterError>> {
        let mut holders = self.holders();
        if holders.get(target).map(String::as_str) == Some(experiment) {
            holders.remove(target);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
