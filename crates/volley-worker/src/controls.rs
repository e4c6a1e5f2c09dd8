//! Keeps the job controls of this worker's processors current: at once on an announcement
//! (`FleetEvent::JobControl`), and every second for the jobs in use, which heals an
//! announcement missed while the fleet channel was down.

use crate::jobs::JobCache;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio_util::sync::CancellationToken;
use volley_core::governor::FleetEvent;
use volley_core::{HttpProcessor, JobId, Store};

/// How often the controls of jobs in use are read again.
const REREAD_EVERY: Duration = Duration::from_secs(1);
/// A job a delivery asked for this recently is in use (a paused job's chunks come back
/// every `--max-hold`; a worker's held chunks keep asking).
const IN_USE_FOR: Duration = Duration::from_secs(30 * 60);

/// Runs until `stop`. A `JobAdded` announcement wakes the reading of active jobs
/// (`follow_now`).
pub(crate) async fn watch_controls<S: Store>(
    store: S,
    jobs: &JobCache,
    mut events: Receiver<FleetEvent>,
    follow_now: &Notify,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(REREAD_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listening = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {
                for (job, processor) in jobs.in_use(IN_USE_FOR).await {
                    reread(&store, &job, &processor).await;
                }
            }
            event = events.recv(), if listening => match event {
                Ok(FleetEvent::JobControl { job }) => {
                    let Ok(job) = JobId::parse(&job) else { continue };
                    if let Some(processor) = jobs.processor(&job).await {
                        reread(&store, &job, &processor).await;
                    }
                }
                Ok(FleetEvent::JobAdded { .. }) => follow_now.notify_one(),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                // The periodic read goes on alone.
                Err(RecvError::Closed) => listening = false,
            },
        }
    }
}

async fn reread<S: Store>(store: &S, job: &JobId, processor: &HttpProcessor) {
    match store.job_controls(job).await {
        Ok(Some(controls)) => processor.apply_controls(controls),
        // A job whose keys expired has no controls left to follow.
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(job.id = %job, error.message = %e, "job controls not read; keeping the last known");
        }
    }
}
