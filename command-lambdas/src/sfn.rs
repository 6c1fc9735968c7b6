//! Step Functions as the workflow engine on AWS.
//!
//! An experiment's execution is named after the experiment ([`execution_name`]), and Step
//! Functions keeps execution names unique per state machine, so a start repeated by a retry,
//! a double click or a second API replica starts nothing new: it is answered with the
//! execution that exists.
//!
//! A `Wait` state cannot be woken, so a stop or halt that must not wait out a poll interval
//! hurries the execution ([`WorkflowEngine::hurry`]): it is stopped when its latest history
//! event is the entering of a `Wait` (no task in flight), and looked at again every 100 ms
//! while it is in a task, until a deadline.

use aws_sdk_sfn::error::ProvideErrorMetadata;
use sha2::{Digest, Sha256};

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::HistoryEventType;

use crate::adapters::{AdapterError, Hurried, Started, WorkflowEngine};
use crate::asg::sdk_error;

/// Longest execution name Step Functions accepts.
const MAX_NAME: usize = 80;

/// Longest cause of a stop Step Functions accepts.
const MAX_CAUSE: usize = 32_768;

/// How often a hurried execution in a step is looked at again.
const HURRY_POLL: Duration = Duration::from_millis(100);

/// History events read to find an execution's latest.
const HISTORY_PAGE: i32 = 5;

/// The execution name of an experiment: its id when Step Functions accepts it as a name
/// (ASCII letters, digits, `-` and `_`, at most 80), as UUIDv7 ids are. Otherwise the id with
/// every other character replaced by `_`, cut to 63 characters, then `-` and 16 hex digits of
/// the id's SHA-256, so that two ids never share a name.
pub fn execution_name(experiment_id: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !experiment_id.is_empty()
        && experiment_id.len() <= MAX_NAME
        && experiment_id.chars().all(allowed)
    {
        return experiment_id.to_owned();
    }
    let readable: String = experiment_id
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(63)
        .collect();
    let digest = hex::encode(Sha256::digest(experiment_id.as_bytes()));
    format!("{readable}-{}", &digest[..16])
}

/// Where an execution is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionEnd {
    /// Still running.
    Running,
    /// Ended successfully.
    Succeeded,
    /// Failed, timed out or aborted.
    Failed {
        /// `FAILED`, `TIMED_OUT`, `ABORTED`.
        status: String,
        /// Its error name.
        error: String,
        /// Its cause.
        cause: String,
    },
}

/// The executions of one state machine: started once per experiment, hurried between steps.
#[derive(Debug, Clone)]
pub struct StepFunctions {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl StepFunctions {
    /// The starter of `state_machine_arn`'s executions.
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        Self {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }

    /// The ARN an experiment's execution has (or will have).
    pub fn execution_arn(&self, experiment_id: &str) -> String {
        let name = execution_name(experiment_id);
        match self.state_machine_arn.split_once(":stateMachine:") {
            Some((prefix, machine)) => format!("{prefix}:execution:{machine}:{name}"),
            None => format!("{}:{name}", self.state_machine_arn),
        }
    }

    /// Whether the experiment's execution exists.
    async fn exists(&self, arn: &str) -> Result<bool, AdapterError> {
        Ok(self.describe(arn).await?.is_some())
    }

