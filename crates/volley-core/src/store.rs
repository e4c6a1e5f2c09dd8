//! The store capability: the job registry, the atomic chunk commit, progress and results.
//! Implemented for Redis (`volley-redis`) and in memory.

use crate::throughput::{Finished, RecentSeconds};
use crate::{
    ChunkRecord, ChunkTally, ControlChange, ControlReply, JobControls, JobId, JobState,
    RecordOutcome, Redo, Weight, decode_row, encode_chunk_results,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;

/// A store failure. Every one of them leaves the chunk unacked: it is retried or redelivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached, timed out, or refused the write (OOM, MISCONF).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored data is not what Volley wrote.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// The request contradicts stored state (e.g. a different spec under the same job id).
    #[error("{0}")]
    Conflict(String),
}

/// What the producer registers before the first publish.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The id.
    pub id: JobId,
    /// The spec's name.
    pub name: String,
    /// The spec as the user wrote it (secrets stay `${env:...}` references).
    pub spec_toml: String,
    /// Where the records came from, for people.
    pub input: String,
    /// Records per chunk.
    pub chunk_size: u32,
    /// From the spec, for the terminal-state decision made by the commit.
    pub tolerated_failure_percent: f64,
    /// Seconds a finished job's keys are kept.
    pub retention_secs: u64,
    /// The spec's `weight`: the job's share beside other running jobs.
    pub weight: Weight,
    /// Registration time.
    pub now_ms: u64,
    /// Only find an existing job (`volley-producer --resume`): an unknown id is
    /// [`Registration::Unknown`] and nothing is written.
    pub resume_only: bool,
}

/// A job whose queue workers consume: registered and not terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveJob {
    /// The job.
    pub id: JobId,
    /// Its spec's `weight`.
    pub weight: Weight,
    /// Paused (`volley pause`) and not cancelled: its queue is not consumed meanwhile (a
    /// cancelled job's is, so that its chunks are settled).
    pub paused: bool,
}

/// What [`Store::active_jobs`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveJobs {
    /// The jobs whose queues workers consume.
    pub active: Vec<ActiveJob>,
    /// Terminal jobs found in the index and dropped from it just now: their queues are no
    /// longer needed.
    pub ended: Vec<JobId>,
}

/// Where a re-run producer continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishMark {
    /// Chunks confirmed by the broker, from 0, contiguous.
    pub chunks: u64,
    /// Records in those chunks.
    pub records: u64,
    /// Digest of the input that produced those chunks, to refuse a changed input.
    pub input_digest: String,
}

/// The outcome of registering a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// A new job.
    Created,
    /// The job exists (same spec): continue after `mark`.
    Resume {
        /// Its state.
        state: JobState,
        /// Its publish mark.
        mark: PublishMark,
    },
    /// No such job, and [`NewJob::resume_only`] was asked: nothing was written.
    Unknown,
}

/// One chunk's commit: outcomes, counter deltas and the done mark, applied atomically and at
/// most once per (job, chunk).
#[derive(Debug, Clone)]
pub struct ChunkCommit {
    /// The job.
    pub job: JobId,
    /// The chunk index.
    pub chunk: u64,
    /// Outcomes in compact form (see [`crate::encode_chunk_results`]); empty for a redrive
    /// chunk, whose outcomes go to `splices`.
    pub results: Vec<u8>,
    /// The input of each failed record, by position, kept for `volley retry`.
    pub failed_inputs: Vec<(u32, Vec<u8>)>,
    /// A redrive chunk's new outcomes, each replacing the row of its record where it was
    /// first stored.
    pub splices: Vec<Splice>,
    /// Counter deltas.
    pub tally: ChunkTally,
    /// Records this chunk finished, for the job's throughput series (a redrive chunk's
    /// records count although its counter deltas net out).
    pub finished: Finished,
    /// Commit time.
    pub now_ms: u64,
}

