//! `volley status JOB [--json] [--wait]`.

use super::{Connection, job_id, unavailable};
use crate::exit::{self, Failure};
use crate::render::StatusView;
use std::time::Duration;
use volley_core::time::now_ms;
use volley_core::{JobSpec, JobState, Store};

/// Show a job's progress.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The job id (as printed by volley-producer).
    pub job: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Block until the job ends; exit 0 only if it completed within its tolerated failure
    /// percentage (3: failed, 4: stopped at an input error).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 1).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// Runs `status`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: StatusArgs) -> Result<(), Failure> {
    let job = job_id(&args.job)?;
    let (settings, store) = args.connection.store()?;
    let fleet = super::hosts::open_fleet(&args.connection)?;
    let host = match store.job_spec(&job).await {
        Ok(Some(text)) => JobSpec::from_toml(&text)
            .ok()
            .and_then(|spec| volley_core::template::UrlTemplate::compile(&spec.request.url).ok())
            .and_then(|t| url::Url::parse(t.origin()).ok())
            .map(|u| volley_core::governor::host_key(&u)),
        _ => None,
    };
    let broker = args.connection.broker(&settings, "volley status")?;
    let started = std::time::Instant::now();
    // --wait: when chunks were first seen missing (they must stay missing across a worker
    // heartbeat before the wait gives up).
    let mut missing_since: Option<std::time::Instant> = None;
    let mut last_missing_check: Option<std::time::Instant> = None;
    loop {
        let status = store
            .job_status(&job)
            .await
            .map_err(|e| unavailable(&settings, e))?
            .ok_or_else(|| {
                Failure::new(
                    exit::USAGE,
                    format!("no job {job} in namespace {}", settings.namespace),
                )
            })?;
        let state = JobState::parse(&status.state);
        let stalled =
            state == Some(JobState::InputError) && status.chunks_done >= status.published_chunks;
        let ended = state.is_some_and(JobState::is_terminal) || stalled;
        let mut missing = None;
        if !ended && last_missing_check.is_none_or(|t| t.elapsed() >= MISSING_CHECK_EVERY) {
            last_missing_check = Some(std::time::Instant::now());
            missing = missing_chunks(&store, &broker, &status).await;
            missing_since = match (&missing, missing_since) {
                (Some(_), Some(since)) => Some(since),
                (Some(_), None) => Some(std::time::Instant::now()),
                (None, _) => None,
            };
        }
        let gave_up = missing_since.is_some_and(|t| t.elapsed() >= MISSING_CONFIRM);
        if !args.wait || ended || (gave_up && missing.is_some()) {
            let mut view = StatusView::new(status, now_ms());
            view.missing_chunks = missing;
            if let Some(host) = &host {
                // The breaker's state is a view: a Redis hiccup here must not fail status.
                let views = super::hosts::host_views(fleet.as_ref()).await.ok();
                view.host = Some(views.and_then(|mut v| v.remove(host)).unwrap_or_else(|| {
                    super::hosts::HostView {
                        host: host.clone(),
                        breaker: "closed".into(),
                        ..Default::default()
                    }
                }));
            }
            if args.json {
                volley_core::outln!(
                    "{}",
                    serde_json::to_string(&view).map_err(anyhow::Error::from)?
                );
            } else {
                volley_core::out!("{}", view.text());
            }
            if !args.wait {
                return Ok(());
            }
            if !ended {
                return Err(Failure::new(
                    exit::JOB_STALLED,
                    format!("job {job} cannot finish: chunks are missing"),
                ));
            }
            let code = exit::for_state(&view.status.state);
            return if code == exit::OK {
                Ok(())
            } else {
                Err(Failure::new(code, ""))
            };
        }
        if args.timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err(Failure::new(
                exit::INTERNAL,
                format!("job {job} still {} after the timeout", status.state),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How often `--wait` looks for missing chunks (a broker connection each time).
const MISSING_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long chunks must stay missing before `--wait` gives up: longer than a worker
/// heartbeat, so a chunk taken just after a worker's last beat is not taken for lost.
const MISSING_CONFIRM: Duration = Duration::from_secs(12);

/// A running, fully published job's chunks that nothing will ever commit: none is ready in
/// the queue, no live worker holds a chunk, and the store has no outcome for them. `None`
/// when any of that cannot be told (the broker or store is unreachable).
async fn missing_chunks(
    store: &volley_redis::RedisStore,
    broker: &volley_amqp::AmqpBroker,
    status: &volley_core::JobStatus,
) -> Option<Vec<u64>> {
    let total = status.total_chunks?;
    if JobState::parse(&status.state) != Some(JobState::Running) || status.chunks_done >= total {
        return None;
    }
    // A view, not a verdict: a broker that does not answer quickly leaves it out.
    let counts = tokio::time::timeout(Duration::from_secs(2), broker.queue_counts())
        .await
        .ok()?
        .ok()?;
    if counts.chunks_ready > 0 {
        return None;
    }
    let workers = store.workers(now_ms(), 30_000).await.ok()?;
    if workers.iter().any(|w| w.chunks_held > 0) {
        return None;
    }
    let job = volley_core::JobId::parse(&status.job).ok()?;
    let mut missing = store.uncommitted_chunks(&job, total).await.ok()?;
    missing.truncate(1000);
    (!missing.is_empty()).then_some(missing)
}
