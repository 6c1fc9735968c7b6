//! The embedded platform: one store file holds the log, the read models, the settings and the
//! identity provider's credentials; the server holding the store's [`lease`] runs the
//! workflows ([`engine`]) on the demo fleet, reads the read models through connections of its
//! own ([`reads`]), tails the log for the live feed ([`feed`]), keeps templates and
//! preferences in tables beside the log ([`settings`]) and issues webhook secrets
//! ([`webhook_secret`]).

pub mod engine;
pub mod feed;
pub mod lease;
pub mod reads;
pub mod settings;
pub mod webhook_secret;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use command_lambdas::adapters::AdapterError;
use command_lambdas::clock::SystemClock;
use command_lambdas::command::{self, Request, Response};
use command_lambdas::tasks::{TargetPreview, TaskError};
use demo_fleet::LocalFleets;
use domain::audit::{ChainVerifier, VerifyReport};
use domain::provenance::CommandContext;
use domain::spec::{ExperimentSpec, Problem};
use domain::views::analytics::Analytics;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentSummary;
use domain::views::results::RunResult;
use embedded_read::queries::{self, ProjectionStatus};
use embedded_write::SqliteService;
use embedded_write::sqlite::{StoreStats, verify_file};
use projection_lambdas::reads::{AuditFilter, ExperimentDetail, ExperimentFilter, Page};
use sqlx::SqlitePool;

use super::{Backend, BuildError, Commands, IssueError, IssuedSecret, ReadFailure};
use crate::chain::{ChainError, read_only, store_rows};
use crate::feed::Feed;
use crate::settings::Settings;
use engine::EmbeddedWorkflows;
use reads::ReadModels;

/// The platform in one store file.
#[derive(Debug, Clone)]
pub struct EmbeddedBackend {
    workflows: EmbeddedWorkflows,
    reads: ReadModels,
    pool: SqlitePool,
    feed: Feed,
    settings: Settings,
}

impl EmbeddedBackend {
    /// The platform in the store `db` (open as `pool`): its commands, workflows (acting on
    /// `fleets`), read models, live feed and settings. The workflow runner is returned too,
    /// for its owner to drive ([`engine::follow`]).
    pub async fn start(
        db: &Path,
        pool: SqlitePool,
        fleets: &LocalFleets,
        clock: Arc<SystemClock>,
    ) -> Result<(EmbeddedBackend, EmbeddedWorkflows), BuildError> {
        let store = embedded_write::SqliteStore::new(
            embedded_write::sqlite::repository(pool.clone()),
            clock.clone(),
            Arc::new(command_lambdas::clock::UuidV7),
        );
        let service = SqliteService::new(Arc::new(store), clock.clone());
        let workflows = engine::workflows(service, fleets, clock)?;
        let backend = EmbeddedBackend {
            workflows: workflows.clone(),
            reads: ReadModels::new(db),
            feed: Feed::new(feed::LogSource::start(pool.clone()).await?),
            settings: Settings::new(settings::SqliteSettings::open(pool.clone()).await?),
            pool,
        };
        Ok((backend, workflows))
    }

    /// The application service over the store.
    pub fn service(&self) -> &SqliteService {
        self.workflows.tasks().service()
    }
}

#[async_trait]
impl Backend for EmbeddedBackend {
    fn mode(&self) -> &'static str {
        "embedded"
    }

    fn commands(&self) -> &dyn Commands {
        self.service()
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn command(&self, request: Request) -> Response {
        command::handle(self.workflows.tasks(), &self.workflows, request).await
    }

    async fn preview(&self, spec: &ExperimentSpec, seed: &str) -> Result<TargetPreview, TaskError> {
        self.workflows.tasks().preview(spec, seed).await
    }

    async fn unobservable(&self, spec: &ExperimentSpec) -> Result<Vec<Problem>, AdapterError> {
        self.workflows.tasks().unobservable(spec).await
    }

    async fn issue_webhook_secret(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<Option<IssuedSecret>, IssueError> {
        webhook_secret::issue(self.service(), self.reads.path(), id, context)
            .await
            .map(Some)
    }

    async fn experiments(
        &self,
        filter: ExperimentFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<ExperimentSummary>, ReadFailure> {
        Ok(self.reads.experiments(filter, cursor, limit).await?)
    }

    async fn experiment(&self, id: String) -> Result<Option<ExperimentDetail>, ReadFailure> {
        Ok(self
            .reads
            .read(move |conn| queries::experiment(conn, &id))
            .await?)
    }

    async fn audit_log(
        &self,
        filter: AuditFilter,
        after: Option<(String, String, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReadFailure> {
        Ok(self
            .reads
            .read(move |conn| {
                let after = after
                    .as_ref()
                    .map(|(at, id, seq)| (at.as_str(), id.as_str(), *seq));
                queries::audit_log(conn, &filter, after, limit)
            })
            .await?)
    }

    async fn results(&self) -> Result<Vec<RunResult>, ReadFailure> {
        Ok(self.reads.read(queries::results).await?)
    }

    async fn analytics(&self) -> Result<Analytics, ReadFailure> {
        Ok(self.reads.read(queries::run_analytics).await?)
    }

    async fn projection_status(&self) -> Result<Option<ProjectionStatus>, ReadFailure> {
        Ok(Some(self.reads.read(queries::status).await?))
    }

    async fn store_stats(&self) -> Result<Option<StoreStats>, ReadFailure> {
        embedded_write::sqlite::stats(&self.pool)
            .await
            .map(Some)
            .map_err(|e| ReadFailure::Unavailable(e.to_string()))
    }

    /// One stream is one indexed read of its rows; the whole log is [`verify_file`]'s
    /// streamed scan (a read-only connection on a blocking thread, memory growing with the
    /// number of streams, not of events).
    async fn verify_chain(
        &self,
        stream: Option<(String, String)>,
    ) -> Result<VerifyReport, ChainError> {
        let path = self.reads.path().to_owned();
        tokio::task::spawn_blocking(move || match stream {
            None => Ok(verify_file(&path, 0, |_| {})?),
            Some((aggregate_type, aggregate_id)) => {
                let mut verifier = ChainVerifier::new();
                store_rows(
                    &read_only(&path)?,
                    "WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                    &[&aggregate_type, &aggregate_id],
                    |row, not_text| {
                        match not_text {
                            None => verifier.push(&row),
                            Some(column) => verifier.push_not_text(&row, column),
                        }
                        Ok::<_, ChainError>(())
                    },
                )?;
                Ok(verifier.finish())
            }
        })
        .await
        .map_err(|e| ChainError::Task(e.to_string()))?
    }
}
