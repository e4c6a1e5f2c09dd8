//! The worker's HTTP endpoints (`--http-addr`): `/livez` (and its old name `/health`),
//! `/readyz` and `/metrics`, all read from [`WorkerState`].

use crate::readiness::STAMP_EVERY;
use crate::state::WorkerState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use volley_core::time::now_ms;

/// Serves the probes on `listener` until `stop`, and moves the liveness stamp meanwhile.
/// Started before the worker waits for its services (a liveness probe must not restart a
/// worker that only waits), stopped only when the process is done, so that `/readyz`
/// answers `draining` while held chunks finish.
pub async fn serve_probes(
    listener: tokio::net::TcpListener,
    state: Arc<WorkerState>,
    stop: CancellationToken,
) {
    tokio::spawn(stamp_liveness(state.clone(), stop.clone()));
    let app = axum::Router::new()
        .route("/livez", get(livez))
        .route("/health", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

/// A task on the runtime like any other: when it cannot run, the stamp goes stale.
async fn stamp_liveness(state: Arc<WorkerState>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(STAMP_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => state.liveness.stamp(),
        }
    }
}

fn verdict(check: Result<(), String>) -> (StatusCode, String) {
    match check {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

async fn livez(State(state): State<Arc<WorkerState>>) -> (StatusCode, String) {
    verdict(state.liveness.check())
}

async fn readyz(State(state): State<Arc<WorkerState>>) -> (StatusCode, String) {
    verdict(state.readiness.check())
}

async fn metrics(State(state): State<Arc<WorkerState>>) -> impl IntoResponse {
    let metrics = volley_core::metrics::global();
    if let Some(governor) = state.governor() {
        metrics.set_breakers(governor.breaker_phases(), now_ms());
    }
    (
        [(header::CONTENT_TYPE, volley_core::metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
}
