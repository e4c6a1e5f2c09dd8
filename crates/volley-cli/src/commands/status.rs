//! `volley status JOB [--json] [--wait]`.

use super::{Connection, job_id, lookup};
use crate::exit::{self, Failure};
use crate::render::{StatusView, print_json};
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
    /// percentage (3: failed, 4: stopped at an input error, 6: cancelled).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 75): seconds (`30`) or a duration (`90s`,
    /// `5m`).
    #[arg(long, value_parser = parse_timeout)]
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
    let broker = args.connection.broker(&settings, "volley status");
    let started = std::time::Instant::now();
    let mut last_missing_check: Option<std::time::Instant> = None;
    loop {
        let status = lookup::job_status(&settings, &store, &job).await?;
        let ended = status.has_ended();
        let mut missing = None;
        if !ended && last_missing_check.is_none_or(|t| t.elapsed() >= MISSING_CHECK_EVERY) {
            last_missing_check = Some(std::time::Instant::now());
            let left = args.timeout.map(|t| t.saturating_sub(started.elapsed()));
            missing = missing_chunks(&store, &broker, &job, left).await;
        }
        if !args.wait || ended || missing.is_some() {
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
                print_json(&view)?;
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
            let code = match view.status.state {
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
                format!("job {job} still {} after the timeout", status.state),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How often `--wait` looks for missing chunks (a broker connection each time).
const MISSING_CHECK_EVERY: Duration = Duration::from_secs(5);

/// `--timeout`: a bare number is seconds.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e}: give seconds (30) or a duration (30s, 5m)")),
    }
}

/// The chunks of a running job that are certainly missing (the check `volley-producer
/// --missing` makes too), or `None`: nothing missing, not certain yet, the job not fully
/// published, the check not done within `within`, or the broker or store unreachable
/// (a view, not a verdict).
async fn missing_chunks(
    store: &volley_redis::RedisStore,
    broker: &volley_amqp::AmqpBroker,
    job: &volley_core::JobId,
    within: Option<Duration>,
) -> Option<Vec<u64>> {
    let check = volley_producer::check_missing(broker, store, job);
    let verdict = match within {
        Some(left) => tokio::time::timeout(left, check).await.ok()?,
        None => check.await,
    };
    match verdict {
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