impl ChunkCommit {
    /// The commit of a chunk: its outcomes and failed inputs, or for a redrive chunk the rows
    /// that replace the earlier outcomes, with counters that take those back. `None` when an
    /// earlier outcome cannot be read.
    pub fn build(
        job: &JobId,
        chunk: u64,
        inputs: &[ChunkRecord],
        outcomes: &[RecordOutcome],
        now_ms: u64,
    ) -> Option<ChunkCommit> {
        let mut tally = ChunkTally::of(outcomes);
        let mut commit = ChunkCommit {
            job: job.clone(),
            chunk,
            results: Vec::new(),
            failed_inputs: Vec::new(),
            splices: Vec::new(),
            tally: ChunkTally::default(),
            finished: Finished {
                done: outcomes.len() as u64,
                failed: outcomes.iter().filter(|o| !o.ok()).count() as u64,
            },
            now_ms,
        };
        let redos: Vec<&Redo> = inputs.iter().filter_map(|r| r.redo.as_ref()).collect();
        if redos.is_empty() {
            commit.results = encode_chunk_results(outcomes);
            commit.failed_inputs = inputs
                .iter()
                .zip(outcomes)
                .enumerate()
                .filter(|(_, (_, o))| !o.ok())
                .map(|(pos, (input, _))| {
                    (u32::try_from(pos).unwrap_or(u32::MAX), input.input_json())
                })
                .collect();
        } else {
            for (redo, outcome) in redos.into_iter().zip(outcomes) {
                tally.remove(&decode_row(&redo.was)?);
                let mut row = Vec::new();
                outcome.encode_compact(&mut row);
                commit.splices.push(Splice {
                    chunk: redo.chunk,
                    pos: redo.pos,
                    row,
                    ok: outcome.ok(),
                });
            }
        }
        commit.tally = tally;
        Some(commit)
    }
}

/// A redriven record's new outcome.
#[derive(Debug, Clone)]
pub struct Splice {
    /// The chunk the record was first published in.
    pub chunk: u64,
    /// Its position there.
    pub pos: u32,
    /// Its new compact row.
    pub row: Vec<u8>,
    /// Whether it succeeded now (its kept input is dropped then).
    pub ok: bool,
}

/// A failed record's input, kept for redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedInput {
    /// The chunk it was first published in.
    pub chunk: u64,
    /// Its position there.
    pub pos: u32,
    /// `{"id","line","data"}`.
    pub input: Vec<u8>,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStatus {
    /// Applied now; carries the job's state afterwards.
    Committed(JobState),
    /// Applied before (a redelivery): nothing changed.
    AlreadyCommitted,
    /// The store has no such job: the chunk is poison (or the store lost state).
    UnknownJob,
}

/// What asking for a hold on a chunk found ([`Store::hold_chunk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReply {
    /// The chunk is this holder's for the time asked (taken now, or renewed).
    Taken,
    /// The chunk is committed: there is nothing left to run.
    Committed,
    /// Another delivery holds it, for at most this long unless it renews its hold.
    HeldElsewhere(std::time::Duration),
    /// The store does not know the job.
    UnknownJob,
}

/// A job as `volley status` shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct JobStatus {
    /// Job id.
    pub job: String,
    /// Spec name.
    pub name: String,
    /// Its state (serialized by name: `"running"`).
    pub state: JobState,
    /// Total records, once the producer has read all of them.
    pub total: Option<u64>,
    /// Total chunks, likewise.
    pub total_chunks: Option<u64>,
    /// Records with an outcome.
    pub done: u64,
    /// Succeeded.
    pub ok: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled before they were sent (`volley cancel`); ok + failed + cancelled = done.
    pub cancelled: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Committed chunks.
    pub chunks_done: u64,
    /// Redrive chunks published by `volley retry` (numbered after `total_chunks`).
    pub redrive_chunks: u64,
    /// Chunks confirmed by the broker so far.
    pub published_chunks: u64,
    /// Records in those chunks.
    pub published_records: u64,
    /// Records per HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Failed records per error kind.
    pub by_error: BTreeMap<String, u64>,
    /// Latency histogram (bucket → records).
    #[serde(skip)]
    pub latency: BTreeMap<u32, u64>,
    /// Sum of last-attempt latencies.
    pub latency_sum_ms: u64,
    /// Failures tolerated before the job counts as failed.
    pub tolerated_failure_percent: f64,
    /// Registration time.
    pub created_ms: u64,
    /// First commit time.
    pub first_commit_ms: Option<u64>,
    /// Last commit time.
    pub last_commit_ms: Option<u64>,
    /// When the job reached a terminal state.
    pub finished_ms: Option<u64>,
    /// The producer's input error, if any.
    pub error: Option<String>,
    /// Where the records came from.
    pub input: String,
    /// Seconds the job's keys are kept once it has finished.
    pub retention_secs: u64,
    /// Records finished per second, recently.
    #[serde(skip)]
    pub recent: RecentSeconds,
    /// What operators set: a cancel under way, a pause and since when, live limits.
    pub controls: JobControls,
}

