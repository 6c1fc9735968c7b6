//! Step Functions as the workflow engine on AWS.
//!
//! An experiment's execution is named after the experiment ([`execution_name`]), and Step
//! Functions keeps execution names unique per state machine, so a start repeated by a retry,
//! a double click or a second API replica starts nothing new: it is answered with the
//! execution that exists.

use aws_sdk_sfn::error::ProvideErrorMetadata;
use sha2::{Digest, Sha256};

use crate::adapters::{AdapterError, Started, WorkflowStarter};
use crate::asg::sdk_error;

/// Longest execution name Step Functions accepts.
const MAX_NAME: usize = 80;

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

/// Starts and stops executions of one state machine.
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

    /// Where the experiment's execution is: none yet, running, or ended (and how).
    pub async fn execution(
        &self,
        experiment_id: &str,
    ) -> Result<Option<ExecutionEnd>, AdapterError> {
        self.describe(&self.execution_arn(experiment_id)).await
    }
}

impl WorkflowStarter for StepFunctions {
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

    async fn stop(&self, experiment_id: &str, reason: &str) -> Result<(), AdapterError> {
        let arn = self.execution_arn(experiment_id);
        match self
            .client
            .stop_execution()
            .execution_arn(&arn)
            .cause(reason)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => Ok(()),
            Err(e) => Err(sdk_error("states", e)),
        }
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
