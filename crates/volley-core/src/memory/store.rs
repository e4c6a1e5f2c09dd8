use crate::store::{
    ActiveJob, ActiveJobs, ChunkCommit, CommitStatus, FailedInput, HoldReply, JobStatus, NewJob,
    PublishMark, Registration, Store, StoreError, WorkerBeat,
};
use crate::throughput::{Finished, minute_of};
use crate::{ControlChange, ControlReply, JobControls, JobId, JobState, Weight};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Job {
    status: JobStatus,
    spec: String,
    weight: Weight,
    state: JobState,
    mark: PublishMark,
    committed: HashSet<u64>,
    results: HashMap<u64, Vec<u8>>,
    failed_inputs: BTreeMap<(u64, u32), Vec<u8>>,
    /// A redrive round is being published: the job may not finish yet.
    redriving: bool,
    pending_redrive: BTreeMap<u64, Vec<u8>>,
    minutes: BTreeMap<u64, Finished>,
    /// Outcomes of returned chunks, by chunk, until their commit.
    partials: HashMap<u64, Vec<u8>>,
    /// Chunks being run: holder and until when.
    holds: HashMap<u64, (String, Instant)>,
}

fn bump(counter: &mut u64, delta: i64) {
    *counter = counter.saturating_add_signed(delta);
}

/// Replaces row `pos` of a stored chunk value (rows are newline-separated).
fn splice_row(stored: &[u8], pos: u32, row: &[u8]) -> Option<Vec<u8>> {
    let mut rows: Vec<&[u8]> = stored.split(|b| *b == b'\n').collect();
    *rows.get_mut(usize::try_from(pos).ok()?)? = row;
    Some(rows.join(&b'\n'))
}

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<JobId, Job>,
    workers: BTreeMap<String, WorkerBeat>,
}

/// A job store in process memory, with the same atomic, idempotent commit as Redis.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section below completes its update before it can panic, so a
        // poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn finish_if_done(job: &mut Job, now_ms: u64) {
    let Some(total_chunks) = job.status.total_chunks else {
        return;
    };
    if job.state.is_terminal() || job.state == JobState::InputError {
        return;
    }
    if job.redriving {
        return;
    }
    if job.committed.len() as u64 >= total_chunks + job.status.redrive_chunks {
        let total = job.status.total.unwrap_or(job.status.done);
        job.state = JobState::finished(
            job.status.failed,
            job.status.cancelled,
            total,
            job.status.tolerated_failure_percent,
        );
        job.status.finished_ms = Some(now_ms);
    }
}

impl Store for MemoryStore {
    async fn register_job(&self, new: &NewJob) -> Result<Registration, StoreError> {
        let mut state = self.lock();
        if let Some(job) = state.jobs.get(&new.id) {
            if job.spec != new.spec_toml {
                return Err(StoreError::Conflict(format!(
                    "job {} exists with a different spec; use a new --job-id",
                    new.id
                )));
            }
            return Ok(Registration::Resume {
                state: job.state,
                mark: job.mark.clone(),
            });
        }
        if new.resume_only {
            return Ok(Registration::Unknown);
        }
        let status = JobStatus {
            job: new.id.to_string(),
            name: new.name.clone(),
            tolerated_failure_percent: new.tolerated_failure_percent,
            created_ms: new.now_ms,
            input: new.input.clone(),
            retention_secs: new.retention_secs,
            ..JobStatus::default()
        };
        state.jobs.insert(
            new.id.clone(),
            Job {
                status,
                spec: new.spec_toml.clone(),
                weight: new.weight,
                state: JobState::Publishing,
                mark: PublishMark {
                    chunks: 0,
                    records: 0,
                    input_digest: String::new(),
                },
                committed: HashSet::new(),
                results: HashMap::new(),
                failed_inputs: BTreeMap::new(),
                redriving: false,
                pending_redrive: BTreeMap::new(),
                minutes: BTreeMap::new(),
                partials: HashMap::new(),
                holds: HashMap::new(),
            },
        );
        Ok(Registration::Created)
    }

