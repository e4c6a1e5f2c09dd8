//! Drives a chunk's records through a processor. Each record runs as its own task; the
//! processor's semaphores bound how many are in flight, shared across every chunk a worker
//! holds, so one slow record never idles the other slots (no chunk barrier).

use crate::{ChunkRecord, ErrorKind, JobId, RecordOutcome};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Turns one record into an outcome. Never fails: every failure is an outcome.
pub trait Processor: Send + Sync + 'static {
    /// Processes a record.
    fn process(&self, record: &ChunkRecord) -> impl Future<Output = RecordOutcome> + Send;

    /// Processes a record unless `stop` fires first; `None` when the record was given up
    /// with no request of it in flight (a request already sent is waited for: its outcome
    /// was paid for). This default gives up at once.
    fn process_until<'a>(
        &'a self,
        record: &'a ChunkRecord,
        stop: &'a CancellationToken,
    ) -> impl Future<Output = Option<RecordOutcome>> + Send + 'a {
        async move {
            tokio::select! {
                outcome = self.process(record) => Some(outcome),
                () = stop.cancelled() => None,
            }
        }
    }

    /// The job whose records this processor runs, named in its log lines (`job.id`).
    fn job(&self) -> Option<&JobId> {
        None
    }
}

/// Runs every record of a chunk and returns their outcomes in record order (`None` only when
/// the runtime is shutting down and some record has no outcome). A record whose
/// processing panics fails with a `panic` outcome; the others are unaffected. Dropping the
/// returned future aborts the chunk's record tasks.
pub async fn run_chunk<P: Processor>(
    processor: Arc<P>,
    records: Arc<[ChunkRecord]>,
) -> Option<Vec<RecordOutcome>> {
    run_until(
        processor,
        records,
        std::future::pending::<std::time::Duration>(),
    )
    .await
    .into_iter()
    .collect()
}

/// Runs the records as [`run_chunk`] does until they all have an outcome or `stop`
/// completes, and returns the outcomes so far by position. When it stops, the records
/// waiting for their turn (a slot, a token, a pause, a backoff) are given up without an
/// outcome ([`Processor::process_until`]), and those whose request is in flight are waited
/// for as long as the grace `stop` returns; past it they are cut off without an outcome.
pub async fn run_until<P: Processor>(
    processor: Arc<P>,
    records: Arc<[ChunkRecord]>,
    stop: impl Future<Output = std::time::Duration>,
) -> Vec<Option<RecordOutcome>> {
    let mut slots: Vec<Option<RecordOutcome>> = vec![None; records.len()];
    let mut tasks = JoinSet::new();
    let give_up = CancellationToken::new();
    for index in 0..records.len() {
        let processor = processor.clone();
        // The caller keeps the records (failed ones are stored for redrive): tasks share them.
        let records = records.clone();
        let give_up = give_up.clone();
        tasks.spawn(async move {
            let record = &records[index];
            let result = AssertUnwindSafe(async {
                crate::failpoint::on_record(&record.id);
                processor.process_until(record, &give_up).await
            })
            .catch_unwind()
            .await;
            let job = processor.job();
            let outcome =
                result.unwrap_or_else(|panic| Some(panic_outcome(job, record, panic.as_ref())));
            (index, outcome)
        });
    }
    let mut stop = std::pin::pin!(stop);
    // Far off until `stop` sets the grace.
    let cut_off = tokio::time::sleep(std::time::Duration::from_secs(86_400 * 365));
    let mut cut_off = std::pin::pin!(cut_off);
    loop {
        tokio::select! {
            biased;
            joined = tasks.join_next() => match joined {
                None => break,
                // Panics are caught inside the task, so a join error means the runtime is
                // shutting down; the chunk will not be committed then, and comes back from
                // the broker.
                Some(Ok((index, outcome))) => slots[index] = outcome,
                Some(Err(_)) => {}
            },
            grace = &mut stop, if !give_up.is_cancelled() => {
                give_up.cancel();
                cut_off.as_mut().reset(tokio::time::Instant::now() + grace);
            }
            () = &mut cut_off => break,
        }
    }
    slots
}

fn panic_outcome(
    job: Option<&JobId>,
    record: &ChunkRecord,
    panic: &(dyn std::any::Any + Send),
) -> RecordOutcome {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(job.id = job.map(tracing::field::display), record.id = %record.id.escape_debug(), panic = %message, "record processor panicked");
    RecordOutcome::unsent(record, ErrorKind::Panic, message)
}
