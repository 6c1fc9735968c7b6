//! The platform deployed on AWS: commands through dynamo-es into the `Events` table (the
//! command Lambda's entry point, run in this process), the workflow in Step Functions, the read
//! models in the read-model table the projection Lambda keeps, the live feed from the events
//! table's DynamoDB Stream ([`feed`]), templates and preferences in partitions of the
//! read-model table ([`settings`]).

pub mod feed;
pub mod settings;

use std::collections::BTreeSet;

use async_trait::async_trait;
use command_lambdas::adapters::AdapterError;
use command_lambdas::command::{self, Request, Response};
use command_lambdas::lambda::AwsTasks;
use command_lambdas::sfn::StepFunctions;
use command_lambdas::tasks::{TargetPreview, TaskError};
use domain::audit::{ChainVerifier, VerifyReport};
use domain::provenance::CommandContext;
use domain::spec::{ExperimentSpec, Problem};
use domain::views::analytics::Analytics;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentSummary;
use domain::views::results::RunResult;
use embedded_read::queries::ProjectionStatus;
use embedded_write::sqlite::StoreStats;
use projection_lambdas::dynamo_queries::DynamoReads;
use projection_lambdas::reads::{AuditFilter, ExperimentDetail, ExperimentFilter, Page};

use super::{Backend, BuildError, Commands, IssueError, IssuedSecret, ReadFailure};
use crate::chain::{ChainError, dynamo_stream, dynamo_streams};
use crate::feed::Feed;
use crate::settings::Settings;

/// The AWS resources `chaos serve --aws` works with.
#[derive(Debug, Clone)]
pub struct AwsResources {
    /// The dynamo-es events table (with its stream, `NEW_IMAGE`).
    pub events_table: String,
    /// The read-model table the projection Lambda keeps.
    pub views_table: String,
    /// The experiment workflow's state machine.
    pub state_machine_arn: String,
}

/// The platform on AWS.
#[derive(Debug)]
pub struct AwsBackend {
    /// The workflow's tasks (their service writes through dynamo-es; target preview).
    tasks: AwsTasks,
    /// The experiment workflow.
    workflow: StepFunctions,
    /// The read-model table.
    reads: DynamoReads,
    /// The events table, read directly to check its chain.
    events: aws_sdk_dynamodb::Client,
    /// Its name.
    events_table: String,
    feed: Feed,
    settings: Settings,
}

impl AwsBackend {
    /// The platform on AWS (clients from `config`): commands through dynamo-es into
    /// `resources.events_table` and the workflow in Step Functions, reads from the read-model
    /// table, the live feed from the events table's stream. Health is judged by `metrics`.
    pub async fn start(
        config: &aws_config::SdkConfig,
        resources: &AwsResources,
        metrics: command_lambdas::cloudwatch::HealthMetrics,
    ) -> Result<AwsBackend, BuildError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(config);
        let feed = feed::StreamSource::start(
            dynamodb.clone(),
            aws_sdk_dynamodbstreams::Client::new(config),
            &resources.events_table,
        )
        .await?;
        Ok(AwsBackend {
            tasks: command_lambdas::lambda::aws_tasks(
                config,
                &resources.events_table,
                &resources.views_table,
                metrics,
            ),
            workflow: command_lambdas::lambda::step_functions(config, &resources.state_machine_arn),
            reads: DynamoReads::new(dynamodb.clone(), resources.views_table.clone()),
            events: dynamodb.clone(),
            events_table: resources.events_table.clone(),
            feed: Feed::new(feed),
            settings: Settings::new(settings::DynamoSettings::new(
                dynamodb,
                resources.views_table.clone(),
            )),
        })
    }
}

#[async_trait]
impl Backend for AwsBackend {
    fn mode(&self) -> &'static str {
        "aws"
    }

    fn commands(&self) -> &dyn Commands {
        self.tasks.service()
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn command(&self, request: Request) -> Response {
        command::handle(&self.tasks, &self.workflow, request).await
    }

    async fn preview(&self, spec: &ExperimentSpec, seed: &str) -> Result<TargetPreview, TaskError> {
        self.tasks.preview(spec, seed).await
    }

    async fn unobservable(&self, spec: &ExperimentSpec) -> Result<Vec<Problem>, AdapterError> {
        self.tasks.unobservable(spec).await
    }

    /// Nothing sends deliveries on AWS yet, so nothing is drawn or recorded.
    async fn issue_webhook_secret(
        &self,
        _id: &str,
        _context: &CommandContext,
    ) -> Result<Option<IssuedSecret>, IssueError> {
        Ok(None)
    }

    async fn experiments(
        &self,
        filter: ExperimentFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<ExperimentSummary>, ReadFailure> {
        Ok(self
            .reads
            .experiments(&filter, cursor.as_deref(), limit)
            .await?)
    }

    async fn experiment(&self, id: String) -> Result<Option<ExperimentDetail>, ReadFailure> {
        Ok(self.reads.experiment(&id).await?)
    }

    async fn audit_log(
        &self,
        filter: AuditFilter,
        after: Option<(String, String, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ReadFailure> {
        let after = after
            .as_ref()
            .map(|(at, id, seq)| (at.as_str(), id.as_str(), *seq));
        Ok(self.reads.audit_log(&filter, after, limit).await?)
    }

    async fn results(&self) -> Result<Vec<RunResult>, ReadFailure> {
        Ok(self.reads.results().await?)
    }

    async fn analytics(&self) -> Result<Analytics, ReadFailure> {
        Ok(self.reads.analytics().await?)
    }

    /// The projection's lag is its event source mapping's `IteratorAge` metric.
    async fn projection_status(&self) -> Result<Option<ProjectionStatus>, ReadFailure> {
        Ok(None)
    }

    async fn store_stats(&self) -> Result<Option<StoreStats>, ReadFailure> {
        Ok(None)
    }

    /// `chaos audit verify --dynamo-table`'s path: a `Scan` of the table's keys (for the
    /// whole log), then one `Query` per stream, one stream in memory at a time.
    async fn verify_chain(
        &self,
        stream: Option<(String, String)>,
    ) -> Result<VerifyReport, ChainError> {
        let (client, table) = (&self.events, self.events_table.as_str());
        let whole = stream.is_none();
        let streams = match stream {
            Some(stream) => BTreeSet::from([stream]),
            None => dynamo_streams(client, table, |_| {}).await?.0,
        };
        let mut verifier = ChainVerifier::new();
        for (aggregate_type, aggregate_id) in &streams {
            for row in dynamo_stream(client, table, aggregate_type, aggregate_id).await? {
                verifier.push(&row.row());
            }
        }
        let report = verifier.finish();
        Ok(if whole { report.of_whole_log() } else { report })
    }
}
