//! The one seam between the server and where the platform's state is: every part of the
//! server (the schema, identity, health, the live feed, templates and preferences) talks to a
//! [`Backend`], never to a mode. Its two implementations are each in one place:
//!
//! - [`embedded`]: the store file, with this process's workflow engine, read models in the
//!   same file, its log tailed for the live feed, settings in tables of their own;
//! - [`aws`]: dynamo-es over the `Events` table, the workflow in Step Functions, the read
//!   models in the read-model table the projection Lambda keeps, the live feed from the events
//!   table's DynamoDB Stream, settings in partitions of the read-model table.
//!
//! Each answers every call alike; where one mode cannot answer (the projection's position on
//! AWS, a webhook secret where nothing delivers), the call says so in its type (`Option`).

pub mod aws;
pub mod embedded;

use std::sync::Arc;

use async_trait::async_trait;
use command_lambdas::adapters::AdapterError;
use command_lambdas::api_keys::{self, Issued, KeyError};
use command_lambdas::command::{Request, Response};
use command_lambdas::service::{ExperimentService, PlatformState, ServiceError};
use command_lambdas::store::{CommandOutcome, Repository};
use command_lambdas::tasks::{TargetPreview, TaskError};
use domain::audit::VerifyReport;
use domain::platform::{Concern, Platform, PlatformConfig};
use domain::provenance::{CommandContext, Role};
use domain::spec::{ExperimentSpec, Problem};
use domain::views::analytics::Analytics;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentSummary;
use domain::views::results::RunResult;
use embedded_read::projector::ProjectionError;
use embedded_read::queries::ProjectionStatus;
use embedded_write::sqlite::StoreStats;
use projection_lambdas::dynamo_queries::ReadError;
use projection_lambdas::reads::{AuditFilter, ExperimentDetail, ExperimentFilter, Page};

use crate::chain::ChainError;
use crate::feed::Feed;
use crate::settings::Settings;

pub use embedded::webhook_secret::{IssueError, IssuedSecret};

