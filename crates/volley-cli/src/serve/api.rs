//! The JSON API under `/api/`: the same objects as the CLI's `--json` (`volley jobs`,
//! `status`, `workers`, `hosts`), so a script can move between the two.

use super::Dashboard;
use crate::commands::{jobs, status};
use crate::exit::{self, Failure};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use std::sync::Arc;
use volley_core::JobId;
use volley_core::time::now_ms;

type Shared = State<Arc<Dashboard>>;

pub(super) fn routes() -> Router<Arc<Dashboard>> {
    Router::new()
        .route("/api/info", get(info))
        .route("/api/jobs", get(job_list))
        .route("/api/jobs/{job}", get(job))
        .route("/api/workers", get(workers))
        .route("/api/hosts", get(hosts))
}

/// An error as the API says it: `{"error": "..."}` with a status that fits.
pub(super) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        let status = match f.code {
            exit::USAGE => StatusCode::NOT_FOUND,
            exit::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, f.message)
    }
}

fn store_down(d: &Dashboard, e: volley_core::StoreError) -> ApiError {
    crate::commands::unavailable(&d.settings, e).into()
}

#[derive(serde::Serialize)]
struct Info {
    namespace: String,
    version: &'static str,
    read_only: bool,
}

async fn info(State(d): Shared) -> Json<Info> {
    Json(Info {
        namespace: d.settings.namespace.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        read_only: true,
    })
}

#[derive(serde::Deserialize)]
struct JobsQuery {
    /// Comma-separated states, as `volley jobs --state`.
    state: Option<String>,
}

async fn job_list(State(d): Shared, Query(q): Query<JobsQuery>) -> Result<Response, ApiError> {
    let states = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(jobs::parse_state)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?,
    };
    let views = jobs::job_list(&d.store, &states, now_ms())
        .await
        .map_err(|e| store_down(&d, e))?;
    Ok(Json(views).into_response())
}

async fn job(State(d): Shared, Path(job): Path<String>) -> Result<Response, ApiError> {
    let job = JobId::parse(&job).map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    let view = status::job_view(&d.settings, &d.store, &d.broker, &d.fleet, job).await?;
    Ok(Json(view).into_response())
}

async fn workers(State(d): Shared) -> Result<Response, ApiError> {
    let beats = jobs::worker_list(&d.store, now_ms())
        .await
        .map_err(|e| store_down(&d, e))?;
    Ok(Json(beats).into_response())
}

async fn hosts(State(d): Shared) -> Result<Response, ApiError> {
    let views = crate::commands::hosts::host_views(d.fleet.as_ref())
        .await
        .map_err(|e| store_down(&d, e))?;
    Ok(Json(views.into_values().collect::<Vec<_>>()).into_response())
}
