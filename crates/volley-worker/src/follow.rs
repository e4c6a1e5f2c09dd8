//! Which job queues a worker consumes, and how many chunks of each it holds. Every job has a
//! queue of its own; a worker reads the active jobs from the store every second and follows
//! each one's queue with a prefetch of `--prefetch` × the job's `weight`, so a job submitted
//! behind a large one gets chunks at once instead of after the large one's backlog.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use volley_core::{ActiveJob, Follow, JobId, Store};

/// How often the active jobs are read while some are followed: a job submitted behind them
/// starts within a second.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// How often they are read while none is: an idle fleet takes a new job's first chunks
/// within a fifth of a second (on a latency-bound job of seconds, a full second of start
/// would cost several percent of its run time), for five small reads a second per worker.
const IDLE_FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// How long one read of the active jobs may take.
const READ_WAIT: Duration = Duration::from_secs(3);

/// Across all jobs a worker holds at most this many times `--prefetch` chunks (and at
/// least one chunk of each job): weights share the budget once it is reached.
const HELD_BUDGET: u64 = 10;

/// What one read found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    /// The jobs to consume.
    pub(crate) active: Vec<ActiveJob>,
    /// Jobs this read found ended: their queues can be deleted.
    pub(crate) ended: Vec<JobId>,
}

/// Whether a job's queue is consumed now. The one condition every reason not to consume a
/// job joins: a paused job's chunks stay queued (those already held wait in `admit` and go
/// back, their finished records saved, at `--max-hold`), so a long pause costs no
/// redeliveries.
pub(crate) fn should_consume(job: &ActiveJob) -> bool {
    !job.paused
}

/// Each consumed job's prefetch: `prefetch` × its weight, scaled down in proportion when
/// the jobs together would hold more than [`HELD_BUDGET`] × `prefetch` chunks, never below 1.
pub(crate) fn follows(jobs: &[ActiveJob], prefetch: u16) -> Vec<Follow> {
    let consumed: Vec<&ActiveJob> = jobs.iter().filter(|j| should_consume(j)).collect();
    let prefetch = u64::from(prefetch.max(1));
    let total_weight: u64 = consumed.iter().map(|j| u64::from(j.weight.get())).sum();
    consumed
        .into_iter()
        .map(|job| {
            let weight = u64::from(job.weight.get());
            let share = (prefetch * HELD_BUDGET * weight) / total_weight.max(1);
            let held = (prefetch * weight).min(share).max(1);
            Follow {
                job: job.id.clone(),
                prefetch: u16::try_from(held).unwrap_or(u16::MAX),
            }
        })
        .collect()
}

/// Reads the active jobs every [`FOLLOW_EVERY`] (more often while there are none, and at
/// once when `now` is notified: a job was added) until `stop`, and sends each reading. The
/// jobs this worker's read found ended (and dropped from the store's index) are named, so
/// one worker, not the whole fleet, tries to delete each ended job's queue. A job the store
/// forgot is only no longer followed: its queue and what it holds stay (the README's
/// "Redis lost its data").
pub(crate) async fn read_active<S: Store>(
    store: S,
    readings: mpsc::UnboundedSender<Reading>,
    now: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = now.notified() => {}
        }
        wait = FOLLOW_EVERY;
        let found = match tokio::time::timeout(READ_WAIT, store.active_jobs()).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(error.message = %e, "active jobs not read; following the same ones");
                continue;
            }
            Err(_) => {
                tracing::debug!("active jobs not read in time; following the same ones");
                continue;
            }
        };
        if found.active.is_empty() {
            wait = IDLE_FOLLOW_EVERY;
        }
        let reading = Reading {
            active: found.active,
            ended: found.ended,
        };
        if readings.send(reading).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_core::Weight;

    fn job(id: &str, weight: u64) -> ActiveJob {
        ActiveJob {
            id: JobId::parse(id).expect("valid id"),
            weight: Weight::new(weight).expect("valid weight"),
            paused: false,
        }
    }

    #[test]
    fn a_paused_job_is_not_consumed_and_leaves_the_budget_to_the_others() {
        let mut paused = job("p-1", 1);
        paused.paused = true;
        let wanted = follows(&[paused, job("a-1", 1)], 8);
        let jobs: Vec<&str> = wanted.iter().map(|f| f.job.as_str()).collect();
        assert_eq!(jobs, vec!["a-1"]);
    }

    fn prefetches(jobs: &[ActiveJob], prefetch: u16) -> Vec<u16> {
        follows(jobs, prefetch).iter().map(|f| f.prefetch).collect()
    }

    #[test]
    fn a_job_holds_prefetch_times_its_weight_within_the_budget() {
        assert_eq!(prefetches(&[job("a-1", 1)], 8), vec![8]);
        assert_eq!(prefetches(&[job("a-1", 1), job("b-1", 3)], 8), vec![8, 24]);
        // 100 + 1 weights on a budget of 80 chunks: shared in proportion, at least one each.
        assert_eq!(
            prefetches(&[job("a-1", 100), job("b-1", 1)], 8),
            vec![79, 1]
        );
    }

    #[test]
    fn many_jobs_share_the_budget_and_each_holds_at_least_one_chunk() {
        let jobs: Vec<ActiveJob> = (0..200).map(|i| job(&format!("j-{i}"), 1)).collect();
        let held = prefetches(&jobs, 8);
        assert!(held.iter().all(|&p| p == 1), "{held:?}");
        let jobs: Vec<ActiveJob> = (0..20).map(|i| job(&format!("j-{i}"), 1)).collect();
        assert_eq!(
            prefetches(&jobs, 8)
                .iter()
                .map(|&p| u64::from(p))
                .sum::<u64>(),
            80
        );
    }
}
