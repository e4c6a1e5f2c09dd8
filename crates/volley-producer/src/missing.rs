//! Whether chunks of a running job are missing: without an outcome in the store, not in the
//! queue, and held by no worker. One check for `volley status` (which reports them) and
//! `volley-producer --missing` (which republishes them). It says [`Verdict::Missing`] only
//! when it is certain, since republishing a chunk that is still queued or held calls the API
//! a second time for each of its records.
//!
//! What can be known without RabbitMQ's management API: a passive declare gives the ready
//! messages and the consumers of the queue, not the delivered, unacknowledged ones. Those
//! are held by consumers, and every consumer is a worker that says in its heartbeat how many
//! chunks it holds. So a chunk is certainly missing when nothing is ready, every consumer is
//! matched by a worker that beat twice since the check began (a reading taken after it, not
//! one up to an interval old) holding nothing, no worker died so recently that the broker may
//! not have taken its chunks back yet, the job did not move, and all of that held for a
//! settling delay, read again at its end.

use std::collections::HashMap;
use std::time::{Duration, Instant};
use volley_amqp::{AmqpBroker, QueueCounts};
use volley_core::time::now_ms;
use volley_core::{
    BrokerError, JobId, JobState, JobStatus, Store, StoreError, WorkerBeat, WorkerPhase,
};
use volley_redis::{RedisStore, WORKER_BEAT_KEPT_SECS};

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No such job in the namespace.
    NoJob,
    /// Nothing to republish: every chunk has an outcome, or the job has ended.
    NoneMissing,
    /// The job is not fully published (its state): resuming the producer publishes the rest.
    NotPublished(JobState),
    /// Chunks without an outcome may still be queued or held; why it cannot tell.
    Unsure(String),
    /// These chunks have no outcome and are certainly neither queued nor held.
    Missing(Vec<u64>),
}

/// The broker or the store could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// RabbitMQ.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shortest check: readings this far apart must agree before anything is called missing.
const SETTLE: Duration = Duration::from_secs(3);
/// The longest wait for every consumer's worker to beat twice.
const MOST_PATIENCE: Duration = Duration::from_secs(60);
/// How often the heartbeats are read during the check.
const POLL: Duration = Duration::from_millis(250);
/// A worker that stopped beating this recently may still hold chunks: the broker takes
/// them back only once it notices the connection is gone (AMQP heartbeat, 10 s here).
const DEAD_GRACE_MS: u64 = 60_000;
/// How long one broker reading may take.
const BROKER_WAIT: Duration = Duration::from_secs(10);

/// Runs the check on `job` (a few seconds when chunks look missing, up to twice the
/// workers' heartbeat interval; at once when anything shows they are not).
///
/// # Errors
/// [`CheckError`] when RabbitMQ or Redis cannot be read.
pub async fn check_missing(
    broker: &AmqpBroker,
    store: &RedisStore,
    job: &JobId,
) -> Result<Verdict, CheckError> {
    let Some(status) = store.job_status(job).await? else {
        return Ok(Verdict::NoJob);
    };
    let total = match (status.state, status.total_chunks) {
        (state, _) if state.is_terminal() => return Ok(Verdict::NoneMissing),
        (JobState::Running, Some(total)) => total,
        (state, _) => return Ok(Verdict::NotPublished(state)),
    };
    let candidates = store.uncommitted_chunks(job, total).await?;
    if candidates.is_empty() {
        return Ok(Verdict::NoneMissing);
    }
    let began = Instant::now();
    let first = queue_counts(broker, job).await?;
    if let Some(why) = queued(&first) {
        return Ok(Verdict::Unsure(why));
    }
    let mut watch = BeatWatch::default();
    watch.first(read_beats(store).await?);
    let deadline = began + watch.patience();
    loop {
        if let Some(why) = watch.doubt(now_ms()) {
            return Ok(Verdict::Unsure(why));
        }
        if let Some(why) = moved(&status, store.job_status(job).await?.as_ref()) {
            return Ok(Verdict::Unsure(why));
        }
        if began.elapsed() >= SETTLE && watch.fresh_workers() >= first.consumers {
            break;
        }
        if Instant::now() >= deadline {
            return Ok(Verdict::Unsure(unanswered(
                first.consumers,
                watch.fresh_workers(),
            )));
        }
        tokio::time::sleep(POLL).await;
        watch.see(read_beats(store).await?);
    }
    let last = queue_counts(broker, job).await?;
    if let Some(why) = queued(&last) {
        return Ok(Verdict::Unsure(why));
    }
    if last.consumers > watch.fresh_workers() {
        return Ok(Verdict::Unsure(unanswered(
            last.consumers,
            watch.fresh_workers(),
        )));
    }
    // Only chunks that stayed without an outcome through the whole check.
    let missing: Vec<u64> = store
        .uncommitted_chunks(job, total)
        .await?
        .into_iter()
        .filter(|c| candidates.binary_search(c).is_ok())
        .collect();
    Ok(if missing.is_empty() {
        Verdict::NoneMissing
    } else {
        Verdict::Missing(missing)
    })
}

