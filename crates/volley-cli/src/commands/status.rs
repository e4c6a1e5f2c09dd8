//! `volley status JOB [--json] [--wait] [--watch]`.

use super::{Connection, job_id, lookup};
use crate::exit::{self, Failure};
use crate::render::{StatusView, print_json};
use crate::watch::Screen;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use volley_core::time::now_ms;
use volley_core::{JobId, JobSpec, JobState, JobStatus, Store, WorkerPhase};
use volley_redis::{RedisFleet, RedisStore};
use volley_runtime::Settings;

/// Show a job's progress.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The job id (as printed by volley-producer).
    pub job: String,
    /// Print one JSON object (with --watch: one per refresh, a line each).
    #[arg(long)]
    pub json: bool,
    /// Block until the job ends; exit 0 only if it completed within its tolerated failure
    /// percentage (3: failed, 4: stopped at an input error, 6: cancelled). On a terminal it
    /// shows the job live, as --watch.
    #[arg(long)]
    pub wait: bool,
    /// Show the job live until it ends: redrawn every second on a terminal, a plain line
    /// every 5 s otherwise.
    #[arg(long)]
    pub watch: bool,
    /// Give up waiting after this long (exit 75): seconds (`30`) or a duration (`90s`,
    /// `5m`).
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// How often a live view is refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// How often `--wait` without a live view reads the job.
const POLL: Duration = Duration::from_millis(500);

/// Runs `status`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: StatusArgs) -> Result<(), Failure> {
    use std::io::IsTerminal as _;
    let job = job_id(&args.job)?;
    let (settings, store) = args.connection.store()?;
    let fleet = super::hosts::open_fleet(&args.connection)?;
    let host = job_host(&store, &job).await;
    let sources = Sources {
        broker: Arc::new(args.connection.broker(&settings, "volley status")),
        settings,
        store,
        fleet,
        host,
        job,
    };
    let live = args.watch || (args.wait && !args.json && std::io::stdout().is_terminal());
    if !args.wait && !live {
        let status = sources.status().await?;
        let missing = if status.has_ended() {
            None
        } else {
            missing_chunks(sources.clone(), status.clone()).await
        };
        let view = sources.view(status, missing).await;
        return if args.json {
            print_json(&view)
        } else {
            volley_core::out!("{}", view.text());
            Ok(())
        };
    }
    let mut screen = live.then(|| Screen::for_stdout(args.json));
    let started = Instant::now();
    let mut missing = MissingWatch::default();
    loop {
        let status = sources.status().await?;
        let ended = status.has_ended();
        let found = if ended {
            None
        } else {
            missing
                .poll(
                    &sources,
                    &status,
                    args.timeout.map(|t| t.saturating_sub(started.elapsed())),
                )
                .await
        };
        let stop = ended || found.is_some();
        if stop || screen.is_some() {
            let view = sources.view(status.clone(), found).await;
            match (&mut screen, stop) {
                (Some(screen), false) => screen.show(&view)?,
                (Some(screen), true) => screen.finish(&view)?,
                (None, _) if args.json => print_json(&view)?,
                (None, _) => volley_core::out!("{}", view.text()),
            }
        }
        if stop {
            if !ended {
                return Err(Failure::new(
                    exit::JOB_STALLED,
                    format!("job {} cannot finish: chunks are missing", sources.job),
                ));
            }
            if !args.wait {
                return Ok(());
            }
            let code = match status.state {
                JobState::Cancelled => exit::JOB_CANCELLED,
                state => exit::for_state(state),
            };
            return if code == exit::OK {
                Ok(())
            } else {
                Err(Failure::new(code, ""))
            };
        }
        if args.timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err(Failure::new(
                exit::TRY_LATER,
                format!(
                    "job {} still {} after the timeout",
                    sources.job, status.state
                ),
            ));
        }
        tokio::time::sleep(if screen.is_some() { REFRESH } else { POLL }).await;
    }
}

/// A job's status with the live workers and its host's breaker, as `volley status --json`
/// shows it without the missing-chunk check (which needs a broker connection and a settling
/// delay): what the dashboard serves.
///
/// # Errors
/// A [`Failure`]: 2 for no such job, 69 when Redis cannot be read.
pub(crate) async fn job_view(
    settings: &Settings,
    store: &RedisStore,
    broker: &Arc<volley_amqp::AmqpBroker>,
    fleet: &Arc<RedisFleet>,
    job: JobId,
) -> Result<StatusView, Failure> {
    let sources = Sources {
        host: job_host(store, &job).await,
        settings: settings.clone(),
        store: store.clone(),
        broker: broker.clone(),
        fleet: fleet.clone(),
        job,
    };
    let status = sources.status().await?;
    Ok(sources.view(status, None).await)
}

