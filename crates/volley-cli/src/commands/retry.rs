//! `volley retry JOB [--only KINDS]`: send a finished job's failed records again.

use super::{Connection, broker_failure, job_id, lookup, unavailable};
use crate::exit::{self, Failure};
use crate::render::print_json;
use volley_amqp::AmqpBroker;
use volley_core::redrive::{RedriveError, RedriveFilter, RedriveReport, redrive};

use volley_core::time::now_ms;
use volley_core::{JobId, StoreError};
use volley_redis::RedisStore;
use volley_runtime::Settings;

/// Send a finished job's failed records again; their new outcomes replace the old ones.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The job id.
    pub job: String,
    /// Only these failures: error kinds and HTTP statuses, e.g. `status=503,timeout`.
    #[arg(long, value_parser = parse_filter)]
    pub only: Option<RedriveFilter>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

fn parse_filter(text: &str) -> Result<RedriveFilter, String> {
    text.parse()
}

/// Runs `retry`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: RetryArgs) -> Result<(), Failure> {
    let job = job_id(&args.job)?;
    let (settings, store) = args.connection.store()?;
    let broker = args.connection.broker(&settings, "volley retry");
    let filter = args.only.unwrap_or_default();
    let report = retry_job(&settings, &store, &broker, &job, &filter).await?;
    if args.json {
        print_json(&report)?;
    } else if report.resumed_chunks > 0 {
        volley_core::outln!(
            "finished an interrupted retry: republished {} chunks; job {job} is {}",
            report.resumed_chunks,
            report.state
        );
    } else if report.records == 0 {
        volley_core::outln!(
            "nothing to retry: no failed records match; job {job} is {}",
            report.state
        );
    } else {
        volley_core::outln!(
            "re-enqueued {} failed records in {} chunks; job {job} is {}\n  follow it: volley status {job} --wait",
            report.records,
            report.chunks,
            report.state
        );
    }
    Ok(())
}

/// Redrives `job`'s failed records that `filter` selects, in chunks of the job's size.
///
/// # Errors
/// A [`Failure`]: no such job (usage), the job still running (usage), or a server down.
pub(crate) async fn retry_job(
    settings: &Settings,
    store: &RedisStore,
    broker: &AmqpBroker,
    job: &JobId,
    filter: &RedriveFilter,
) -> Result<RedriveReport, Failure> {
    let spec = lookup::job_spec(settings, store, job).await?;
    let chunk_size = usize::try_from(spec.chunking.size).unwrap_or(usize::MAX);
    redrive(store, broker, job, filter, chunk_size, now_ms())
        .await
        .map_err(|e| match e {
            RedriveError::Store(StoreError::Conflict(m)) => Failure::new(exit::USAGE, m),
            RedriveError::Store(e) => unavailable(settings, e),
            RedriveError::Broker(e) => broker_failure(
                settings,
                e,
                &format!("; run volley retry {job} again to finish"),
            ),
            other => Failure::new(exit::INTERNAL, other),
        })
}