async fn queue_counts(broker: &AmqpBroker, job: &JobId) -> Result<QueueCounts, BrokerError> {
    tokio::time::timeout(BROKER_WAIT, broker.queue_counts(std::slice::from_ref(job)))
        .await
        .map_err(|_| BrokerError::Unavailable("RabbitMQ did not answer a queue count".into()))?
}

async fn read_beats(store: &RedisStore) -> Result<Vec<WorkerBeat>, StoreError> {
    store.workers(now_ms(), WORKER_BEAT_KEPT_SECS * 1000).await
}

/// Why the queue rules the verdict out, if it does.
fn queued(counts: &QueueCounts) -> Option<String> {
    if counts.chunks_ready > 0 {
        return Some(format!(
            "{} chunk messages are still queued",
            counts.chunks_ready
        ));
    }
    // A chunk the broker dead-lettered has no outcome either: republishing would run it
    // again behind `volley dead --requeue`'s back.
    (counts.dead > 0).then(|| {
        format!(
            "{} dead letters are queued and may be this job's chunks (volley dead lists them)",
            counts.dead
        )
    })
}

/// Why the job's own progress rules the verdict out, if it does.
fn moved(before: &JobStatus, now: Option<&JobStatus>) -> Option<String> {
    let now = now?;
    (now.chunks_done != before.chunks_done || now.state != before.state)
        .then(|| "the job is progressing".to_string())
}

fn unanswered(consumers: u32, fresh: u32) -> String {
    format!(
        "{consumers} consumers on the queue, but only {fresh} workers reported twice since the check began: they may hold the chunks"
    )
}

/// One worker as seen during a check.
#[derive(Debug)]
struct Watched {
    /// Its newest beat.
    beat: WorkerBeat,
    /// Beats it wrote after the check began.
    fresh: u32,
}

/// The heartbeats read during one check.
#[derive(Debug, Default)]
struct BeatWatch {
    workers: HashMap<String, Watched>,
}

impl BeatWatch {
    /// The beats read when the check began: none of them is fresh.
    fn first(&mut self, beats: Vec<WorkerBeat>) {
        for beat in beats {
            self.workers
                .insert(beat.id.clone(), Watched { beat, fresh: 0 });
        }
    }

    /// A later reading: a beat newer (by the worker's own clock) than the one seen before
    /// was written after the check began, as is the first beat of a worker not seen then.
    fn see(&mut self, beats: Vec<WorkerBeat>) {
        for beat in beats {
            match self.workers.get_mut(&beat.id) {
                Some(w) if beat.at_ms > w.beat.at_ms => {
                    w.fresh += 1;
                    w.beat = beat;
                }
                Some(_) => {}
                None => {
                    self.workers
                        .insert(beat.id.clone(), Watched { beat, fresh: 1 });
                }
            }
        }
    }