impl JobStatus {
    /// Whether a cancel was asked and chunks are still to be settled.
    #[must_use]
    pub fn cancelling(&self) -> bool {
        self.controls.cancel_ms.is_some() && !self.state.is_terminal()
    }

    /// Whether the job's counters will change no more: a terminal state, or an input error
    /// once every published chunk has committed (the producer stopped, nothing is left).
    #[must_use]
    pub fn has_ended(&self) -> bool {
        match self.state {
            JobState::InputError => self.chunks_done >= self.published_chunks,
            state => state.is_terminal(),
        }
    }

    /// When the job's data expires: its retention after it finished (`None` while it runs,
    /// or when it is kept until deleted).
    #[must_use]
    pub fn expires_ms(&self) -> Option<u64> {
        let finished = self.finished_ms.filter(|_| self.state.is_terminal())?;
        (self.retention_secs > 0).then(|| finished + self.retention_secs * 1000)
    }
}

/// A worker's heartbeat.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerBeat {
    /// Worker id (host-pid-random).
    pub id: String,
    /// Requests in flight to the API right now (slots of the worker taken).
    pub in_flight: u64,
    /// Records whose chunk is held and not yet committed (running, waiting for a slot, or
    /// backing off).
    #[serde(default)]
    pub records_held: u64,
    /// Chunks held (delivered, not yet settled).
    pub chunks_held: u64,
    /// Records finished since start.
    pub records_done: u64,
    /// Time of the beat.
    pub at_ms: u64,
    /// Start time.
    pub started_ms: u64,
    /// What the worker said it was doing.
    #[serde(default)]
    pub state: WorkerPhase,
    /// How often this worker beats: a beat older than a few of these is a worker gone.
    #[serde(default = "default_beat_interval_ms")]
    pub interval_ms: u64,
}

fn default_beat_interval_ms() -> u64 {
    5_000
}

/// A worker's phase, as its beats say and as a reader concludes from their age.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerPhase {
    /// Consuming and processing.
    #[default]
    Running,
    /// Stopped consuming; finishing the chunks it holds.
    Draining,
    /// Left cleanly: its consumer is closed and it holds nothing (its last beat).
    Exited,
    /// Never written by a worker: its beats stopped without an exit (killed, hung or cut
    /// off), so what it holds is unknown until the broker takes its chunks back.
    Dead,
}

impl WorkerPhase {
    /// The name shown by `volley workers`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Draining => "draining",
            Self::Exited => "exited",
            Self::Dead => "dead",
        }
    }
}

/// Beats a worker may miss before it is taken for dead.
const MISSED_BEATS: u64 = 3;

impl WorkerBeat {
    /// The phase at `now_ms`: the beat's own, or [`WorkerPhase::Dead`] when a running or
    /// draining worker has missed several beats.
    pub fn phase_at(&self, now_ms: u64) -> WorkerPhase {
        let silent = now_ms.saturating_sub(self.at_ms);
        let late = self.interval_ms.max(1).saturating_mul(MISSED_BEATS) + 2_000;
        match self.state {
            WorkerPhase::Exited => WorkerPhase::Exited,
            _ if silent > late => WorkerPhase::Dead,
            phase => phase,
        }
    }
}

