//! Where the API's commands go and its reads come from: the embedded store (one process, its
//! own workflow engine and read models in the store file), or AWS (dynamo-es over the
//! `Events` table, the workflow in Step Functions, the read models in the read-model table the
//! projection Lambda keeps). The schema sees one [`Backend`]; each mode answers alike.

use std::sync::Arc;

use command_lambdas::command::{self, Request, Response};
use command_lambdas::lambda::AwsTasks;
use command_lambdas::sfn::StepFunctions;
use command_lambdas::tasks::{TargetPreview, TaskError};
use domain::platform::{Concern, Platform};
use domain::provenance::CommandContext;
use domain::spec::ExperimentSpec;
use domain::views::analytics::Analytics;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentSummary;
use domain::views::results::RunResult;
use projection_lambdas::dynamo_queries::{DynamoReads, ReadError};
use projection_lambdas::embedded::ProjectionError;
use projection_lambdas::queries::{
    self, AuditFilter, ExperimentDetail, ExperimentFilter, Page, ProjectionStatus,
};

use crate::engine::EmbeddedWorkflows;
use crate::reads::ReadModels;
use crate::webhook_secret::{self, IssueError, IssuedSecret};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// A cursor the API did not give out.
    #[error("cursor {0:?} is not one this API gave out")]
    BadCursor(String),
    /// The read models cannot be read.
    #[error("the read models cannot be read: {0}")]
    Unavailable(String),
}

impl From<ProjectionError> for ReadFailure {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::BadCursor(cursor) => ReadFailure::BadCursor(cursor),
            other => ReadFailure::Unavailable(other.to_string()),
        }
    }
}

impl From<ReadError> for ReadFailure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::BadCursor(cursor) => ReadFailure::BadCursor(cursor),
            other => ReadFailure::Unavailable(other.to_string()),
        }
    }
}

/// The AWS side of the API.
#[derive(Debug)]
pub struct AwsBackend {
    /// The workflow's tasks (their service writes through dynamo-es; target preview).
    pub tasks: AwsTasks,
    /// The experiment workflow.
    pub workflow: StepFunctions,
    /// The read-model table.
    pub reads: DynamoReads,
    /// The events table, read directly for the platform stream's length.
    pub events: aws_sdk_dynamodb::Client,
    /// Its name.
    pub events_table: String,
}

/// Where commands go and reads come from.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The store file, with this process's workflow engine and read models.
    Embedded {
        /// The embedded engine: its tasks' service writes commands; it runs the workflows.
        workflows: EmbeddedWorkflows,
        /// The read models in the store file.
        reads: ReadModels,
        /// The store file's pool.
        pool: sqlx::SqlitePool,
    },
    /// AWS.
    Aws(Arc<AwsBackend>),
}

/// Runs `$body` with `$service` bound to the backend's [`command_lambdas::service::ExperimentService`].
macro_rules! with_service {
    ($backend:expr, $service:ident => $body:expr) => {
        match $backend {
            $crate::backend::Backend::Embedded { workflows, .. } => {
                let $service = workflows.tasks().service();
                $body
            }
            $crate::backend::Backend::Aws(aws) => {
                let $service = aws.tasks.service();
                $body
            }
        }
    };
}
pub(crate) use with_service;

impl Backend {
    /// Sends `request` through the command entry point the command Lambda serves.
    pub async fn command(&self, request: Request) -> Response {
        match self {
            Backend::Embedded { workflows, .. } => {
                command::handle(workflows.tasks(), workflows, request).await
            }
            Backend::Aws(aws) => command::handle(&aws.tasks, &aws.workflow, request).await,
        }
    }

    /// What a run of `spec` with id `seed` would hit now.
    pub async fn preview(
        &self,
        spec: &ExperimentSpec,
        seed: &str,
    ) -> Result<TargetPreview, TaskError> {
        match self {
            Backend::Embedded { workflows, .. } => workflows.tasks().preview(spec, seed).await,
            Backend::Aws(aws) => aws.tasks.preview(spec, seed).await,
        }
    }

