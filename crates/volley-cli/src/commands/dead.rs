//! `volley dead [--json] [--limit N] [--requeue [--job JOB]]`: the dead-letter queue.

use super::retry::retry_job;
use super::{Connection, broker_failure, job_id, unavailable};
use crate::exit::Failure;
use crate::render::{escape, print_json};
use std::collections::HashSet;
use volley_amqp::DeadLetter;
use volley_core::redrive::RedriveFilter;
use volley_core::{ErrorKind, JobId, JobState, Store};
use volley_redis::RedisStore;

/// Show dead-lettered messages, or send them back to the chunk queue.
#[derive(Debug, clap::Args)]
pub struct DeadArgs {
    /// Move the dead letters back to the chunk queue (each published with a confirm before
    /// it leaves the dead-letter queue).
    #[arg(long)]
    pub requeue: bool,
    /// With --requeue: only this job's chunks.
    #[arg(long, requires = "requeue")]
    pub job: Option<String>,
    /// List at most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// Runs `dead`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: DeadArgs) -> Result<(), Failure> {
    let (settings, store) = args.connection.store()?;
    let ns = settings.namespace.clone();
    let broker = args.connection.broker(&settings, "volley dead");
    let unavailable = |e| broker_failure(&settings, e, "");
    if args.requeue {
        // Chunks whose records the store already settled (poison) are not sent back as they
        // are: their failed records are redriven instead, which replaces their outcomes.
        let listed = broker
            .dead_letters(REQUEUE_SCAN)
            .await
            .map_err(unavailable)?;
        let settled = settled_chunks(&settings, &store, &listed).await?;
        let report = broker
            .requeue_dead(args.job.as_deref(), &|d| {
                d.message_id
                    .as_ref()
                    .is_some_and(|id| settled.contains(id.as_str()))
            })
            .await
            .map_err(unavailable)?;
        let mut jobs: Vec<&str> = report
            .settled
            .iter()
            .filter_map(|d| d.job.as_deref())
            .collect();
        jobs.sort_unstable();
        jobs.dedup();
        let mut retried = Vec::new();
        for job in jobs {
            let id = job_id(job)?;
            let outcome = retry_job(
                &settings,
                &store,
                &broker,
                &id,
                &RedriveFilter::kinds(&[ErrorKind::Poison]),
            )
            .await;
            retried.push(match outcome {
                Ok(r) => Retried {
                    job: job.to_string(),
                    records: Some(r.records),
                    state: Some(r.state),
                    error: None,
                },
                Err(f) => Retried {
                    job: job.to_string(),
                    records: None,
                    state: None,
                    error: Some(f.message),
                },
            });
        }
        if args.json {
            print_json(
                &serde_json::json!({"requeued": report.moved, "settled": report.settled.len(), "retried": retried}),
            )?;
        } else {
            volley_core::outln!(
                "moved {} dead letters back to their jobs' queues",
                report.moved
            );
            for r in &retried {
                match &r.error {
                    Some(e) => volley_core::outln!(
                        "job {}: poison chunks removed; retrying its poison records failed: {e}",
                        escape(&r.job)
                    ),
                    None => volley_core::outln!(
                        "job {}: poison chunks removed; {} poison records sent again (volley retry), job is {}",
                        escape(&r.job),
                        r.records.unwrap_or(0),
                        r.state.map(JobState::as_str).unwrap_or_default()
                    ),
                }
            }
        }
        return Ok(());
    }
    let mut dead = broker.dead_letters(args.limit).await.map_err(unavailable)?;
    let settled = settled_chunks(&settings, &store, &dead).await?;
    for d in &mut dead {
        d.settled = d
            .message_id
            .as_ref()
            .is_some_and(|id| settled.contains(id.as_str()));
    }
    if args.json {
        print_json(&dead)?;
        return Ok(());
    }
    if dead.is_empty() {
        volley_core::outln!("no dead letters in {ns}.dead");
        return Ok(());
    }
    for d in &dead {
        let what = match (&d.job, d.chunk) {
            (Some(job), Some(chunk)) if d.settled => format!(
                "job {} chunk {chunk} ({} records, counted as failed: poison)",
                escape(job),
                d.records.unwrap_or(0)
            ),
            (Some(job), Some(chunk)) => format!(
                "job {} chunk {chunk} ({} records)",
                escape(job),
                d.records.unwrap_or(0)
            ),
            _ => format!("not a chunk: {}", d.preview),
        };
        volley_core::outln!("{:<16} {what}   {} bytes", d.reason, d.bytes);
    }
    volley_core::outln!(
        "{} shown; volley dead --requeue [--job JOB] sends them back",
        dead.len()
    );
    Ok(())
}

/// A job whose settled poison chunks `--requeue` redrove.
#[derive(serde::Serialize)]
struct Retried {
    job: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<JobState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// How many dead letters `--requeue` looks at to find settled chunks.
const REQUEUE_SCAN: usize = 100_000;

/// Message ids (`{job}:{chunk}`) of dead letters whose chunk the store has settled.
async fn settled_chunks(
    settings: &volley_runtime::Settings,
    store: &RedisStore,
    dead: &[DeadLetter],
) -> Result<HashSet<String>, Failure> {
    let mut settled = HashSet::new();
    for d in dead {
        let (Some(job), Some(chunk), Some(id)) = (&d.job, d.chunk, &d.message_id) else {
            continue;
        };
        let Ok(job) = JobId::parse(job) else {
            continue;
        };
        if store
            .is_committed(&job, chunk)
            .await
            .map_err(|e| unavailable(settings, e))?
        {
            settled.insert(id.clone());
        }
    }
    Ok(settled)
}