    /// Why some worker may hold the chunks, if one may.
    fn doubt(&self, now: u64) -> Option<String> {
        self.workers.values().find_map(|w| {
            let beat = &w.beat;
            let phase = beat.phase_at(now);
            if phase == WorkerPhase::Exited {
                return None;
            }
            if beat.chunks_held > 0 {
                return Some(format!(
                    "worker {} holds {} chunks",
                    beat.id, beat.chunks_held
                ));
            }
            let silent = now.saturating_sub(beat.at_ms);
            (phase == WorkerPhase::Dead && silent < DEAD_GRACE_MS).then(|| {
                format!(
                    "worker {} stopped beating {}s ago without exiting: the broker may not have taken its chunks back yet",
                    beat.id,
                    silent / 1000
                )
            })
        })
    }

    /// Workers still consuming that beat twice since the check began, holding nothing
    /// each time (a beat that held something ended the check).
    fn fresh_workers(&self) -> u32 {
        let n = self
            .workers
            .values()
            .filter(|w| w.fresh >= 2 && w.beat.state != WorkerPhase::Exited)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// How long the check may wait for two beats of every live worker.
    fn patience(&self) -> Duration {
        let slowest = self
            .workers
            .values()
            .filter(|w| w.beat.state != WorkerPhase::Exited)
            .map(|w| w.beat.interval_ms)
            .max()
            .unwrap_or(0);
        (Duration::from_millis(slowest.saturating_mul(2)) + Duration::from_secs(3))
            .clamp(SETTLE, MOST_PATIENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, at_ms: u64, chunks_held: u64, state: WorkerPhase) -> WorkerBeat {
        WorkerBeat {
            id: id.into(),
            in_flight: 0,
            records_held: 0,
            chunks_held,
            records_done: 0,
            at_ms,
            started_ms: 0,
            state,
            interval_ms: 5_000,
        }
    }

    #[test]
    fn only_beats_written_after_the_check_began_count() {
        let mut watch = BeatWatch::default();
        watch.first(vec![beat("a", 1_000, 0, WorkerPhase::Running)]);
        watch.see(vec![beat("a", 1_000, 0, WorkerPhase::Running)]);
        assert_eq!(watch.fresh_workers(), 0, "the same old beat read again");
        watch.see(vec![beat("a", 6_000, 0, WorkerPhase::Running)]);
        assert_eq!(watch.fresh_workers(), 0, "one fresh beat is not two");
        watch.see(vec![beat("a", 11_000, 0, WorkerPhase::Running)]);
        assert_eq!(watch.fresh_workers(), 1);
        assert_eq!(watch.doubt(11_500), None);
    }

    #[test]
    fn a_fresh_beat_holding_chunks_or_a_recent_death_is_doubt() {
        let mut watch = BeatWatch::default();
        watch.first(vec![beat("a", 1_000, 0, WorkerPhase::Running)]);
        watch.see(vec![beat("a", 6_000, 3, WorkerPhase::Running)]);
        assert!(
            watch
                .doubt(6_100)
                .is_some_and(|w| w.contains("holds 3 chunks"))
        );

        let mut watch = BeatWatch::default();
        watch.first(vec![beat("b", 1_000, 0, WorkerPhase::Running)]);
        assert!(
            watch
                .doubt(30_000)
                .is_some_and(|w| w.contains("stopped beating"))
        );
        assert_eq!(watch.doubt(1_000 + DEAD_GRACE_MS + 1), None);

        let mut watch = BeatWatch::default();
        watch.first(vec![beat("c", 1_000, 0, WorkerPhase::Exited)]);
        assert_eq!(watch.doubt(2_000), None);
        assert_eq!(
            watch.fresh_workers(),
            0,
            "an exited worker consumes nothing"
        );
    }
}