    async fn record_published(&self, job: &JobId, mark: &PublishMark) -> Result<(), StoreError> {
        let mut state = self.lock();
        let job = state
            .jobs
            .get_mut(job)
            .ok_or_else(|| StoreError::Conflict(format!("unknown job {job}")))?;
        job.mark = mark.clone();
        if job.state == JobState::InputError {
            job.state = JobState::Publishing;
            job.status.error = None;
        }
        Ok(())
    }

    async fn finish_publishing(
        &self,
        job: &JobId,
        total_records: u64,
        total_chunks: u64,
        now_ms: u64,
    ) -> Result<JobState, StoreError> {
        let mut state = self.lock();
        let job = state
            .jobs
            .get_mut(job)
            .ok_or_else(|| StoreError::Conflict(format!("unknown job {job}")))?;
        job.status.total = Some(total_records);
        job.status.total_chunks = Some(total_chunks);
        if !job.state.is_terminal() {
            job.state = JobState::Running;
            job.status.error = None;
        }
        finish_if_done(job, now_ms);
        Ok(job.state)
    }

    async fn record_input_error(&self, job: &JobId, message: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(job) = state.jobs.get_mut(job) {
            job.state = JobState::InputError;
            job.status.error = Some(message.to_string());
        }
        Ok(())
    }

    async fn job_spec(&self, job: &JobId) -> Result<Option<String>, StoreError> {
        Ok(self.lock().jobs.get(job).map(|j| j.spec.clone()))
    }

