//! The AWS housekeeping: what `chaos serve`'s loop does in embedded mode, done by the
//! `housekeeping` Lambda, which an EventBridge schedule rule invokes every minute.
//!
//! 1. The [`Scheduler`]'s tick: due one-shot scheduled starts and the platform's recurring
//!    schedules (in their time zones, skipping blackout windows and halts), each run's
//!    execution started as it is.
//! 2. Every running experiment against its Step Functions execution: one with no execution
//!    gets one (its start was recorded but the execution was never started); one whose
//!    execution has ended while the run is still running is ended as failed, with the
//!    execution's error, so no run stays running forever.
//!
//! 3. The runs still running more than [`PAST_LIMIT_GRACE_SECS`] past their
//!    `max_duration_secs`: every workflow step stops a run past its limit, so such a run has a
//!    workflow that is not stepping. They are counted in the report, and the Lambda publishes
//!    the count as the CloudWatch metric `ChaosPlatform/RunsPastLimit` ([`metric_line`]),
//!    which an alarm watches.
//!
//! The experiments in a status come from the read-model table's `ByStatus` index (see
//! `projection_lambdas::dynamo_stream`), which may lag the log by a little; every decision is
//! checked against the log itself before anything is written.

use aws_sdk_dynamodb::types::AttributeValue;
use domain::Timestamp;
use domain::experiment::{ExperimentCommand, FailureCode, FailureReason, Status};
use domain::limits::MAX_TEXT_CHARS;
use dynamo_tables::views;
use serde::Serialize;
use serde_json::json;

use crate::adapters::{AdapterError, WorkflowEngine};
use crate::scheduler::{Fired, Scheduler};
use crate::service::{ExperimentService, ServiceError};
use crate::sfn::{ExecutionEnd, StepFunctions};

/// How long past its time limit a run may still be running before it counts as stuck: a
/// step that stops it (waiting out at most a poll interval) has had time to.
pub const PAST_LIMIT_GRACE_SECS: u64 = 120;

/// The CloudWatch namespace of the platform's own metrics.
pub const METRIC_NAMESPACE: &str = "ChaosPlatform";

/// Why housekeeping failed.
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    /// The event store refused or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Step Functions failed.
    #[error(transparent)]
    Workflow(#[from] AdapterError),
    /// The read-model index could not be read.
    #[error("read models: {0}")]
    ReadModels(String),
}

/// What one round did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// What the scheduler did.
    pub fired: Vec<Fired>,
    /// Runs whose missing execution was started.
    pub started_executions: Vec<String>,
    /// Runs ended because their execution had ended.
    pub ended: Vec<String>,
    /// Runs still running more than [`PAST_LIMIT_GRACE_SECS`] past their time limit.
    pub past_limit: Vec<String>,
}

/// The report's metrics as one CloudWatch embedded-metric-format line: printed to the
/// Lambda's log, CloudWatch turns it into `ChaosPlatform/RunsPastLimit` (a count) at `now`.
pub fn metric_line(report: &Report, now: Timestamp) -> String {
    json!({
        "_aws": {
            "Timestamp": now.unix_millis(),
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [{"Name": "RunsPastLimit", "Unit": "Count"}]
            }]
        },
        "RunsPastLimit": report.past_limit.len(),
    })
    .to_string()
}

/// The housekeeping of one deployment.
#[derive(Debug)]
pub struct Housekeeping<R> {
    service: ExperimentService<R>,
    workflow: StepFunctions,
    dynamodb: aws_sdk_dynamodb::Client,
    views_table: String,
}

impl<R: crate::store::Repository> Housekeeping<R> {
    /// Over the event store behind `service`, the workflow's executions and the read models.
    pub fn new(
        service: ExperimentService<R>,
        workflow: StepFunctions,
        dynamodb: aws_sdk_dynamodb::Client,
        views_table: impl Into<String>,
    ) -> Self {
        Housekeeping {
            service,
            workflow,
            dynamodb,
            views_table: views_table.into(),
        }
    }

