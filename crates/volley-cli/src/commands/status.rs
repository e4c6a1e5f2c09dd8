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
    let started = std::time::Instant::now();
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
        if !args.wait || ended {
            let mut view = StatusView::new(status, now_ms());
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
                println!(
                    "{}",
                    serde_json::to_string(&view).map_err(anyhow::Error::from)?
                );
            } else {
                print!("{}", view.text());
            }
            if !args.wait {
                return Ok(());
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
