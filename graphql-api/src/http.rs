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
use std::sync::Arc;

use demo_fleet::{FleetStatus, LocalFleets};
use domain::platform::Concern;
use embedded_write::sqlite::StoreStats;
use serde::Serialize;

use crate::backend::SharedBackend;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where the platform's state is.
    pub backend: SharedBackend,
    /// The demo fleets this process runs.
    pub fleets: LocalFleets,
    /// The GraphQL API.
    pub api: crate::api::Api,
}

impl AppState {
    /// The server over `backend`, with `auth` checking credentials and `limits` on callers;
    /// `fleets` are the demo fleets this process runs (none on AWS).
    pub fn new(
        backend: SharedBackend,
        fleets: LocalFleets,
        auth: crate::identity::Authenticator,
        limits: crate::limits::Limits,
    ) -> AppState {
        let context = crate::api::ApiContext {
            backend: Arc::clone(&backend),
            auth,
            limits: Arc::new(limits),
        };
        AppState {
            backend,
            fleets,
            api: crate::api::Api::new(context),
        }
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
    let backend = &state.backend;
    let store = backend
        .store_stats()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let platform = backend.platform(&Concern::ALL).await.map_err(unavailable)?;
    let projections = backend
        .projection_status()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        mode: backend.mode(),
        store,
        halted: platform.halted().is_some(),
        warnings: warnings(&platform),
        projections: projections.map(|p| ProjectionHealth {
            behind: p.behind,
            parked: p.parked.len(),
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
    use embedded_write::sqlite::{OpenMode, open};
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
        let fleets = LocalFleets::default();
        let (backend, _) = crate::backend::embedded::EmbeddedBackend::start(
            &db_path,
            pool,
            &fleets,
            Arc::new(SystemClock),
        )
        .await
        .expect("backend");
        let state = AppState::new(
            Arc::new(backend),
            fleets,
            auth,
            crate::limits::Limits::default(),
        );
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
