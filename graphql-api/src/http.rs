//! HTTP surface of `chaos serve`.
//!
//! `GET /health` reports liveness and what the store holds (embedded) or that the platform
//! can be read (AWS); it is what load balancers, the dashboard and scripts poll. `GET /fleet` shows the demo fleets. Every error is JSON with a
//! stable `code`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use command_lambdas::SqliteService;
use command_lambdas::sqlite::{StoreStats, stats};
use demo_fleet::{FleetStatus, LocalFleets};
use serde::Serialize;
use sqlx::SqlitePool;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where the platform's state is.
    pub mode: Mode,
    /// The demo fleets this process runs.
    pub fleets: LocalFleets,
    /// The GraphQL API.
    pub api: crate::api::Api,
}

/// Where the platform's state is.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The store file.
    Embedded {
        /// The embedded store's pool (read-only queries).
        pool: SqlitePool,
        /// Commands and loads.
        service: SqliteService,
        /// The store file (read models are read through their own connections).
        db_path: std::path::PathBuf,
    },
    /// AWS: the events table, the read-model table and the workflow in Step Functions.
    Aws(std::sync::Arc<crate::backend::AwsBackend>),
}

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

/// Why the server's state could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The workflow runner could not be built.
    #[error("{0}")]
    Workflow(#[from] command_lambdas::workflow::WorkflowError),
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

impl AppState {
    /// The embedded platform over the store `db` (open as `pool`): its commands, workflows
    /// (acting on `fleets`), read models, live feed and settings, with `auth` checking
    /// credentials. The workflow runner is returned too, for its owner to drive.
    pub async fn embedded(
        db: &std::path::Path,
        pool: SqlitePool,
        fleets: LocalFleets,
        auth: crate::identity::Authenticator,
        clock: std::sync::Arc<command_lambdas::clock::SystemClock>,
        limits: crate::limits::Limits,
    ) -> Result<(AppState, crate::engine::EmbeddedWorkflows), BuildError> {
        let store = command_lambdas::SqliteStore::new(
            command_lambdas::sqlite::repository(pool.clone()),
            clock.clone(),
            std::sync::Arc::new(command_lambdas::clock::UuidV7),
        );
        let service = SqliteService::new(std::sync::Arc::new(store), clock.clone());
        let workflows = crate::engine::workflows(service.clone(), &fleets, clock)?;
        let context = crate::api::ApiContext {
            backend: crate::backend::Backend::Embedded {
                workflows: workflows.clone(),
                reads: crate::reads::ReadModels::new(db),
                pool: pool.clone(),
            },
            auth,
            feed: crate::feed::Feed::Log(crate::feed::LogFeed::start(pool.clone()).await?),
            settings: crate::settings::Settings::open(pool.clone()).await?,
            limits: std::sync::Arc::new(limits),
        };
        let state = AppState {
            mode: Mode::Embedded {
                pool,
                service,
                db_path: db.to_owned(),
            },
            fleets,
            api: crate::api::Api::new(context),
        };
        Ok((state, workflows))
    }

    /// The platform on AWS (clients from `config`): commands through dynamo-es into
    /// `resources.events_table` and the workflow in Step Functions, reads from the read-model
    /// table, the live feed from the events table's stream. Health is judged by `metrics`.
    pub async fn aws(
        config: &aws_config::SdkConfig,
        resources: &AwsResources,
        metrics: command_lambdas::cloudwatch::HealthMetrics,
        auth: crate::identity::Authenticator,
        limits: crate::limits::Limits,
    ) -> Result<AppState, BuildError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(config);
        let backend = std::sync::Arc::new(crate::backend::AwsBackend {
            tasks: command_lambdas::lambda::aws_tasks(
                config,
                &resources.events_table,
                &resources.views_table,
                metrics,
            ),
            workflow: command_lambdas::lambda::step_functions(config, &resources.state_machine_arn),
            reads: projection_lambdas::dynamo_queries::DynamoReads::new(
                dynamodb.clone(),
                resources.views_table.clone(),
            ),
            events: dynamodb.clone(),
            events_table: resources.events_table.clone(),
        });
        let feed = crate::feed::streams::StreamFeed::start(
            dynamodb.clone(),
            aws_sdk_dynamodbstreams::Client::new(config),
            &resources.events_table,
        )
        .await?;
        let context = crate::api::ApiContext {
            backend: crate::backend::Backend::Aws(std::sync::Arc::clone(&backend)),
            auth,
            feed: crate::feed::Feed::Streams(feed),
            settings: crate::settings::Settings::dynamo(dynamodb, resources.views_table.clone()),
            limits: std::sync::Arc::new(limits),
        };
        Ok(AppState {
            mode: Mode::Aws(backend),
            fleets: LocalFleets::default(),
            api: crate::api::Api::new(context),
        })
    }
}

