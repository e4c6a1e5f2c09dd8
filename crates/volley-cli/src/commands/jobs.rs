//! `volley jobs` and `volley workers`.

use super::{Connection, unavailable};
use crate::exit::Failure;
use crate::render::{StatusView, escape, print_json};
use volley_core::time::now_ms;
use volley_core::{JobState, Store, WorkerPhase};

/// List jobs, newest first.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// Only jobs in these states (comma-separated: `running,publishing`).
    #[arg(long, value_delimiter = ',', value_parser = parse_state)]
    pub state: Vec<JobState>,
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// A state name as `--state` takes it.
pub(crate) fn parse_state(text: &str) -> Result<JobState, String> {
    JobState::parse(text.trim()).ok_or_else(|| {
        let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state '{text}'; one of {}", names.join(", "))
    })
}

/// Runs `jobs`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: JobsArgs) -> Result<(), Failure> {
    let (settings, store) = args.connection.store()?;
    let views = job_list(&store, &args.state, now_ms())
        .await
        .map_err(|e| unavailable(&settings, e))?;
    if args.json {
        print_json(&views)?;
        return Ok(());
    }
    if views.is_empty() {
        let which = if args.state.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = args.state.iter().map(|s| s.as_str()).collect();
            format!(" {}", names.join(" or "))
        };
        volley_core::outln!("no{which} jobs in namespace {}", settings.namespace);
        return Ok(());
    }
    volley_core::outln!(
        "{:<44} {:<24} {:>10} {:>10} {:>7} {:>8} {:>9}  {}",
        "JOB",
        "STATE",
        "DONE",
        "TOTAL",
        "%",
        "FAILED",
        "RATE/S",
        "EXPIRES"
    );
    for v in views {
        let s = &v.status;
        let total = s.total.map_or_else(|| "?".into(), |t| t.to_string());
        let percent = v
            .percent()
            .map_or_else(|| "?".into(), |p| format!("{p:.1}"));
        // Running: the last minute's pace; ended: the whole job's.
        let rate = if v.terminal { v.rate } else { v.rate_1m };
        let expires = v.expires_ms.map_or_else(
            || {
                if v.terminal {
                    "never".into()
                } else {
                    "-".into()
                }
            },
            crate::render::expiry,
        );
        volley_core::outln!(
            "{:<44} {:<24} {:>10} {:>10} {:>7} {:>8} {:>9.1}  {}",
            escape(&s.job),
            s.state,
            s.done,
            total,
            percent,
            s.failed,
            rate,
            expires
        );
    }
    Ok(())
}

/// List workers: running, draining, and for a while those that exited or died.
#[derive(Debug, clap::Args)]
pub struct WorkersArgs {
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// Runs `workers`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn workers(args: WorkersArgs) -> Result<(), Failure> {
    let (settings, store) = args.connection.store()?;
    let now = now_ms();
    let beats = worker_list(&store, now)
        .await
        .map_err(|e| unavailable(&settings, e))?;
    if args.json {
        print_json(&beats)?;
        return Ok(());
    }
    volley_core::outln!(
        "{:<40} {:<9} {:>10} {:>12} {:>8} {:>12} {:>8}",
        "WORKER",
        "STATE",
        "IN FLIGHT",
        "RECORDS HELD",
        "CHUNKS",
        "DONE",
        "SEEN"
    );
    for b in beats {
        let ago = now.saturating_sub(b.at_ms) / 1000;
        volley_core::outln!(
            "{:<40} {:<9} {:>10} {:>12} {:>8} {:>12} {:>7}s",
            escape(&b.id),
            b.state.as_str(),
            b.in_flight,
            b.records_held,
            b.chunks_held,
            b.records_done,
            ago
        );
    }
    Ok(())
}

/// The namespace's workers, live ones first, then the most recently seen, each with the
/// state a reader concludes at `now` (a worker whose beats stopped without an exit is
/// dead, not running).
///
/// # Errors
/// A store error.
pub(crate) async fn worker_list(
    store: &volley_redis::RedisStore,
    now: u64,
) -> Result<Vec<volley_core::WorkerBeat>, volley_core::StoreError> {
    let mut beats = store
        .workers(now, volley_redis::WORKER_BEAT_KEPT_SECS * 1000)
        .await?;
    for beat in &mut beats {
        beat.state = beat.phase_at(now);
    }
    beats.sort_by_key(|b| (!is_live(b.state), std::cmp::Reverse(b.at_ms)));
    Ok(beats)
}

/// The namespace's jobs, newest first, in `states` (all when empty).
///
/// # Errors
/// A store error.
pub(crate) async fn job_list(
    store: &volley_redis::RedisStore,
    states: &[JobState],
    now: u64,
) -> Result<Vec<StatusView>, volley_core::StoreError> {
    Ok(store
        .list_jobs()
        .await?
        .into_iter()
        .filter(|s| states.is_empty() || states.contains(&s.state))
        .map(|s| StatusView::new(s, now))
        .collect())
}

fn is_live(phase: WorkerPhase) -> bool {
    matches!(phase, WorkerPhase::Running | WorkerPhase::Draining)
}
