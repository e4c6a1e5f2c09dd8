use crate::knobs::Knobs;
use crate::stats::Counters;
use crate::users::user_json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

pub(crate) fn router(counters: Arc<Counters>) -> Router {
    Router::new()
        .route("/users/{id}", get(get_user))
        .route("/users", post(post_user))
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset))
        .with_state(counters)
}

async fn get_user(
    State(counters): State<Arc<Counters>>,
    Path(id): Path<String>,
    Query(knobs): Query<Knobs>,
) -> Response {
    counters.count(&id);
    answer(&id, &knobs, None).await
}

async fn post_user(
    State(counters): State<Arc<Counters>>,
    Query(knobs): Query<Knobs>,
    body: Bytes,
) -> Response {
    let received: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let id = received
        .as_ref()
        .and_then(|v| v.get("id"))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .unwrap_or_default();
    counters.count(&id);
    answer(
        &id,
        &knobs,
        Some(received.unwrap_or(serde_json::Value::Null)),
    )
    .await
}

async fn answer(id: &str, knobs: &Knobs, received: Option<serde_json::Value>) -> Response {
    let delay = knobs.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if knobs.fails() {
        let code = knobs.status.unwrap_or(500);
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(serde_json::json!({"error": "mock failure", "status": code})),
        )
            .into_response();
        if let Some(value) = knobs
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if let Some(size) = knobs.body_bytes {
        return padded(id, size);
    }
    let mut user = user_json(id);
    if let (Some(received), Some(map)) = (received, user.as_object_mut()) {
        map.insert("received".into(), received);
    }
    Json(user).into_response()
}

/// A JSON body of exactly `size` bytes when `size` is large enough for the envelope.
fn padded(id: &str, size: usize) -> Response {
    let head = format!(
        "{{\"id\":{},\"pad\":\"",
        serde_json::Value::String(id.to_string())
    );
    let tail = "\"}";
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut body = String::with_capacity(head.len() + pad + tail.len());
    body.push_str(&head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str(tail);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn stats(State(counters): State<Arc<Counters>>) -> Json<crate::Stats> {
    Json(counters.snapshot())
}

async fn reset(State(counters): State<Arc<Counters>>) -> StatusCode {
    counters.reset();
    StatusCode::NO_CONTENT
}
