//! The pages: one static shell for every page, a script and a style sheet, compiled in.
//! The script draws each page from the JSON API and writes what the fleet stored (ids,
//! error texts, bodies) only as text nodes; the content security policy forbids inline
//! scripts and other origins besides, so a hostile record id cannot run anything.

use super::Dashboard;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

const SHELL: &str = include_str!("assets/shell.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Router<Arc<Dashboard>> {
    Router::new()
        .route("/", get(shell))
        .route("/jobs/{job}", get(shell))
        .route("/workers", get(shell))
        .route("/hosts", get(shell))
        .route("/dead", get(shell))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/assets/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
}

fn headers(content_type: &'static str) -> [(HeaderName, HeaderValue); 5] {
    [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(POLICY),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            // Not no-referrer: under it Chromium sends `Origin: null` with a same-origin form,
            // which the cross-site check must refuse.
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

async fn shell() -> impl IntoResponse {
    (headers("text/html; charset=utf-8"), SHELL)
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (headers(content_type), body)
}
