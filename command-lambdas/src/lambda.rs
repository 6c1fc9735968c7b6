//! What the Lambda binaries share: configuration from the environment, SDK clients built once
//! per process, and the mapping of task errors to the error names the workflow's `Retry` and
//! `Catch` match (`Chaos.Retryable`, `Chaos.Failed`).
//!
//! Environment: `EVENTS_TABLE` (the dynamo-es events table), `STATE_MACHINE_ARN` (the
//! experiment workflow; the command and housekeeping Lambdas), `VIEWS_TABLE` (the read-model
//! table: the tasks keep their target claims there, housekeeping reads its status index; the
//! command Lambda ends stopped runs with the tasks' rollback, so it needs it too),
//! `HEALTH_WINDOW_SECS` (default 60) and `HEALTH_LATENCY_STAT` (default `p95`); credentials
//! and region as every Lambda has them.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};

use crate::asg::AsgTargets;
use crate::clock::{SystemClock, UuidV7};
use crate::cloudwatch::{AsgHealth, CloudWatchAlarms, HealthMetrics};
use crate::command::{self, Request, Response};
use crate::dynamo::{DynamoClaims, DynamoStore, repository};
use crate::housekeeping::Housekeeping;
use crate::service::ExperimentService;
use crate::sfn::StepFunctions;
pub use crate::tasks::Task;
use crate::tasks::{TaskError, TaskInput, TaskOutput, Tasks};

/// The service over the AWS event store.
pub type AwsService = ExperimentService<crate::dynamo::DynamoRepository>;

/// The tasks as they run on AWS.
pub type AwsTasks = Tasks<crate::dynamo::DynamoRepository, AsgTargets, AsgHealth, CloudWatchAlarms>;

fn required(name: &str, what: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set: it must name {what}").into())
}

fn service(config: &aws_config::SdkConfig) -> Result<AwsService, Error> {
    let table = required("EVENTS_TABLE", "the events table")?;
    Ok(aws_service(config, &table))
}

/// The service over the events table `events_table`.
pub fn aws_service(config: &aws_config::SdkConfig, events_table: &str) -> AwsService {
    let store = DynamoStore::new(
        repository(aws_sdk_dynamodb::Client::new(config), events_table),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
    );
    ExperimentService::new(Arc::new(store), Arc::new(SystemClock))
}

/// The experiment workflow `state_machine_arn`, for the command path.
pub fn step_functions(config: &aws_config::SdkConfig, state_machine_arn: &str) -> StepFunctions {
    StepFunctions::new(
        aws_sdk_sfn::Client::new(config),
        state_machine_arn.to_owned(),
    )
}

/// The health metrics' settings from `HEALTH_WINDOW_SECS` and `HEALTH_LATENCY_STAT`.
pub fn metrics() -> Result<HealthMetrics, Error> {
    let mut metrics = HealthMetrics::default();
    if let Ok(window) = std::env::var("HEALTH_WINDOW_SECS") {
        metrics.window_secs = window
            .parse()
            .map_err(|_| format!("HEALTH_WINDOW_SECS={window:?} is not a number of seconds"))?;
    }
    if let Ok(stat) = std::env::var("HEALTH_LATENCY_STAT") {
        metrics.latency_stat = stat;
    }
    Ok(metrics)
}

/// The tasks over clients built from `config`.
pub fn tasks(config: &aws_config::SdkConfig) -> Result<AwsTasks, Error> {
    let views = required(
        "VIEWS_TABLE",
        "the read-model table (it keeps the target claims)",
    )?;
    Ok(aws_tasks(
        config,
        &required("EVENTS_TABLE", "the events table")?,
        &views,
        metrics()?,
    ))
}

/// The tasks over the events table `events_table`, keeping their target claims in the
/// read-model table `views_table`, judging health by `metrics`.
pub fn aws_tasks(
    config: &aws_config::SdkConfig,
    events_table: &str,
    views_table: &str,
    metrics: HealthMetrics,
) -> AwsTasks {
    let autoscaling = aws_sdk_autoscaling::Client::new(config);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(config);
    Tasks::new(
        aws_service(config, events_table),
        AsgTargets::new(aws_sdk_ec2::Client::new(config), autoscaling.clone()),
        AsgHealth::new(
            autoscaling,
            cloudwatch.clone(),
            metrics,
            Arc::new(SystemClock),
        ),
        CloudWatchAlarms::new(cloudwatch),
        Arc::new(SystemClock),
    )
    .with_claims(Arc::new(DynamoClaims::new(
        aws_sdk_dynamodb::Client::new(config),
        views_table.to_owned(),
    )))
}

/// A task error as the workflow sees it: its name says whether `Retry` applies.
fn diagnostic(e: &TaskError) -> Diagnostic {
    Diagnostic {
        error_type: e.name().to_owned(),
        error_message: e.to_string(),
    }
}

/// Runs one task of `tasks` on `input`, as its Lambda does.
pub async fn run_task(
    tasks: &AwsTasks,
    task: Task,
    input: &TaskInput,
) -> Result<TaskOutput, Diagnostic> {
    tasks.perform(task, input).await.map_err(|e| {
        tracing::warn!(task = ?task, error = %e, retryable = e.is_retryable(), "task failed");
        diagnostic(&e)
    })
}

/// The main of a task Lambda.
pub async fn serve_task(task: Task) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let tasks = tasks(&config)?;
    let tasks = &tasks;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<TaskInput>| async move {
        run_task(tasks, task, &event.payload).await
    }))
    .await
}

/// The main of the housekeeping Lambda (an EventBridge schedule rule invokes it every minute;
/// the event is ignored): the scheduler's tick and the runs' reconciliation with their
/// executions ([`crate::housekeeping`]). Also needs `VIEWS_TABLE`, the read-model table.
pub async fn serve_housekeeping() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let housekeeping = Housekeeping::new(
        service(&config)?,
        StepFunctions::new(
            aws_sdk_sfn::Client::new(&config),
            required("STATE_MACHINE_ARN", "the experiment workflow")?,
        ),
        aws_sdk_dynamodb::Client::new(&config),
        required("VIEWS_TABLE", "the read-model table")?,
    );
    let housekeeping = &housekeeping;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let now = crate::clock::Clock::now(&SystemClock);
            let report = housekeeping.run(now).await.map_err(|e| {
                tracing::error!(error = %e, "housekeeping failed");
                Diagnostic {
                    error_type: "Chaos.Housekeeping".to_owned(),
                    error_message: e.to_string(),
                }
            })?;
            tracing::info!(report = ?report, "housekeeping");
            // CloudWatch reads this line from the log as the RunsPastLimit metric.
            println!("{}", crate::housekeeping::metric_line(&report, now));
            Ok::<_, Diagnostic>(report)
        },
    ))
    .await
}

/// The main of the command Lambda.
pub async fn serve_commands() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let tasks = tasks(&config)?;
    let workflow = StepFunctions::new(
        aws_sdk_sfn::Client::new(&config),
        required("STATE_MACHINE_ARN", "the experiment workflow")?,
    );
    let (tasks, workflow) = (&tasks, &workflow);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // A request that does not parse is answered like any refusal, not failed.
            let response = match serde_json::from_value::<Request>(event.payload) {
                Ok(request) => command::handle(tasks, workflow, request).await,
                Err(e) => Response::malformed(&e),
            };
            Ok::<_, Error>(response)
        },
    ))
    .await
}