/// The job store.
pub trait Store: Clone + Send + Sync + 'static {
    /// Registers a job, or finds it for a resume. A different spec under the same id is a
    /// [`StoreError::Conflict`].
    ///
    /// # Errors
    /// [`StoreError`].
    fn register_job(
        &self,
        job: &NewJob,
    ) -> impl Future<Output = Result<Registration, StoreError>> + Send;

    /// Records that chunks `0..mark.chunks` are confirmed by the broker.
    ///
    /// # Errors
    /// [`StoreError`].
    fn record_published(
        &self,
        job: &JobId,
        mark: &PublishMark,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Declares the totals once every chunk is published; the job becomes `running`, or
    /// terminal at once if every chunk is already committed. Returns the new state.
    ///
    /// # Errors
    /// [`StoreError`].
    fn finish_publishing(
        &self,
        job: &JobId,
        total_records: u64,
        total_chunks: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<JobState, StoreError>> + Send;

    /// Marks the job `input_error` with the reader's message.
    ///
    /// # Errors
    /// [`StoreError`].
    fn record_input_error(
        &self,
        job: &JobId,
        message: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The job's spec text, or `None` for an unknown job.
    ///
    /// # Errors
    /// [`StoreError`].
    fn job_spec(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Whether a chunk is committed.
    ///
    /// # Errors
    /// [`StoreError`].
    fn is_committed(
        &self,
        job: &JobId,
        chunk: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The chunks below `total` that are not committed, in order.
    ///
    /// # Errors
    /// [`StoreError`].
    fn uncommitted_chunks(
        &self,
        job: &JobId,
        total: u64,
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;

    /// Commits a chunk atomically and at most once; drops the chunk's saved partial
    /// outcomes ([`Store::save_partial`]) and its hold ([`Store::hold_chunk`]) in the same
    /// step.
    ///
    /// # Errors
    /// [`StoreError`]: the outcome is unknown; retry (the commit is idempotent).
    fn commit_chunk(
        &self,
        commit: &ChunkCommit,
    ) -> impl Future<Output = Result<CommitStatus, StoreError>> + Send;

    /// Takes or renews `holder`'s hold on a chunk for `ttl`, unless the chunk is committed
    /// or another holder's hold has not expired. One delivery runs a chunk at a time: a
    /// copy of it (redelivered when a channel was lost while the first still runs, or
    /// published twice) waits for the hold instead of calling the API again. The commit
    /// gives the hold up in the same step ([`Store::commit_chunk`]).
    ///
    /// # Errors
    /// [`StoreError`].
    fn hold_chunk(
        &self,
        job: &JobId,
        chunk: u64,
        holder: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<HoldReply, StoreError>> + Send;

    /// Gives up `holder`'s hold on a chunk that goes back to the queue unfinished (another
    /// holder's hold is left alone).
    ///
    /// # Errors
    /// [`StoreError`].
    fn release_chunk(
        &self,
        job: &JobId,
        chunk: u64,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps the outcomes a returned chunk already has (see [`crate::partial`]), so that its
    /// next delivery calls the API only for the rest. Expires with the job.
    ///
    /// # Errors
    /// [`StoreError`].
    fn save_partial(
        &self,
        job: &JobId,
        chunk: u64,
        encoded: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The outcomes saved by [`Store::save_partial`] for a chunk not yet committed.
    ///
    /// # Errors
    /// [`StoreError`].
    fn partial(
        &self,
        job: &JobId,
        chunk: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Applies an operator's control command in one atomic step (refused once the job has
    /// ended). A redrive of the job lifts its cancel.
    ///
    /// # Errors
    /// [`StoreError`].
    fn control_job(
        &self,
        job: &JobId,
        change: ControlChange,
        now_ms: u64,
    ) -> impl Future<Output = Result<ControlReply, StoreError>> + Send;

    /// A job's controls, or `None` for an unknown job. Workers read them when they load a
    /// job, on each announcement and every second.
    ///
    /// # Errors
    /// [`StoreError`].
    fn job_controls(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<Option<JobControls>, StoreError>> + Send;

    /// A job's status, or `None` for an unknown job.
    ///
    /// # Errors
    /// [`StoreError`].
    fn job_status(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<Option<JobStatus>, StoreError>> + Send;

    /// The job's records finished per minute of its life (minute 0 starts at registration;
    /// see [`crate::throughput`] for the bound), in order, minutes without commits left out.
    ///
    /// # Errors
    /// [`StoreError`].
    fn job_minutes(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<Vec<(u64, Finished)>, StoreError>> + Send;

    /// The jobs that are registered and not terminal (publishing, running, stopped at an
    /// input error), from an index kept for it: workers read it every second to know which
    /// queues to consume, so it costs a few reads, never a scan of every job. Terminal jobs
    /// found in the index are dropped from it, and named in [`ActiveJobs::ended`].
    ///
    /// # Errors
    /// [`StoreError`].
    fn active_jobs(&self) -> impl Future<Output = Result<ActiveJobs, StoreError>> + Send;

    /// Every known job, newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    fn list_jobs(&self) -> impl Future<Output = Result<Vec<JobStatus>, StoreError>> + Send;

    /// Stored results of the chunks in `chunks`, in order; `None` for uncommitted chunks.
    ///
    /// # Errors
    /// [`StoreError`].
    fn chunk_results(
        &self,
        job: &JobId,
        chunks: Range<u64>,
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>> + Send;

    /// Whether a job was ever registered in this namespace. `false` while chunks of jobs
    /// arrive means the store lost its data (a Redis restart without persistence): workers
    /// then return those chunks instead of dead-lettering them as strangers.
    ///
    /// # Errors
    /// [`StoreError`].
    fn has_history(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A page of the failed records' kept inputs; `cursor` 0 starts, a returned cursor of 0
    /// ends.
    ///
    /// # Errors
    /// [`StoreError`].
    fn failed_inputs(
        &self,
        job: &JobId,
        cursor: u64,
    ) -> impl Future<Output = Result<(u64, Vec<FailedInput>), StoreError>> + Send;

    /// Registers redrive chunks (each given as the JSON array of its records) after the
    /// job's chunks and earlier redrives, and reopens the job: it is `running` and does not
    /// finish until [`Store::end_redrive`]. Returns the first new chunk index.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the job is running other work.
    fn add_redrive_chunks(
        &self,
        job: &JobId,
        records: &[Vec<u8>],
        now_ms: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Redrive chunks registered but not yet confirmed finished by [`Store::end_redrive`]:
    /// (index, records) of a round that was interrupted.
    ///
    /// # Errors
    /// [`StoreError`].
    fn pending_redrive(
        &self,
        job: &JobId,
    ) -> impl Future<Output = Result<Vec<(u64, Vec<u8>)>, StoreError>> + Send;

    /// Declares a redrive round fully published; the job may finish again. Returns its
    /// state.
    ///
    /// # Errors
    /// [`StoreError`].
    fn end_redrive(
        &self,
        job: &JobId,
        now_ms: u64,
    ) -> impl Future<Output = Result<JobState, StoreError>> + Send;

    /// Records a worker heartbeat.
    ///
    /// # Errors
    /// [`StoreError`].
    fn heartbeat(&self, beat: &WorkerBeat) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Workers seen in the last `within_ms`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn workers(
        &self,
        now_ms: u64,
        within_ms: u64,
    ) -> impl Future<Output = Result<Vec<WorkerBeat>, StoreError>> + Send;
}

/// Chunk indexes for people: `3, 17, 18` or, past `max`, `3, 17, … (250 in all)`.
pub fn render_list(chunks: &[u64], max: usize) -> String {
    let shown: Vec<String> = chunks.iter().take(max).map(u64::to_string).collect();
    if chunks.len() > max {
        format!("{}, … ({} in all)", shown.join(", "), chunks.len())
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_ends_terminal_or_stopped_at_an_input_error_with_every_chunk_committed() {
        let status = |state, chunks_done| JobStatus {
            state,
            chunks_done,
            published_chunks: 3,
            ..JobStatus::default()
        };
        assert!(status(JobState::Completed, 0).has_ended());
        assert!(status(JobState::CompletedWithFailures, 0).has_ended());
        assert!(status(JobState::Failed, 0).has_ended());
        assert!(!status(JobState::Running, 3).has_ended());
        assert!(!status(JobState::Publishing, 3).has_ended());
        assert!(!status(JobState::InputError, 2).has_ended());
        assert!(status(JobState::InputError, 3).has_ended());
    }

    #[test]
    fn a_worker_that_missed_its_beats_is_dead_unless_it_said_it_exited() {
        let beat = |state| WorkerBeat {
            id: "w".into(),
            in_flight: 0,
            records_held: 0,
            chunks_held: 0,
            records_done: 0,
            at_ms: 10_000,
            started_ms: 0,
            state,
            interval_ms: 1_000,
        };
        assert_eq!(
            beat(WorkerPhase::Running).phase_at(14_000),
            WorkerPhase::Running
        );
        assert_eq!(
            beat(WorkerPhase::Running).phase_at(15_001),
            WorkerPhase::Dead
        );
        assert_eq!(
            beat(WorkerPhase::Draining).phase_at(14_000),
            WorkerPhase::Draining
        );
        assert_eq!(
            beat(WorkerPhase::Draining).phase_at(60_000),
            WorkerPhase::Dead
        );
        assert_eq!(
            beat(WorkerPhase::Exited).phase_at(600_000),
            WorkerPhase::Exited
        );
        // Beats written before the field existed read as a running worker on a 5 s beat.
        let old: WorkerBeat = serde_json::from_str(
            r#"{"id":"w","in_flight":3,"chunks_held":1,"records_done":0,"at_ms":1,"started_ms":0}"#,
        )
        .expect("an old beat parses");
        assert_eq!((old.state, old.interval_ms), (WorkerPhase::Running, 5_000));
    }
}