    async fn is_committed(&self, job: &JobId, chunk: u64) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .jobs
            .get(job)
            .is_some_and(|j| j.committed.contains(&chunk)))
    }

    async fn uncommitted_chunks(&self, job: &JobId, total: u64) -> Result<Vec<u64>, StoreError> {
        let state = self.lock();
        let committed = state.jobs.get(job).map(|j| &j.committed);
        Ok((0..total)
            .filter(|c| !committed.is_some_and(|set| set.contains(c)))
            .collect())
    }

    async fn commit_chunk(&self, commit: &ChunkCommit) -> Result<CommitStatus, StoreError> {
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(&commit.job) else {
            return Ok(CommitStatus::UnknownJob);
        };
        if job.committed.contains(&commit.chunk) {
            return Ok(CommitStatus::AlreadyCommitted);
        }
        // Check every spliced row's chunk before changing anything, as the script does.
        let mut spliced = HashMap::new();
        for sp in &commit.splices {
            let current = spliced
                .get(&sp.chunk)
                .or_else(|| job.results.get(&sp.chunk));
            let Some(next) = current.and_then(|v| splice_row(v, sp.pos, &sp.row)) else {
                return Ok(CommitStatus::UnknownJob);
            };
            spliced.insert(sp.chunk, next);
        }
        job.committed.insert(commit.chunk);
        job.partials.remove(&commit.chunk);
        job.holds.remove(&commit.chunk);
        if commit.splices.is_empty() {
            job.results.insert(commit.chunk, commit.results.clone());
        }
        job.results.extend(spliced);
        for (pos, input) in &commit.failed_inputs {
            job.failed_inputs
                .insert((commit.chunk, *pos), input.clone());
        }
        for sp in commit.splices.iter().filter(|sp| sp.ok) {
            job.failed_inputs.remove(&(sp.chunk, sp.pos));
        }
        let t = &commit.tally;
        let s = &mut job.status;
        bump(&mut s.done, t.done);
        bump(&mut s.ok, t.ok);
        bump(&mut s.failed, t.failed);
        bump(&mut s.cancelled, t.cancelled);
        bump(&mut s.retries, t.retries);
        bump(&mut s.latency_sum_ms, t.latency_sum_ms);
        s.chunks_done += 1;
        for (code, n) in &t.by_status {
            bump(s.by_status.entry(code.to_string()).or_default(), *n);
        }
        for (kind, n) in &t.by_error {
            bump(s.by_error.entry((*kind).to_string()).or_default(), *n);
        }
        for (bucket, n) in &t.latency {
            bump(s.latency.entry(*bucket).or_default(), *n);
        }
        s.by_status.retain(|_, n| *n > 0);
        s.by_error.retain(|_, n| *n > 0);
        s.latency.retain(|_, n| *n > 0);
        s.first_commit_ms.get_or_insert(commit.now_ms);
        s.last_commit_ms = Some(commit.now_ms);
        s.recent.record(commit.now_ms, commit.finished);
        let minute = minute_of(s.created_ms, commit.now_ms);
        job.minutes.entry(minute).or_default().add(commit.finished);
        finish_if_done(job, commit.now_ms);
        Ok(CommitStatus::Committed(job.state))
    }

    async fn has_history(&self) -> Result<bool, StoreError> {
        Ok(!self.lock().jobs.is_empty())
    }

    async fn failed_inputs(
        &self,
        job: &JobId,
        cursor: u64,
    ) -> Result<(u64, Vec<FailedInput>), StoreError> {
        const PAGE: usize = 1000;
        let state = self.lock();
        let Some(job) = state.jobs.get(job) else {
            return Ok((0, Vec::new()));
        };
        let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
        let page: Vec<FailedInput> = job
            .failed_inputs
            .iter()
            .skip(skip)
            .take(PAGE)
            .map(|((chunk, pos), input)| FailedInput {
                chunk: *chunk,
                pos: *pos,
                input: input.clone(),
            })
            .collect();
        let next = if page.len() < PAGE {
            0
        } else {
            cursor + page.len() as u64
        };
        Ok((next, page))
    }

    async fn add_redrive_chunks(
        &self,
        job: &JobId,
        records: &[Vec<u8>],
        _now_ms: u64,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let job = state
            .jobs
            .get_mut(job)
            .ok_or_else(|| StoreError::Conflict(format!("unknown job {job}")))?;
        if !(job.state.is_terminal() || job.redriving) {
            return Err(StoreError::Conflict(format!(
                "job is {}; retry it once it has finished",
                job.state
            )));
        }
        let total_chunks = job.status.total_chunks.unwrap_or(0);
        let first = total_chunks + job.status.redrive_chunks;
        for (i, recs) in records.iter().enumerate() {
            job.pending_redrive.insert(first + i as u64, recs.clone());
        }
        job.status.redrive_chunks += records.len() as u64;
        job.redriving = true;
        // Sending the cancelled records again is the operator taking the cancel back.
        job.status.controls.cancel_ms = None;
        job.state = JobState::Running;
        job.status.finished_ms = None;
        Ok(first)
    }

    async fn pending_redrive(&self, job: &JobId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let state = self.lock();
        Ok(state
            .jobs
            .get(job)
            .filter(|j| j.redriving)
            .map(|j| {
                j.pending_redrive
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn end_redrive(&self, job: &JobId, now_ms: u64) -> Result<JobState, StoreError> {
        let mut state = self.lock();
        let job = state
            .jobs
            .get_mut(job)
            .ok_or_else(|| StoreError::Conflict(format!("unknown job {job}")))?;
        job.redriving = false;
        job.pending_redrive.clear();
        finish_if_done(job, now_ms);
        Ok(job.state)
    }

    async fn hold_chunk(
        &self,
        job: &JobId,
        chunk: u64,
        holder: &str,
        ttl: Duration,
    ) -> Result<HoldReply, StoreError> {
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(job) else {
            return Ok(HoldReply::UnknownJob);
        };
        if job.committed.contains(&chunk) {
            return Ok(HoldReply::Committed);
        }
        let now = Instant::now();
        if let Some((owner, until)) = job.holds.get(&chunk)
            && owner != holder
            && *until > now
        {
            return Ok(HoldReply::HeldElsewhere(*until - now));
        }
        job.holds.insert(chunk, (holder.to_string(), now + ttl));
        Ok(HoldReply::Taken)
    }

    async fn release_chunk(&self, job: &JobId, chunk: u64, holder: &str) -> Result<(), StoreError> {
        if let Some(job) = self.lock().jobs.get_mut(job)
            && job
                .holds
                .get(&chunk)
                .is_some_and(|(owner, _)| owner == holder)
        {
            job.holds.remove(&chunk);
        }
        Ok(())
    }

    async fn save_partial(
        &self,
        job: &JobId,
        chunk: u64,
        encoded: &[u8],
    ) -> Result<(), StoreError> {
        if let Some(job) = self.lock().jobs.get_mut(job)
            && !job.committed.contains(&chunk)
        {
            job.partials.insert(chunk, encoded.to_vec());
        }
        Ok(())
    }

    async fn partial(&self, job: &JobId, chunk: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .jobs
            .get(job)
            .and_then(|j| j.partials.get(&chunk).cloned()))
    }

    async fn control_job(
        &self,
        job: &JobId,
        change: ControlChange,
        now_ms: u64,
    ) -> Result<ControlReply, StoreError> {
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(job) else {
            return Ok(ControlReply::Unknown);
        };
        if job.state.is_terminal() {
            return Ok(ControlReply::Ended(job.state));
        }
        let controls = change.apply(job.status.controls, now_ms);
        job.status.controls = controls;
        Ok(ControlReply::Applied(controls))
    }

    async fn job_controls(&self, job: &JobId) -> Result<Option<JobControls>, StoreError> {
        Ok(self.lock().jobs.get(job).map(|j| j.status.controls))
    }

    async fn job_status(&self, job: &JobId) -> Result<Option<JobStatus>, StoreError> {
        Ok(self.lock().jobs.get(job).map(status_of))
    }

    async fn job_minutes(&self, job: &JobId) -> Result<Vec<(u64, Finished)>, StoreError> {
        Ok(self
            .lock()
            .jobs
            .get(job)
            .map(|j| j.minutes.iter().map(|(m, f)| (*m, *f)).collect())
            .unwrap_or_default())
    }

    async fn active_jobs(&self) -> Result<ActiveJobs, StoreError> {
        let active = self
            .lock()
            .jobs
            .iter()
            .filter(|(_, job)| !job.state.is_terminal())
            .map(|(id, job)| ActiveJob {
                id: id.clone(),
                weight: job.weight,
                paused: job.status.controls.paused_ms.is_some()
                    && job.status.controls.cancel_ms.is_none(),
            })
            .collect();
        // No index to keep here: nothing is dropped from it.
        Ok(ActiveJobs {
            active,
            ended: Vec::new(),
        })
    }

    async fn list_jobs(&self) -> Result<Vec<JobStatus>, StoreError> {
        let mut jobs: Vec<JobStatus> = self.lock().jobs.values().map(status_of).collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.created_ms));
        Ok(jobs)
    }

    async fn chunk_results(
        &self,
        job: &JobId,
        chunks: Range<u64>,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let state = self.lock();
        let job = state.jobs.get(job);
        Ok(chunks
            .map(|c| job.and_then(|j| j.results.get(&c).cloned()))
            .collect())
    }

    async fn heartbeat(&self, beat: &WorkerBeat) -> Result<(), StoreError> {
        self.lock().workers.insert(beat.id.clone(), beat.clone());
        Ok(())
    }

    async fn workers(&self, now_ms: u64, within_ms: u64) -> Result<Vec<WorkerBeat>, StoreError> {
        Ok(self
            .lock()
            .workers
            .values()
            .filter(|b| now_ms.saturating_sub(b.at_ms) <= within_ms)
            .cloned()
            .collect())
    }
}

fn status_of(job: &Job) -> JobStatus {
    let mut s = job.status.clone();
    s.state = job.state;
    s.published_chunks = job.mark.chunks;
    s.published_records = job.mark.records;
    s
}