    async fn describe(&self, arn: &str) -> Result<Option<ExecutionEnd>, AdapterError> {
        match self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(match out.status() {
                aws_sdk_sfn::types::ExecutionStatus::Running
                | aws_sdk_sfn::types::ExecutionStatus::PendingRedrive => ExecutionEnd::Running,
                aws_sdk_sfn::types::ExecutionStatus::Succeeded => ExecutionEnd::Succeeded,
                other => ExecutionEnd::Failed {
                    status: other.as_str().to_owned(),
                    error: out.error().unwrap_or_default().to_owned(),
                    cause: out.cause().unwrap_or_default().to_owned(),
                },
            })),
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => Ok(None),
            Err(e) => Err(sdk_error("states", e)),
        }
    }

    /// Whether the execution is between steps, in a `Wait` state: its latest event is the
    /// entering of one. The next step after each `Wait` of the definition is a task whose
    /// guards run first, so stopping the execution there cuts no action on a target short.
    async fn waiting(&self, arn: &str) -> Result<bool, AdapterError> {
        let page = self
            .client
            .get_execution_history()
            .execution_arn(arn)
            .reverse_order(true)
            .max_results(HISTORY_PAGE)
            .send()
            .await
            .map_err(|e| sdk_error("states", e))?;
        // The latest is the first in reverse order; taking the highest id also holds for an
        // endpoint that answers in forward order.
        Ok(page
            .events()
            .iter()
            .max_by_key(|e| e.id())
            .is_some_and(|e| e.r#type() == &HistoryEventType::WaitStateEntered))
    }

    /// Stops a waiting execution: [`Hurried::Stopped`] once the stop is accepted,
    /// [`Hurried::Ended`] when it ended by itself first.
    async fn abort(&self, arn: &str, reason: &str) -> Result<Hurried, AdapterError> {
        match self
            .client
            .stop_execution()
            .execution_arn(arn)
            .cause(reason.chars().take(MAX_CAUSE).collect::<String>())
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => return Ok(Hurried::Ended),
            Err(e) => return Err(sdk_error("states", e)),
        }
        // Accepted: the execution takes no further step. It may still read RUNNING for a
        // moment while it winds down; only an end of its own means it was not waiting.
        Ok(match self.describe(arn).await? {
            Some(ExecutionEnd::Succeeded) => Hurried::Ended,
            Some(ExecutionEnd::Failed { status, .. }) if status != "ABORTED" => Hurried::Ended,
            _ => Hurried::Stopped,
        })
    }

    /// The experiment an execution runs, from its input.
    async fn experiment_of(&self, arn: &str) -> Result<Option<String>, AdapterError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error("states", e))?;
        Ok(out
            .input()
            .and_then(|input| serde_json::from_str::<serde_json::Value>(input).ok())
            .and_then(|input| input.get("experimentId")?.as_str().map(str::to_owned)))
    }

    /// Where the experiment's execution is: none yet, running, or ended (and how).
    pub async fn execution(
        &self,
        experiment_id: &str,
    ) -> Result<Option<ExecutionEnd>, AdapterError> {
        self.describe(&self.execution_arn(experiment_id)).await
    }
}

impl WorkflowEngine for StepFunctions {
    async fn start(
        &self,
        experiment_id: &str,
        input: &serde_json::Value,
    ) -> Result<Started, AdapterError> {
        let arn = self.execution_arn(experiment_id);
        if self.exists(&arn).await? {
            return Ok(Started::Existing { execution: arn });
        }
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(execution_name(experiment_id))
            .input(input.to_string())
            .send()
            .await;
        match started {
            Ok(out) => Ok(Started::New {
                execution: out.execution_arn().to_owned(),
            }),
            // A concurrent start won the name.
            Err(e) if e.code() == Some("ExecutionAlreadyExists") => {
                Ok(Started::Existing { execution: arn })
            }
            Err(e) => Err(sdk_error("states", e)),
        }
    }

    async fn hurry(
        &self,
        experiment_id: &str,
        reason: &str,
        deadline: Instant,
    ) -> Result<Hurried, AdapterError> {
        let arn = self.execution_arn(experiment_id);
        loop {
            if self.describe(&arn).await? != Some(ExecutionEnd::Running) {
                return Ok(Hurried::Ended);
            }
            if self.waiting(&arn).await? {
                return self.abort(&arn, reason).await;
            }
            if Instant::now() >= deadline {
                return Ok(Hurried::Busy);
            }
            tokio::time::sleep(HURRY_POLL).await;
        }
    }

    async fn running(&self) -> Result<Vec<String>, AdapterError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(&self.state_machine_arn)
            .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("states", e))?;
            arns.extend(
                page.executions()
                    .iter()
                    .map(|e| e.execution_arn().to_owned()),
            );
        }
        // A name may be a sanitized id (see [`execution_name`]): the id is in the input.
        let mut ids = Vec::with_capacity(arns.len());
        for arn in &arns {
            ids.extend(self.experiment_of(arn).await?);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_step_functions_accepts_is_the_name_and_others_stay_distinct() {
        let uuid = "0193a0a1-7f3e-7cc2-9a51-3c1f4b8e9d10";
        assert_eq!(execution_name(uuid), uuid);
        let a = execution_name("team:web.kill-one");
        let b = execution_name("team.web:kill-one");
        assert_ne!(a, b);
        assert!(a.starts_with("team_web_kill-one-"));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME);
        let long = "x".repeat(128);
        assert!(execution_name(&long).len() <= MAX_NAME);
        assert_ne!(execution_name(&long), execution_name(&"x".repeat(127)));
    }
}