/// An error as the HTTP client sees it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store cannot be read.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// No such route.
    #[error("no route for this path")]
    NotFound,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` when the store answers.
    pub status: &'static str,
    /// Build version.
    pub version: &'static str,
    /// `embedded` or `aws`.
    pub mode: &'static str,
    /// What the store holds (embedded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStats>,
    /// Whether the halt switch is on.
    pub halted: bool,
    /// What needs an administrator's attention: every bounded part of the platform's state
    /// past 80 % of its limit.
    pub warnings: Vec<String>,
    /// Where the read models are in the log (embedded; on AWS it is the projection's
    /// `IteratorAge` metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projections: Option<ProjectionHealth>,
}

/// Every capacity of `platform` near its limit, in words.
fn warnings(platform: &domain::platform::Platform) -> Vec<String> {
    platform
        .capacity()
        .iter()
        .filter_map(domain::platform::Capacity::warning)
        .collect()
}

/// The read models' position, for `/health`.
#[derive(Debug, Serialize)]
pub struct ProjectionHealth {
    /// Events not yet projected.
    pub behind: i64,
    /// Records parked (poison records and what waits behind them).
    pub parked: usize,
}

async fn health(State(state): State<AppState>) -> Result<Json<Health>, AppError> {
    let unavailable = |e: String| AppError::Unavailable(e);
    let (pool, service, db_path) = match &state.mode {
        Mode::Embedded {
            pool,
            service,
            db_path,
        } => (pool, service, db_path),
        Mode::Aws(aws) => {
            let platform = aws
                .tasks
                .service()
                .platform()
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            return Ok(Json(Health {
                status: "ok",
                version: env!("CARGO_PKG_VERSION"),
                mode: "aws",
                store: None,
                halted: platform.aggregate.halted().is_some(),
                warnings: warnings(&platform.aggregate),
                projections: None,
            }));
        }
    };
    let store = stats(pool).await.map_err(|e| unavailable(e.to_string()))?;
    let platform = service
        .platform()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let path = db_path.clone();
    let projections = tokio::task::spawn_blocking(move || {
        let conn = projection_lambdas::embedded::connect(&path)?;
        projection_lambdas::queries::status(&conn)
    })
    .await
    .map_err(|e| unavailable(e.to_string()))?
    .map_err(|e| unavailable(e.to_string()))?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        mode: "embedded",
        store: Some(store),
        halted: platform.aggregate.halted().is_some(),
        warnings: warnings(&platform.aggregate),
        projections: Some(ProjectionHealth {
            behind: projections.behind,
            parked: projections.parked.len(),
        }),
    }))
}

/// `GET /fleet`: the demo fleets: members, traffic through the balancer, and each fleet's own
/// record of workers lost, replaced, paused and resumed.
async fn fleet(State(state): State<AppState>) -> Json<Vec<FleetStatus>> {
    Json(state.fleets.fleets().iter().map(|f| f.status()).collect())
}

async fn not_found() -> AppError {
    AppError::NotFound
}

/// The application's routes: the API, `/health`, `/fleet` and the dashboard.
pub fn router(state: AppState) -> Router {
    let api = crate::api::routes(state.api.clone());
    let mut dashboard = crate::dashboard::Dashboard::located();
    // People sign in to the Cognito user pool from the page itself.
    if let Some(cognito) = &state.api.context.auth.cognito {
        dashboard = dashboard.connecting_to(cognito.sign_in().origin());
    }
    Router::new()
        .route("/health", get(health))
        .route("/fleet", get(fleet))
        .with_state(state)
        .merge(api)
        .merge(crate::dashboard::routes(dashboard))
        .fallback(not_found)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use command_lambdas::clock::SystemClock;
    use command_lambdas::sqlite::{OpenMode, open};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn app(dir: &std::path::Path) -> Router {
        let db_path = dir.join("chaos.db");
        let pool = open(&db_path, OpenMode::CreateIfMissing)
            .await
            .expect("open");
        let local = crate::identity::local::LocalIssuer::open(
            pool.clone(),
            &crate::identity::local::key_file(&db_path),
            crate::identity::local::TokenPolicy::default(),
        )
        .await
        .expect("identity");
        let auth = crate::identity::Authenticator {
            local: Some(local),
            cognito: None,
            first_admin: None,
        };
        let (state, _) = AppState::embedded(
            &db_path,
            pool,
            LocalFleets::default(),
            auth,
            Arc::new(SystemClock),
            crate::limits::Limits::default(),
        )
        .await
        .expect("state");
        router(state)
    }

    async fn get(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn health_reports_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (status, body) = get(app(dir.path()).await, "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["store"]["streams"], 0);
        assert_eq!(body["projections"]["behind"], 0);
    }

    #[tokio::test]
    async fn unknown_routes_get_a_coded_json_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (status, body) = get(app(dir.path()).await, "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
}
