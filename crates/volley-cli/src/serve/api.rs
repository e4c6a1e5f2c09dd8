//! The JSON API under `/api/`: the same objects as the CLI's `--json` (`volley jobs`,
//! `status`, `workers`, `hosts`), so a script can move between the two.

use super::Dashboard;
use super::auth;
use crate::commands::{control, jobs, status};
use crate::exit::{self, Failure};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use volley_core::time::now_ms;
use volley_core::{ControlChange, JobId};

type Shared = State<Arc<Dashboard>>;

pub(super) fn routes() -> Router<Arc<Dashboard>> {
    Router::new()
        .route("/api/info", get(info))
        .route("/api/jobs", get(job_list))
        .route("/api/jobs/{job}", get(job))
        .route("/api/jobs/{job}/series", get(series))
        .route("/api/jobs/{job}/spec", get(spec))
        .route("/api/workers", get(workers))
        .route("/api/hosts", get(hosts))
        .route("/api/hosts/limit", post(host_limit))
        .route("/api/dead", get(dead_letters))
        .route("/api/jobs/{job}/limit", post(limit))
        .route("/api/jobs/{job}/retry", post(retry))
        .route("/api/jobs/{job}/{action}", post(control_action))
        .route("/api/pending", get(super::fleet::pending))
        .route("/metrics", get(super::fleet::metrics))
        .route("/login", post(login))
        .route("/logout", post(logout))
}

/// An error as the API says it: `{"error": "..."}` with a status that fits.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.0
    }
}

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

pub(super) fn store_down(d: &Dashboard, e: volley_core::StoreError) -> ApiError {
    crate::commands::unavailable(&d.settings, e).into()
}

#[derive(serde::Serialize)]
struct Info {
    namespace: String,
    version: &'static str,
    /// No token is configured: nothing can be changed from here.
    read_only: bool,
    /// This request carries the token or a live session.
    signed_in: bool,
}

async fn info(State(d): Shared, headers: HeaderMap) -> Json<Info> {
    Json(Info {
        namespace: d.settings.namespace.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        read_only: d.access.read_only(),
        signed_in: d.access.who(&headers, now_ms()).is_some(),
    })
}

/// What an action answers: the job's controls after it.
#[derive(serde::Serialize)]
struct Acted {
    job: String,
    action: &'static str,
    controls: volley_core::JobControls,
}

async fn act(
    d: &Dashboard,
    headers: &HeaderMap,
    job: &str,
    change: ControlChange,
) -> Result<Response, ApiError> {
    let who = d.access.authorize(headers, now_ms())?;
    let job = JobId::parse(job).map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    let controls = control::control(&d.settings, &d.store, d.fleet.as_ref(), &job, change)
        .await
        .map_err(|f| match f.code {
            // An ended job or an unknown one: the request cannot apply.
            exit::USAGE if f.message.contains("has ended") => {
                ApiError(StatusCode::CONFLICT, f.message)
            }
            _ => f.into(),
        })?;
    let action = change.as_str();
    // Who did what, for the operator's log (never the token).
    volley_core::errln!(
        "volley serve: {action} job {job} ({}; {})",
        control::describe_limits(&controls),
        who.as_str()
    );
    Ok(Json(Acted {
        job: job.to_string(),
        action,
        controls,
    })
    .into_response())
}

/// `POST /api/jobs/JOB/cancel`, `/pause` or `/resume`.
async fn control_action(
    State(d): Shared,
    Path((job, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let change = match action.as_str() {
        "cancel" => ControlChange::Cancel,
        "pause" => ControlChange::Pause,
        "resume" => ControlChange::Resume,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no action '{other}': cancel, pause, resume or limit"),
            ));
        }
    };
    act(&d, &headers, &job, change).await
}

#[derive(serde::Deserialize)]
struct LimitBody {
    rate: Option<f64>,
    concurrency: Option<u32>,
    #[serde(default)]
    clear: bool,
}

async fn limit(
    State(d): Shared,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Authorized before the body is looked at: a refused request learns nothing more.
    d.access.authorize(&headers, now_ms())?;
    let body: LimitBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("a limit is {{\"rate\": R, \"concurrency\": N}} or {{\"clear\": true}}: {e}"),
        )
    })?;
    let change = control::limit_values(body.rate, body.concurrency, body.clear)
        .map_err(|f| ApiError(StatusCode::BAD_REQUEST, f.message))?;
    act(&d, &headers, &job, change).await
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// The login form's POST: the session cookie when the token is right, then back to the page.
async fn login(
    State(d): Shared,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Result<Response, ApiError> {
    auth::same_origin(&headers)?;
    if d.access.read_only() || !d.access.is_token(&form.token) {
        volley_core::errln!("volley serve: a sign-in with a wrong token was refused");
        return Ok((
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/?signin=failed".to_string())],
        )
            .into_response());
    }
    let value = d.access.session(now_ms()).unwrap_or_default();
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200",
        auth::COOKIE
    );
    volley_core::errln!("volley serve: signed in (session)");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response())
}