/// The job's target host, the key the fleet's breaker and limits are kept under.
async fn job_host(store: &RedisStore, job: &JobId) -> Option<String> {
    let text = store.job_spec(job).await.ok()??;
    let spec = JobSpec::from_toml(&text).ok()?;
    let template = volley_core::template::UrlTemplate::compile(&spec.request.url).ok()?;
    let url = url::Url::parse(template.origin()).ok()?;
    Some(volley_core::governor::host_key(&url))
}

/// What a view is read from.
#[derive(Clone)]
struct Sources {
    settings: Settings,
    store: RedisStore,
    broker: Arc<volley_amqp::AmqpBroker>,
    fleet: Arc<RedisFleet>,
    host: Option<String>,
    job: JobId,
}

impl Sources {
    async fn status(&self) -> Result<JobStatus, Failure> {
        lookup::job_status(&self.settings, &self.store, &self.job).await
    }

    /// The status with the live workers and the host's breaker: views, so a Redis hiccup
    /// reading them leaves them out rather than failing `status`.
    async fn view(&self, status: JobStatus, missing: Option<Vec<u64>>) -> StatusView {
        let now = now_ms();
        let mut view = StatusView::new(status, now);
        view.missing_chunks = missing;
        if let Ok(beats) = self
            .store
            .workers(now, volley_redis::WORKER_BEAT_KEPT_SECS * 1000)
            .await
        {
            let live = beats.iter().filter(|b| {
                matches!(
                    b.phase_at(now),
                    WorkerPhase::Running | WorkerPhase::Draining
                )
            });
            view.live_workers = Some(live.count());
        }
        if let Some(host) = &self.host {
            let views = super::hosts::host_views(self.fleet.as_ref()).await.ok();
            view.host = Some(views.and_then(|mut v| v.remove(host)).unwrap_or_else(|| {
                super::hosts::HostView {
                    host: host.clone(),
                    breaker: "closed".into(),
                    ..Default::default()
                }
            }));
        }
        view
    }
}

/// How often a live view or `--wait` looks for missing chunks (a broker connection each
/// time).
const MISSING_CHECK_EVERY: Duration = Duration::from_secs(5);
/// A job that committed this recently is moving: the missing-chunk check would only find
/// that out after a broker connection and a settling delay (it answers "unsure" when the job
/// moves), so it is not made.
const MOVING_WITHIN_MS: u64 = 5_000;

/// The missing-chunk check of a live view, run beside it so a slow broker does not hold up
/// the refreshes.
#[derive(Default)]
struct MissingWatch {
    task: Option<JoinHandle<Option<Vec<u64>>>>,
    last: Option<Instant>,
}

impl MissingWatch {
    /// Chunks found missing by a check that has finished; starts the next check when due.
    async fn poll(
        &mut self,
        sources: &Sources,
        status: &JobStatus,
        within: Option<Duration>,
    ) -> Option<Vec<u64>> {
        if let Some(task) = self.task.take_if(|t| t.is_finished())
            && let Ok(Some(found)) = task.await
        {
            return Some(found);
        }
        if self.task.is_none() && self.last.is_none_or(|t| t.elapsed() >= MISSING_CHECK_EVERY) {
            self.last = Some(Instant::now());
            let check = missing_chunks(sources.clone(), status.clone());
            self.task = Some(tokio::spawn(async move {
                match within {
                    Some(left) => tokio::time::timeout(left, check).await.ok()?,
                    None => check.await,
                }
            }));
        }
        None
    }
}

/// `--timeout`: a bare number is seconds.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e}: give seconds (30) or a duration (30s, 5m)")),
    }
}

/// The chunks of a running job that are certainly missing (the check `volley-producer
/// --missing` makes too), or `None`: nothing missing, not certain yet, the job moving or not
/// fully published, or the broker or store unreachable (a view, not a verdict).
async fn missing_chunks(sources: Sources, status: JobStatus) -> Option<Vec<u64>> {
    let moving = status
        .last_commit_ms
        .is_some_and(|at| now_ms().saturating_sub(at) < MOVING_WITHIN_MS);
    if moving || status.state != JobState::Running || status.total_chunks.is_none() {
        return None;
    }
    let verdict = volley_producer::check_missing(&sources.broker, &sources.store, &sources.job);
    match verdict.await {
        Ok(volley_producer::Verdict::Missing(mut chunks)) => {
            chunks.truncate(1000);
            Some(chunks)
        }
        Ok(_) | Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_seconds_or_a_duration() {
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_timeout("soon").is_err());
    }
}
