//! `volley verify JOB [--json]`: checks a finished job's accounting from Redis and RabbitMQ.

use super::{Connection, broker_unavailable, job_id, lookup, unavailable};
use crate::exit::{self, Failure};
use crate::render::print_json;
use crate::verify::{self, Left, Outcome, Report, Rows, records_in_chunk};
use std::collections::BTreeSet;
use volley_amqp::AmqpBroker;
use volley_core::{BrokerError, JobId, JobStatus, Store};
use volley_redis::RedisStore;
use volley_runtime::Settings;

/// Check a finished job's accounting: counters, commits, results, kept inputs, queues.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The job id.
    pub job: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// Chunks of results read per store round trip.
const PAGE: u64 = 256;
/// Dead letters looked through at most.
const MOST_DEAD_LETTERS: u32 = 100_000;

/// Runs `verify`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: VerifyArgs) -> Result<(), Failure> {
    let job = job_id(&args.job)?;
    let (settings, store) = args.connection.store()?;
    let status = lookup::job_status(&settings, &store, &job).await?;
    if !status.state.is_terminal() {
        return Err(Failure::new(
            exit::TRY_LATER,
            format!(
                "job {job} is {}: verify checks a job once it has finished",
                status.state
            ),
        ));
    }
    let broker = args.connection.broker(&settings, "volley verify");
    let ledger = store
        .ledger(&job)
        .await
        .map_err(|e| unavailable(&settings, e))?;
    let expected_chunks = status.total_chunks.unwrap_or(0) + status.redrive_chunks;
    let unmarked = store
        .uncommitted_chunks(&job, expected_chunks)
        .await
        .map_err(|e| unavailable(&settings, e))?;
    let rows = read_rows(&settings, &store, &job, &status, ledger.chunk_size).await?;
    let kept = kept_inputs(&settings, &store, &job).await?;
    let topology = broker.topology();
    let mut checks = vec![
        verify::counters(&status),
        verify::chunks(&status, &ledger, &unmarked),
        rows.check(&status, ledger.result_chunks),
    ];
    checks.push(verify::failed_inputs(&rows, &kept, &status));
    let dead = left_in_dead_letters(&broker, &job)
        .await
        .map_err(|e| broker_unavailable(&settings, e))?;
    checks.push(verify::queue("dead letters", &topology.dead, dead));
    let queued = left_in_chunk_queue(&broker, &job)
        .await
        .map_err(|e| broker_unavailable(&settings, e))?;
    checks.push(verify::queue(
        "chunk queue",
        &topology.job_queue(&job),
        queued,
    ));
    let report = Report::new(job.to_string(), checks);
    if args.json {
        print_json(&report)?;
    } else {
        volley_core::out!("{}", report.text());
    }
    match report.outcome() {
        Outcome::Pass => Ok(()),
        Outcome::Fail => Err(Failure::new(
            exit::VERIFY_FAILED,
            format!("job {job} does not add up"),
        )),
        Outcome::Unsure => Err(Failure::new(
            exit::TRY_LATER,
            format!("job {job}: some checks cannot be told now; try again later"),
        )),
    }
}

/// Reads every chunk's stored rows, a page at a time.
async fn read_rows(
    settings: &Settings,
    store: &RedisStore,
    job: &JobId,
    status: &JobStatus,
    chunk_size: u64,
) -> Result<Rows, Failure> {
    let total_chunks = status.total_chunks.unwrap_or(0);
    let total = status.total.unwrap_or(0);
    let mut rows = Rows::default();
    let mut from = 0;
    while from < total_chunks {
        let to = (from + PAGE).min(total_chunks);
        let page = store
            .chunk_results(job, from..to)
            .await
            .map_err(|e| unavailable(settings, e))?;
        for (chunk, stored) in (from..to).zip(page) {
            let expected = records_in_chunk(chunk, chunk_size, total);
            rows.add_chunk(chunk, stored.as_deref(), expected);
        }
        from = to;
    }
    Ok(rows)
}

/// (chunk, position) of every kept failed input.
async fn kept_inputs(
    settings: &Settings,
    store: &RedisStore,
    job: &JobId,
) -> Result<BTreeSet<(u64, u32)>, Failure> {
    let mut kept = BTreeSet::new();
    let mut cursor = 0;
    loop {
        let (next, page) = store
            .failed_inputs(job, cursor)
            .await
            .map_err(|e| unavailable(settings, e))?;
        kept.extend(page.into_iter().map(|f| (f.chunk, f.pos)));
        if next == 0 {
            return Ok(kept);
        }
        cursor = next;
    }
}

/// The job's chunks in the dead-letter queue, listed without consuming them.
async fn left_in_dead_letters(broker: &AmqpBroker, job: &JobId) -> Result<Left, BrokerError> {
    let counts = broker.queue_counts(&[]).await?;
    if counts.dead == 0 {
        return Ok(Left::Nothing);
    }
    if counts.dead > MOST_DEAD_LETTERS {
        return Ok(Left::Unknown(format!(
            "{} dead letters, more than verify looks through ({MOST_DEAD_LETTERS})",
            counts.dead
        )));
    }
    let letters = broker.dead_letters(counts.dead as usize).await?;
    let chunks: Vec<u64> = letters
        .iter()
        .filter(|d| d.job.as_deref() == Some(job.as_str()))
        .filter_map(|d| d.chunk)
        .collect();
    Ok(if chunks.is_empty() {
        Left::Nothing
    } else {
        Left::Chunks(chunks)
    })
}

/// What the job's own chunk queue holds, ready (a queue gone, as it is once the job ended
/// and its queue was deleted, holds nothing). Chunks delivered to a worker are not ready: a
/// finished job has none that count, since a redelivered chunk of it is acknowledged
/// without calls.
async fn left_in_chunk_queue(broker: &AmqpBroker, job: &JobId) -> Result<Left, BrokerError> {
    let counts = broker.queue_counts(std::slice::from_ref(job)).await?;
    Ok(if counts.chunks_ready == 0 {
        Left::Nothing
    } else {
        Left::Unknown(format!(
            "{} chunks are still queued for the job: run verify again once workers have settled them",
            counts.chunks_ready
        ))
    })
}