    /// The stop conditions of `spec` its target cannot observe (see
    /// [`command_lambdas::tasks::Tasks::unobservable`]).
    pub async fn unobservable(
        &self,
        spec: &ExperimentSpec,
    ) -> Result<Vec<domain::spec::Problem>, command_lambdas::adapters::AdapterError> {
        match self {
            Backend::Embedded { workflows, .. } => workflows.tasks().unobservable(spec).await,
            Backend::Aws(aws) => aws.tasks.unobservable(spec).await,
        }
    }

    /// Issues webhook `id` a new signing secret, recorded in the log by its fingerprint and
    /// kept where the sender reads it (see [`webhook_secret::issue`]):
    /// `None` on AWS, where nothing sends deliveries yet, so nothing is drawn or recorded.
    pub async fn issue_webhook_secret(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<Option<IssuedSecret>, IssueError> {
        match self {
            Backend::Embedded {
                workflows, reads, ..
            } => {
                let service = workflows.tasks().service();
                webhook_secret::issue(service, reads.path(), id, context)
                    .await
                    .map(Some)
            }
            Backend::Aws(_) => Ok(None),
        }
    }

    /// The state of `concerns` of the platform, each caught up with its ledger (one small
    /// read each when nothing changed), so a key revoked or a user removed is seen by the very
    /// next request.
    pub async fn platform(&self, concerns: &[Concern]) -> Result<Platform, String> {
        with_service!(self, service => service
            .platform_of(concerns)
            .await
            .map(|state| state.aggregate)
            .map_err(|e| e.to_string()))
    }

    /// Experiments, newest first, `limit` at a time after `cursor`.
    pub async fn experiments(
        &self,
        filter: ExperimentFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<ExperimentSummary>, ReadFailure> {
        match self {
            Backend::Embedded { reads, .. } => Ok(reads.experiments(filter, cursor, limit).await?),
            Backend::Aws(aws) => Ok(aws
                .reads
                .experiments(&filter, cursor.as_deref(), limit)
                .await?),
        }
    }

    /// One experiment with its timeline.
    pub async fn experiment(&self, id: String) -> Result<Option<ExperimentDetail>, ReadFailure> {
        match self {
            Backend::Embedded { reads, .. } => Ok(reads
                .read(move |conn| queries::experiment(conn, &id))
                .await?),
            Backend::Aws(aws) => Ok(aws.reads.experiment(&id).await?),
        }
    }

    /// Audit entries matching `filter`, in recording order, `limit` at a time after `after`.
    pub async fn audit_log(
        &self,
        filter: AuditFilter,
        after: Option<(String, String, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReadFailure> {
        match self {
            Backend::Embedded { reads, .. } => Ok(reads
                .read(move |conn| {
                    let after = after
                        .as_ref()
                        .map(|(at, id, seq)| (at.as_str(), id.as_str(), *seq));
                    queries::audit_log(conn, &filter, after, limit)
                })
                .await?),
            Backend::Aws(aws) => {
                let after = after
                    .as_ref()
                    .map(|(at, id, seq)| (at.as_str(), id.as_str(), *seq));
                Ok(aws.reads.audit_log(&filter, after, limit).await?)
            }
        }
    }

    /// Every finished run, in the order they ended.
    pub async fn results(&self) -> Result<Vec<RunResult>, ReadFailure> {
        match self {
            Backend::Embedded { reads, .. } => Ok(reads.read(queries::results).await?),
            Backend::Aws(aws) => Ok(aws.reads.results().await?),
        }
    }

    /// Analytics over every finished run.
    pub async fn analytics(&self) -> Result<Analytics, ReadFailure> {
        match self {
            Backend::Embedded { reads, .. } => Ok(reads.read(queries::run_analytics).await?),
            Backend::Aws(aws) => Ok(aws.reads.analytics().await?),
        }
    }

    /// Where the read models are in the log: known embedded, where the log and the read models
    /// are in one file. On AWS the projection's lag is its event source mapping's
    /// `IteratorAge` metric, not something the API can read from the tables.
    pub async fn projection_status(&self) -> Result<Option<ProjectionStatus>, ReadFailure> {
        match self {
            Backend::Embedded { reads, .. } => Ok(Some(reads.read(queries::status).await?)),
            Backend::Aws(_) => Ok(None),
        }
    }
}