    /// The experiments the read models say are in `status`.
    pub async fn in_status(&self, status: Status) -> Result<Vec<String>, HousekeepingError> {
        let status = serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .query()
                .table_name(&self.views_table)
                .index_name(views::BY_STATUS)
                .key_condition_expression("#s = :s")
                .expression_attribute_names("#s", views::STATUS)
                .expression_attribute_values(":s", AttributeValue::S(status.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| {
                    HousekeepingError::ReadModels(
                        aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                    )
                })?;
            for item in page.items() {
                if let Some(id) = item
                    .get(views::PK)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| views::experiment_of(pk))
                {
                    ids.push(id.to_owned());
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(ids);
            }
        }
    }

    /// One round at `now`.
    pub async fn run(&self, now: Timestamp) -> Result<Report, HousekeepingError> {
        let mut report = Report::default();
        let scheduled = self.in_status(Status::Scheduled).await?;
        report.fired = Scheduler::new(self.service.clone())
            .tick(now, &scheduled)
            .await?;
        for fired in &report.fired {
            if let Fired::Started { experiment, .. } = fired {
                self.workflow
                    .start(experiment, &json!({ "experimentId": experiment }))
                    .await?;
            }
        }
        for id in self.in_status(Status::Running).await? {
            let experiment = self.service.load(&id).await?.aggregate;
            if experiment.status() != Status::Running {
                continue;
            }
            let limit_ms = experiment.spec().map_or(u64::MAX, |spec| {
                (u64::from(spec.guardrails().max_duration_secs) + PAST_LIMIT_GRACE_SECS) * 1_000
            });
            if experiment
                .started_at()
                .and_then(|started| now.millis_since(started))
                .is_some_and(|ran| ran > limit_ms)
            {
                report.past_limit.push(id.clone());
            }
            match self.workflow.execution(&id).await? {
                Some(ExecutionEnd::Running) => {}
                None => {
                    self.workflow
                        .start(&id, &json!({ "experimentId": id }))
                        .await?;
                    report.started_executions.push(id);
                }
                Some(end) => {
                    self.end(&id, &end, now).await?;
                    report.ended.push(id);
                }
            }
        }
        Ok(report)
    }

    /// Ends a run whose execution ended without ending it.
    async fn end(&self, id: &str, end: &ExecutionEnd, now: Timestamp) -> Result<(), ServiceError> {
        let (code, message) = match end {
            ExecutionEnd::Failed { error, cause, .. } if error == "Chaos.RollbackFailed" => (
                FailureCode::RollbackFailed,
                format!("rolling back failed: {cause}"),
            ),
            ExecutionEnd::Failed {
                status,
                error,
                cause,
            } => (
                FailureCode::RunnerLost,
                format!("the workflow execution ended {status} ({error}): {cause}"),
            ),
            ExecutionEnd::Succeeded | ExecutionEnd::Running => (
                FailureCode::RunnerLost,
                "the workflow execution ended without ending the run".to_owned(),
            ),
        };
        let context = crate::tasks::workflow_context(id, "abandon")?;
        self.service
            .experiment(
                id,
                ExperimentCommand::FailExperiment {
                    reason: FailureReason {
                        code,
                        message: message.chars().take(MAX_TEXT_CHARS).collect(),
                    },
                    at: now,
                },
                &context,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_line_is_embedded_metric_format_with_the_count() {
        let report = Report {
            past_limit: vec!["a".into(), "b".into()],
            ..Report::default()
        };
        let at = Timestamp::from_unix_millis(1_795_000_000_000);
        let line: serde_json::Value =
            serde_json::from_str(&metric_line(&report, at)).expect("JSON");
        assert_eq!(line["RunsPastLimit"], 2);
        assert_eq!(line["_aws"]["Timestamp"], 1_795_000_000_000_i64);
        let metrics = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], METRIC_NAMESPACE);
        assert_eq!(metrics["Metrics"][0]["Name"], "RunsPastLimit");
        assert!(line.to_string().lines().count() == 1, "one log line");
    }
}