async fn logout() -> Response {
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::COOKIE
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response()
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

/// A job's throughput over its life: records finished (and failed) per minute since it was
/// registered, and per second over the last two minutes, kept by the workers' commits
/// (bounded per job, expiring with it).
#[derive(serde::Serialize)]
struct Series {
    job: String,
    created_ms: u64,
    /// `[minute start (ms since the epoch), done, failed]`, minutes without commits left out.
    minutes: Vec<[u64; 3]>,
    /// `[second (ms since the epoch), done, failed]`.
    seconds: Vec<[u64; 3]>,
}

async fn series(State(d): Shared, Path(job): Path<String>) -> Result<Response, ApiError> {
    use volley_core::Store as _;
    let job = JobId::parse(&job).map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    let status = crate::commands::lookup::job_status(&d.settings, &d.store, &job).await?;
    let minutes = d
        .store
        .job_minutes(&job)
        .await
        .map_err(|e| store_down(&d, e))?;
    Ok(Json(Series {
        job: job.to_string(),
        created_ms: status.created_ms,
        minutes: minutes
            .into_iter()
            .map(|(m, f)| [status.created_ms + m * 60_000, f.done, f.failed])
            .collect(),
        seconds: status
            .recent
            .seconds
            .iter()
            .map(|(s, f)| [s * 1000, f.done, f.failed])
            .collect(),
    })
    .into_response())
}

/// The job's spec as it was submitted: secrets stay `${env:…}` references (the spec never
/// holds their values), and a literal value under a name that reads like a secret is cut.
#[derive(serde::Serialize)]
struct Spec {
    job: String,
    spec: String,
}

async fn spec(State(d): Shared, Path(job): Path<String>) -> Result<Response, ApiError> {
    use volley_core::Store as _;
    let job = JobId::parse(&job).map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    let text = d
        .store
        .job_spec(&job)
        .await
        .map_err(|e| store_down(&d, e))?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no job {job} in namespace {}", d.settings.namespace),
            )
        })?;
    Ok(Json(Spec {
        job: job.to_string(),
        spec: super::redact::secrets_cut(&text),
    })
    .into_response())
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

#[derive(serde::Deserialize, Default)]
struct RetryBody {
    /// Only these failures, as `volley retry --only` takes them (`status=503,timeout`);
    /// every failed (and cancelled) record when absent.
    only: Option<String>,
}

/// `POST /api/jobs/JOB/retry`: sends the ended job's failed records again, as `volley
/// retry` does (their new outcomes replace the old ones).
async fn retry(
    State(d): Shared,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let who = d.access.authorize(&headers, now_ms())?;
    let job = JobId::parse(&job).map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    let body: RetryBody = if body.is_empty() {
        RetryBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("a retry is {{}} or {{\"only\": \"status=503,timeout\"}}: {e}"),
            )
        })?
    };
    let filter: volley_core::redrive::RedriveFilter =
        match body.only.as_deref().filter(|o| !o.is_empty()) {
            None => Default::default(),
            Some(text) => text
                .parse()
                .map_err(|e: String| ApiError(StatusCode::BAD_REQUEST, e))?,
        };
    let report = crate::commands::retry::retry_job(&d.settings, &d.store, &d.broker, &job, &filter)
        .await
        .map_err(|f| match f.code {
            exit::USAGE => ApiError(StatusCode::CONFLICT, f.message),
            _ => f.into(),
        })?;
    volley_core::errln!(
        "volley serve: retry job {job}: {} records in {} chunks ({})",
        report.records,
        report.chunks,
        who.as_str()
    );
    Ok(Json(report).into_response())
}

#[derive(serde::Deserialize)]
struct HostLimitBody {
    /// The host, as a URL (`https://api.example.com`).
    host: String,
    /// Requests per second across the fleet; absent (or `null`) removes the limit.
    rate: Option<f64>,
    /// Requests allowed at once above the rate (default: rate/10, at least 1).
    burst: Option<u32>,
}

/// `POST /api/hosts/limit`: sets or removes a host's fleet-wide limit, as `volley hosts
/// limit` and `volley hosts unlimit` do.
async fn host_limit(
    State(d): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    use volley_core::governor::HostLimit;
    let who = d.access.authorize(&headers, now_ms())?;
    let body: HostLimitBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("a host limit is {{\"host\": URL, \"rate\": R, \"burst\": B}}, or without rate to remove it: {e}"),
        )
    })?;
    let host = crate::commands::hosts::parse_host(&body.host)
        .map_err(|f| ApiError(StatusCode::BAD_REQUEST, f.message))?;
    let limit = match body.rate {
        None => None,
        Some(rate) if rate.is_finite() && rate > 0.0 => Some(HostLimit {
            rate,
            burst: body
                .burst
                .unwrap_or_else(|| (rate / 10.0).ceil().max(1.0) as u32),
        }),
        Some(_) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "rate must be a positive number".into(),
            ));
        }
    };
    d.fleet
        .set_host_limit(&host, limit)
        .await
        .map_err(|e| store_down(&d, e))?;
    let said = limit.map_or_else(
        || "removed".to_string(),
        |l| format!("{} req/s (burst {})", l.rate, l.burst),
    );
    volley_core::errln!(
        "volley serve: host {host} fleet limit {said} ({})",
        who.as_str()
    );
    Ok(Json(serde_json::json!({ "host": host, "limit": limit })).into_response())
}

#[derive(serde::Deserialize)]
struct DeadQuery {
    limit: Option<usize>,
}

/// `GET /api/dead[?limit=N]`: the dead-letter queue as `volley dead --json` lists it (read
/// without consuming; at most 100, 20 by default). Sending them back stays `volley dead
/// --requeue`, which also redrives settled poison chunks.
async fn dead_letters(State(d): Shared, Query(q): Query<DeadQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let letters = d
        .broker
        .dead_letters(limit)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(letters).into_response())
}