/// Why a backend could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The workflow runner could not be built.
    #[error("{0}")]
    Workflow(#[from] embedded_write::workflow::WorkflowError),
    /// The store could not be read.
    #[error("the event store cannot be read: {0}")]
    Store(#[from] sqlx::Error),
    /// The templates and preferences could not be opened.
    #[error("{0}")]
    Settings(#[from] crate::settings::SettingsError),
    /// The live feed could not be started.
    #[error("the live feed cannot start: {0}")]
    Feed(#[from] crate::feed::FeedError),
}

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

/// The platform commands the API sends straight to the application service (experiment
/// commands go through [`Backend::command`], as the command Lambda takes them): the service of
/// either store, behind one object-safe interface.
#[async_trait]
pub trait Commands: Send + Sync {
    /// The state of `concerns`, each from its ledger, caught up.
    async fn platform_of(&self, concerns: &[Concern]) -> Result<PlatformState, ServiceError>;
    /// Adds user `username` with `role`.
    async fn add_user(
        &self,
        username: &str,
        role: Role,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError>;
    /// Replaces the platform's configuration.
    async fn update_config(
        &self,
        config: PlatformConfig,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError>;
    /// Subscribes webhook `id` at `url` to `events`.
    async fn add_webhook(
        &self,
        id: &str,
        url: &str,
        events: Vec<String>,
        allow_private: bool,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError>;
    /// Removes webhook `id`.
    async fn remove_webhook(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError>;
    /// Issues API key `id` (see [`api_keys::issue`]).
    async fn issue_api_key(
        &self,
        id: &str,
        name: &str,
        role: Role,
        context: &CommandContext,
    ) -> Result<Issued, KeyError>;
    /// Revokes API key `id`.
    async fn revoke_api_key(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError>;
}

#[async_trait]
impl<R: Repository> Commands for ExperimentService<R> {
    async fn platform_of(&self, concerns: &[Concern]) -> Result<PlatformState, ServiceError> {
        ExperimentService::platform_of(self, concerns).await
    }

    async fn add_user(
        &self,
        username: &str,
        role: Role,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        ExperimentService::add_user(self, username, role, context).await
    }

    async fn update_config(
        &self,
        config: PlatformConfig,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        ExperimentService::update_config(self, config, context).await
    }

    async fn add_webhook(
        &self,
        id: &str,
        url: &str,
        events: Vec<String>,
        allow_private: bool,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        ExperimentService::add_webhook(self, id, url, events, allow_private, context).await
    }

    async fn remove_webhook(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        ExperimentService::remove_webhook(self, id, context).await
    }

    async fn issue_api_key(
        &self,
        id: &str,
        name: &str,
        role: Role,
        context: &CommandContext,
    ) -> Result<Issued, KeyError> {
        api_keys::issue(self, id, name, role, context).await
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        ExperimentService::revoke_api_key(self, id, context).await
    }
}

/// Where commands go and reads come from, the live feed, templates and preferences: the
/// platform in one of its modes.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// `embedded` or `aws`, as `/health` reports it.
    fn mode(&self) -> &'static str;

    /// The application service, for platform commands.
    fn commands(&self) -> &dyn Commands;

    /// The log as it grows, for subscriptions.
    fn feed(&self) -> &Feed;

    /// Templates and preferences.
    fn settings(&self) -> &Settings;

    /// Sends `request` through the command entry point the command Lambda serves.
    async fn command(&self, request: Request) -> Response;

    /// What a run of `spec` with id `seed` would hit now.
    async fn preview(&self, spec: &ExperimentSpec, seed: &str) -> Result<TargetPreview, TaskError>;

    /// The stop conditions of `spec` its target cannot observe (see
    /// [`command_lambdas::tasks::Tasks::unobservable`]).
    async fn unobservable(&self, spec: &ExperimentSpec) -> Result<Vec<Problem>, AdapterError>;

    /// Issues webhook `id` a new signing secret, recorded in the log by its fingerprint and
    /// kept where the sender reads it (see [`embedded::webhook_secret::issue`]): `None` where
    /// nothing sends deliveries (AWS, for now), so nothing is drawn or recorded.
    async fn issue_webhook_secret(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<Option<IssuedSecret>, IssueError>;

    /// Experiments, newest first, `limit` at a time after `cursor`.
    async fn experiments(
        &self,
        filter: ExperimentFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<ExperimentSummary>, ReadFailure>;

    /// One experiment with its timeline.
    async fn experiment(&self, id: String) -> Result<Option<ExperimentDetail>, ReadFailure>;

    /// Audit entries matching `filter`, in recording order, `limit` at a time after `after`
    /// (the last entry's time, experiment and sequence).
    async fn audit_log(
        &self,
        filter: AuditFilter,
        after: Option<(String, String, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReadFailure>;

    /// Every finished run, in the order they ended.
    async fn results(&self) -> Result<Vec<RunResult>, ReadFailure>;

    /// Analytics over every finished run.
    async fn analytics(&self) -> Result<Analytics, ReadFailure>;

    /// Where the read models are in the log: known embedded, where the log and the read models
    /// are in one file. On AWS the projection's lag is its event source mapping's
    /// `IteratorAge` metric, not something the API can read from the tables.
    async fn projection_status(&self) -> Result<Option<ProjectionStatus>, ReadFailure>;

    /// What the store holds (embedded; the tables on AWS are not counted).
    async fn store_stats(&self) -> Result<Option<StoreStats>, ReadFailure>;

    /// Verifies the chain and sequence of one stream (`(type, id)`) or, without one, of every
    /// stream, with the checks `chaos audit verify` makes: see [`crate::chain::check_chain`].
    async fn verify_chain(
        &self,
        stream: Option<(String, String)>,
    ) -> Result<VerifyReport, ChainError>;

    /// The state of `concerns` of the platform, each caught up with its ledger (one small
    /// read each when nothing changed), so a key revoked or a user removed is seen by the very
    /// next request.
    async fn platform(&self, concerns: &[Concern]) -> Result<Platform, String> {
        self.commands()
            .platform_of(concerns)
            .await
            .map(|state| state.aggregate)
            .map_err(|e| e.to_string())
    }
}

/// The backend the server runs on: cheap to clone.
pub type SharedBackend = Arc<dyn Backend>;
