use crate::knobs::Knobs;
use crate::stats::Counters;
use crate::users::user_json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;

/// The size of each piece of an `endless` body.
const ENDLESS_PIECE: usize = 64 * 1024;

pub(crate) fn router(counters: Arc<Counters>) -> Router {
    Router::new()
        .route("/users/{id}", get(get_user))
        .route("/users", post(post_user))
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset))
        .route("/admin/outage", post(outage_on).delete(outage_off))
        .with_state(counters)
}

async fn get_user(
    State(counters): State<Arc<Counters>>,
    Path(id): Path<String>,
    Query(knobs): Query<Knobs>,
    headers: HeaderMap,
) -> Response {
    let _in_flight = counters.enter();
    let arrived = counters.count(&id);
    let echo = knobs.echo_headers.then(|| echoed(&headers));
    answer(&counters, arrived, &id, &knobs, None, echo).await
}

/// The request's headers as a JSON object (lossy for non-UTF-8 values).
fn echoed(headers: &HeaderMap) -> serde_json::Value {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                serde_json::Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn post_user(
    State(counters): State<Arc<Counters>>,
    Query(knobs): Query<Knobs>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = counters.enter();
    let echo = knobs.echo_headers.then(|| echoed(&headers));
    let received: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let id = received
        .as_ref()
        .and_then(|v| v.get("id"))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .unwrap_or_default();
    let arrived = counters.count(&id);
    answer(
        &counters,
        arrived,
        &id,
        &knobs,
        Some(received.unwrap_or(serde_json::Value::Null)),
        echo,
    )
    .await
}

async fn answer(
    counters: &Counters,
    arrived: Option<u64>,
    id: &str,
    knobs: &Knobs,
    received: Option<serde_json::Value>,
    echo: Option<serde_json::Value>,
) -> Response {
    if let Some(code) = counters.outage() {
        return failure(code, "mock outage");
    }
    if knobs
        .overload_above
        .is_some_and(|most| counters.in_flight() > most)
    {
        counters.failed(arrived);
        let mut response = failure(429, "mock overload");
        if let Some(value) = knobs
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    // Queued requests are in flight too (the API has them), served once a slot frees.
    let _served = match knobs.capacity {
        Some(n) => counters.serve_slot(n.max(1)).await,
        None => None,
    };
    // Counted on arrival, so a request's number does not depend on how long it sleeps.
    let nth = knobs.fail_first.map(|_| counters.nth_for(id));
    let delay = knobs.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if knobs.fails(nth) {
        counters.failed(arrived);
        let mut response = match echo {
            // An API that echoes the request in its error text (a token included).
            Some(echo) => echoed_failure(knobs.failure_status(), echo),
            None => failure(knobs.failure_status(), "mock failure"),
        };
        if let Some(value) = knobs
            .retry_after_value(SystemTime::now())
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if knobs.endless {
        return endless();
    }
    if let Some(size) = knobs.body_bytes {
        return padded(id, size);
    }
    let mut user = user_json(id);
    if let (Some(received), Some(map)) = (received, user.as_object_mut()) {
        map.insert("received".into(), received);
    }
    if let (Some(echo), Some(map)) = (echo, user.as_object_mut()) {
        map.insert("headers".into(), echo);
    }
    Json(user).into_response()
}

/// A failure with a small JSON body and no `Retry-After`.
fn failure(code: u16, error: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(serde_json::json!({"error": error, "status": code})),
    )
        .into_response()
}

/// A failure whose JSON body carries the request's headers beside the error.
fn echoed_failure(code: u16, headers: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": "mock failure", "status": code, "headers": headers});
    (status, Json(body)).into_response()
}

/// A 200 whose chunked body never ends: the same 64 KiB piece, sent as fast as the client
/// reads, until it hangs up.
fn endless() -> Response {
    let piece = Bytes::from(vec![b'x'; ENDLESS_PIECE]);
    let stream = futures_util::stream::repeat(Ok::<_, std::convert::Infallible>(piece));
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response()
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

/// The query of `POST /admin/outage`.
#[derive(Debug, Default, Deserialize)]
struct OutageQuery {
    status: Option<u16>,
}

/// `POST /admin/outage?status=S` (default 503): every user route answers S, without
/// `Retry-After`, until `DELETE /admin/outage`.
async fn outage_on(
    State(counters): State<Arc<Counters>>,
    Query(query): Query<OutageQuery>,
) -> Response {
    let code = query.status.unwrap_or(503);
    if !(100..=599).contains(&code) {
        return (StatusCode::BAD_REQUEST, "status must be 100..=599").into_response();
    }
    counters.set_outage(Some(code));
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /admin/outage`: the user routes answer normally again.
async fn outage_off(State(counters): State<Arc<Counters>>) -> StatusCode {
    counters.set_outage(None);
    StatusCode::NO_CONTENT
}
