use crate::active;
use crate::conn::{Connections, RedisOptions};
use crate::keys::{JobKeys, active_index, jobs_index, namespace_marker, worker_key, workers_index};
use crate::scripts::{
    COMMIT, CONTROL, FINISH_PUBLISHING, FORGET, HOLD, INPUT_ERROR, PARTIAL, PUBLISHED, REDRIVE_ADD,
    REDRIVE_END, REGISTER,
};
use crate::status::{
    CONTROL_FIELDS, controls_of, job_status, minutes, parse_state, recent_seconds, ring_fields,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisError};
use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use volley_core::throughput::Finished;
use volley_core::{
    ActiveJobs, ChunkCommit, CommitStatus, ControlChange, ControlReply, FailedInput, HoldReply,
    JobControls, JobId, JobState, JobStatus, Namespace, NewJob, PublishMark, Registration, Store,
    StoreError, WorkerBeat,
};
use volley_runtime::Settings;

/// How long a worker's last beat is kept: long enough for `volley workers` to show a worker
/// that exited or died as such for a while after it went.
pub const WORKER_BEAT_KEPT_SECS: u64 = 600;

/// The job store on Redis. Cheap to clone; clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    ns: Namespace,
    conns: Arc<Connections>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("ns", &self.ns)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// A store for `ns`. Connects lazily, on the first command.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] for a URL that cannot be parsed.
    pub fn new(options: &RedisOptions, ns: Namespace) -> Result<Self, StoreError> {
        Ok(Self {
            ns,
            conns: Arc::new(Connections::new(options)?),
        })
    }

    /// Runs `lua/hold.lua`: takes or renews a hold for `ttl_ms`, or gives it up with 0.
    async fn hold(
        &self,
        job: &JobId,
        chunk: u64,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<String, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        self.run(|mut c| async move {
            HOLD.key(&keys.meta)
                .key(&keys.chunks)
                .key(&keys.holds)
                .arg(chunk)
                .arg(holder)
                .arg(ttl_ms)
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// The store the settings name (URL and namespace): the one way the binaries, the CLI
    /// and the test kit reach Redis. Connects lazily, on the first command.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] for a URL that cannot be parsed.
    pub fn from_settings(settings: &Settings) -> Result<Self, StoreError> {
        Self::new(
            &RedisOptions::from_settings(settings),
            settings.namespace.clone(),
        )
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// Runs one operation with the shared connection and the command deadline; a broken
    /// connection is replaced for the next call.
    pub(crate) async fn with<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.run(op).await
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let conn = self.conns.get().await?;
        match tokio::time::timeout(self.conns.timeout, op(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()
                {
                    self.conns.discard();
                }
                Err(unavailable(&e))
            }
            Err(_) => {
                self.conns.discard();
                Err(StoreError::Unavailable(format!(
                    "Redis did not answer within {:?}",
                    self.conns.timeout
                )))
            }
        }
    }

    /// Checks the server is reachable and warns about settings that can lose Volley's data:
    /// an eviction policy other than `noeviction`, and persistence off.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis does not answer.
    pub async fn check_server(&self) -> Result<Vec<String>, StoreError> {
        let config: HashMap<String, String> = self
            .run(|mut c| async move {
                let policy: HashMap<String, String> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                let aof: HashMap<String, String> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("appendonly")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                let _: String = redis::cmd("PING").query_async(&mut c).await?;
                Ok(policy.into_iter().chain(aof).collect())
            })
            .await?;
        let mut warnings = Vec::new();
        if let Some(policy) = config.get("maxmemory-policy")
            && policy != "noeviction"
        {
            warnings.push(format!(
                "Redis maxmemory-policy is '{policy}': Redis may evict job state under memory pressure; set it to 'noeviction'"
            ));
        }
        if config.get("appendonly").is_some_and(|v| v == "no") {
            warnings.push(
                "Redis runs without AOF (appendonly no): a Redis restart loses job state; use appendonly yes with appendfsync everysec or always in production".into(),
            );
        }
        Ok(warnings)
    }

    /// Deletes every key of a job (tests and `volley` clean-up).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete_job(&self, job: &JobId) -> Result<(), StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let index = jobs_index(&self.ns);
        let active = active_index(&self.ns);
        let id = job.to_string();
        self.run(|mut c| async move {
            let () = redis::pipe()
                .del(&keys.all())
                .ignore()
                .zrem(&index, &id)
                .ignore()
                .srem(&active, &id)
                .ignore()
                .query_async(&mut c)
                .await?;
            Ok(())
        })
        .await
    }

    /// The ids of every job registered in the namespace, whatever their stored state (so a
    /// corrupt job does not hide its queue from `volley namespace delete`).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn job_ids(&self) -> Result<Vec<JobId>, StoreError> {
        let index = jobs_index(&self.ns);
        let ids: Vec<String> = self
            .run(|mut c| async move { c.zrange(&index, 0, -1).await })
            .await?;
        Ok(ids.iter().filter_map(|id| JobId::parse(id).ok()).collect())
    }

    /// Deletes every key of the namespace, in batches of [`UNLINK_BATCH`] (`volley namespace
    /// delete` and test clean-up). Returns how many keys went.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete_namespace(&self) -> Result<u64, StoreError> {
        let pattern = format!("{}:*", self.ns);
        self.run(|mut c| async move {
            let mut keys: Vec<String> = Vec::new();
            {
                let mut iter: redis::AsyncIter<String> = redis::cmd("SCAN")
                    .cursor_arg(0)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(UNLINK_BATCH)
                    .clone()
                    .iter_async(&mut c)
                    .await?;
                while let Some(k) = iter.next_item().await {
                    keys.push(k?);
                }
            }
            let n = keys.len() as u64;
            for batch in keys.chunks(UNLINK_BATCH) {
                let () = c.unlink(batch).await?;
            }
            Ok(n)
        })
        .await
    }

    /// Deletes a job's data at once, refused while it runs.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] naming the state while the job runs (or for an unknown job).
    pub async fn forget_job(&self, job: &JobId) -> Result<(), StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let index = jobs_index(&self.ns);
        let id = job.to_string();
        let reply: String = self
            .run(|mut c| async move {
                let reply: String = FORGET.key(&keys.all()).invoke_async(&mut c).await?;
                if reply == "forgotten" {
                    // The index is in another hash slot: a second step, harmless if lost
                    // (`list_jobs` drops ids whose job is gone).
                    let () = c.zrem(&index, &id).await?;
                }
                Ok(reply)
            })
            .await?;
        match reply.as_str() {
            "forgotten" => Ok(()),
            "unknown_job" => Err(StoreError::Conflict(format!("unknown job {job}"))),
            other => match other.strip_prefix("busy:") {
                Some(state) => Err(StoreError::Conflict(format!(
                    "job {job} is {state}; forget it once it has ended"
                ))),
                None => Err(StoreError::Corrupt(format!("forget reply '{other}'"))),
            },
        }
    }

    /// What `volley verify` compares against the counters: committed-chunk marks, chunks
    /// with stored results, and the job's chunk size.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ledger(&self, job: &JobId) -> Result<Ledger, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let (marks, result_chunks, chunk_size): (u64, u64, Option<u64>) = self
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("BITCOUNT")
                    .arg(&keys.chunks)
                    .hlen(&keys.results)
                    .hget(&keys.meta, "chunk_size")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(Ledger {
            marks,
            result_chunks,
            chunk_size: chunk_size.unwrap_or(0),
        })
    }
}

/// Keys deleted per command, and scanned per step, when a namespace is deleted.
pub const UNLINK_BATCH: usize = 500;

/// A job's bookkeeping beside its counters (see [`RedisStore::ledger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ledger {
    /// Chunks marked committed.
    pub marks: u64,
    /// Chunks with a stored results value.
    pub result_chunks: u64,
    /// Records per chunk.
    pub chunk_size: u64,
}

impl Store for RedisStore {
    async fn register_job(&self, job: &NewJob) -> Result<Registration, StoreError> {
        let keys = JobKeys::new(&self.ns, &job.id);
        let index = jobs_index(&self.ns);
        let marker = namespace_marker(&self.ns);
        let reply: Vec<String> = self
            .run(|mut c| async move {
                let reply: Vec<String> = REGISTER
                    .key(&keys.meta)
                    .arg(&job.spec_toml)
                    .arg(&job.name)
                    .arg(&job.input)
                    .arg(job.chunk_size)
                    .arg(job.tolerated_failure_percent)
                    .arg(job.retention_secs)
                    .arg(job.now_ms)
                    .arg(if job.resume_only { "1" } else { "0" })
                    .arg(job.weight.get())
                    .invoke_async(&mut c)
                    .await?;
                if reply.first().map(String::as_str) == Some("created") {
                    let () = c.zadd(&index, job.id.as_str(), job.now_ms).await?;
                    let () = redis::cmd("SET")
                        .arg(&marker)
                        .arg(job.now_ms)
                        .arg("NX")
                        .query_async(&mut c)
                        .await?;
                }
                Ok(reply)
            })
            .await?;
        // A resumed job (after an input error) is active again too; a terminal one is
        // dropped by the next reader.
        if matches!(
            reply.first().map(String::as_str),
            Some("created" | "resume")
        ) {
            active::add(self, &job.id).await?;
        }
        match reply.first().map(String::as_str) {
            Some("created") => Ok(Registration::Created),
            Some("unknown") => Ok(Registration::Unknown),
            Some("conflict") => Err(StoreError::Conflict(format!(
                "job {} exists with a different spec; use a new --job-id",
                job.id
            ))),
            Some("resume") if reply.len() == 5 => Ok(Registration::Resume {
                state: parse_state(job.id.as_str(), &reply[1])?,
                mark: PublishMark {
                    chunks: reply[2].parse().unwrap_or(0),
                    records: reply[3].parse().unwrap_or(0),
                    input_digest: reply[4].clone(),
                },
            }),
            _ => Err(StoreError::Corrupt(format!("register reply {reply:?}"))),
        }
    }

    async fn record_published(&self, job: &JobId, mark: &PublishMark) -> Result<(), StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        self.run(|mut c| async move {
            let _: i64 = PUBLISHED
                .key(&keys.meta)
                .arg(mark.chunks)
                .arg(mark.records)
                .arg(&mark.input_digest)
                .invoke_async(&mut c)
                .await?;
            Ok(())
        })
        .await
    }

    async fn finish_publishing(
        &self,
        job: &JobId,
        total_records: u64,
        total_chunks: u64,
        now_ms: u64,
    ) -> Result<JobState, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let state: String = self
            .run(|mut c| async move {
                FINISH_PUBLISHING
                    .key(&keys.all())
                    .arg(total_records)
                    .arg(total_chunks)
                    .arg(now_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if state == "unknown_job" {
            return Err(StoreError::Conflict(format!("unknown job {job}")));
        }
        parse_state(job.as_str(), &state)
    }

    async fn record_input_error(&self, job: &JobId, message: &str) -> Result<(), StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        self.run(|mut c| async move {
            let _: i64 = INPUT_ERROR
                .key(&keys.meta)
                .arg(message)
                .invoke_async(&mut c)
                .await?;
            Ok(())
        })
        .await
    }

    async fn job_spec(&self, job: &JobId) -> Result<Option<String>, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        self.run(|mut c| async move { c.hget(&keys.meta, "spec").await })
            .await
    }

    async fn is_committed(&self, job: &JobId, chunk: u64) -> Result<bool, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let offset = usize::try_from(chunk).unwrap_or(usize::MAX);
        self.run(|mut c| async move { c.getbit(&keys.chunks, offset).await })
            .await
    }

    async fn uncommitted_chunks(&self, job: &JobId, total: u64) -> Result<Vec<u64>, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let bits: Vec<u8> = self
            .run(|mut c| async move { c.get(&keys.chunks).await })
            .await?;
        // Bit i of the string is chunk i, most significant bit first (SETBIT's order).
        Ok((0..total)
            .filter(|&c| {
                let byte = usize::try_from(c / 8).ok().and_then(|i| bits.get(i));
                byte.is_none_or(|b| b & (0x80 >> (c % 8)) == 0)
            })
            .collect())
    }

    async fn commit_chunk(&self, commit: &ChunkCommit) -> Result<CommitStatus, StoreError> {
        let keys = JobKeys::new(&self.ns, &commit.job);
        let fields = commit.tally.fields();
        let reply: String = self
            .run(|mut c| async move {
                let mut call = COMMIT.key(&keys.all());
                call.arg(commit.chunk)
                    .arg(&commit.results[..])
                    .arg(commit.now_ms)
                    .arg(fields.len());
                for (field, delta) in &fields {
                    call.arg(field).arg(delta);
                }
                call.arg(commit.failed_inputs.len());
                for (pos, input) in &commit.failed_inputs {
                    call.arg(pos).arg(&input[..]);
                }
                call.arg(commit.splices.len());
                for sp in &commit.splices {
                    call.arg(sp.chunk)
                        .arg(sp.pos)
                        .arg(&sp.row[..])
                        .arg(if sp.ok { "1" } else { "0" });
                }
                call.arg(commit.finished.done).arg(commit.finished.failed);
                call.invoke_async(&mut c).await
            })
            .await?;
        match reply.as_str() {
            "already" => Ok(CommitStatus::AlreadyCommitted),
            "unknown_job" | "out_of_range" => Ok(CommitStatus::UnknownJob),
            other => match other.strip_prefix("ok:") {
                Some(state) => Ok(CommitStatus::Committed(parse_state(
                    commit.job.as_str(),
                    state,
                )?)),
                None => Err(StoreError::Corrupt(format!("commit reply '{other}'"))),
            },
        }
    }

    async fn has_history(&self) -> Result<bool, StoreError> {
        let marker = namespace_marker(&self.ns);
        self.run(|mut c| async move { c.exists(&marker).await })
            .await
    }

    async fn failed_inputs(
        &self,
        job: &JobId,
        cursor: u64,
    ) -> Result<(u64, Vec<FailedInput>), StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let (next, page): (u64, Vec<(String, Vec<u8>)>) = self
            .run(|mut c| async move {
                redis::cmd("HSCAN")
                    .arg(&keys.failed)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut out = Vec::with_capacity(page.len());
        for (field, input) in page {
            let parsed = field
                .split_once(':')
                .and_then(|(c, p)| Some((c.parse().ok()?, p.parse().ok()?)));
            let Some((chunk, pos)) = parsed else {
                return Err(StoreError::Corrupt(format!("failed-input field '{field}'")));
            };
            out.push(FailedInput { chunk, pos, input });
        }
        Ok((next, out))
    }

    async fn add_redrive_chunks(
        &self,
        job: &JobId,
        records: &[Vec<u8>],
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let reply: String = self
            .run(|mut c| async move {
                let mut call = REDRIVE_ADD.key(&keys.all());
                call.arg(now_ms);
                for recs in records {
                    call.arg(&recs[..]);
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        if reply == "unknown_job" {
            return Err(StoreError::Conflict(format!("unknown job {job}")));
        }
        if let Some(state) = reply.strip_prefix("busy:") {
            return Err(StoreError::Conflict(format!(
                "job is {state}; retry it once it has finished"
            )));
        }
        // The job is running again: workers must follow its queue.
        active::add(self, job).await?;
        reply
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("redrive reply '{reply}'")))
    }

    async fn pending_redrive(&self, job: &JobId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let (redriving, plan): (Option<String>, HashMap<u64, Vec<u8>>) = self
            .run(|mut c| async move {
                redis::pipe()
                    .hget(&keys.meta, "redriving")
                    .hgetall(&keys.redrive)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if redriving.is_none() {
            return Ok(Vec::new());
        }
        let mut plan: Vec<(u64, Vec<u8>)> = plan.into_iter().collect();
        plan.sort_by_key(|(i, _)| *i);
        Ok(plan)
    }

    async fn end_redrive(&self, job: &JobId, now_ms: u64) -> Result<JobState, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let reply: String = self
            .run(|mut c| async move {
                REDRIVE_END
                    .key(&keys.all())
                    .arg(now_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if reply == "unknown_job" {
            return Err(StoreError::Conflict(format!("unknown job {job}")));
        }
        parse_state(job.as_str(), &reply)
    }

    async fn hold_chunk(
        &self,
        job: &JobId,
        chunk: u64,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<HoldReply, StoreError> {
        // At least a millisecond: 0 asks the script to give the hold up.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply = self.hold(job, chunk, holder, ttl_ms).await?;
        match reply.as_str() {
            "taken" => Ok(HoldReply::Taken),
            "committed" => Ok(HoldReply::Committed),
            "unknown_job" => Ok(HoldReply::UnknownJob),
            other => match other.strip_prefix("held:").and_then(|ms| ms.parse().ok()) {
                Some(ms) => Ok(HoldReply::HeldElsewhere(std::time::Duration::from_millis(
                    ms,
                ))),
                None => Err(StoreError::Corrupt(format!("hold reply '{other}'"))),
            },
        }
    }

    async fn release_chunk(&self, job: &JobId, chunk: u64, holder: &str) -> Result<(), StoreError> {
        self.hold(job, chunk, holder, 0).await.map(drop)
    }

    async fn save_partial(
        &self,
        job: &JobId,
        chunk: u64,
        encoded: &[u8],
    ) -> Result<(), StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        self.run(|mut c| async move {
            PARTIAL
                .key(&keys.meta)
                .key(&keys.chunks)
                .key(&keys.partial)
                .arg(chunk)
                .arg(encoded)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(drop)
    }

    async fn partial(&self, job: &JobId, chunk: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        self.run(|mut c| async move { c.hget(&keys.partial, chunk).await })
            .await
    }

    async fn control_job(
        &self,
        job: &JobId,
        change: ControlChange,
        now_ms: u64,
    ) -> Result<ControlReply, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let (rate, concurrency) = match change {
            ControlChange::Limit { rate, concurrency } => (
                rate.map(|r| r.to_string()).unwrap_or_default(),
                concurrency.map(|n| n.to_string()).unwrap_or_default(),
            ),
            _ => (String::new(), String::new()),
        };
        let reply: Vec<String> = self
            .run(|mut c| async move {
                CONTROL
                    .key(&keys.meta)
                    .arg(change.as_str())
                    .arg(now_ms)
                    .arg(rate)
                    .arg(concurrency)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match reply.first().map(String::as_str) {
            Some("unknown") => Ok(ControlReply::Unknown),
            Some("ended") if reply.len() == 2 => {
                Ok(ControlReply::Ended(parse_state(job.as_str(), &reply[1])?))
            }
            Some("applied") if reply.len() == 5 => Ok(ControlReply::Applied(controls_of(
                &reply[1..].iter().cloned().map(Some).collect::<Vec<_>>(),
            ))),
            _ => Err(StoreError::Corrupt(format!(
                "job {job}: control reply {reply:?}"
            ))),
        }
    }

    async fn job_controls(&self, job: &JobId) -> Result<Option<JobControls>, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let (state, fields): (Option<String>, Vec<Option<String>>) = self
            .run(|mut c| async move {
                redis::pipe()
                    .hget(&keys.meta, "state")
                    .cmd("HMGET")
                    .arg(&keys.meta)
                    .arg(&CONTROL_FIELDS[..])
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(state.map(|_| controls_of(&fields)))
    }

    async fn job_status(&self, job: &JobId) -> Result<Option<JobStatus>, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        type Read = (
            HashMap<String, String>,
            HashMap<String, String>,
            Vec<Option<String>>,
        );
        let (meta, counters, ring): Read = self
            .run(|mut c| async move {
                redis::pipe()
                    .hgetall(&keys.meta)
                    .hgetall(&keys.counters)
                    .cmd("HMGET")
                    .arg(&keys.series)
                    .arg(ring_fields())
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let mut status = job_status(job.as_str(), &meta, &counters)?;
        status.recent = recent_seconds(&ring);
        Ok(Some(status))
    }

    async fn job_minutes(&self, job: &JobId) -> Result<Vec<(u64, Finished)>, StoreError> {
        let keys = JobKeys::new(&self.ns, job);
        let series: HashMap<String, String> = self
            .run(|mut c| async move { c.hgetall(&keys.series).await })
            .await?;
        Ok(minutes(series))
    }

    async fn active_jobs(&self) -> Result<ActiveJobs, StoreError> {
        active::read(self).await
    }

    async fn list_jobs(&self) -> Result<Vec<JobStatus>, StoreError> {
        let index = jobs_index(&self.ns);
        let ids: Vec<String> = self
            .run(|mut c| async move { c.zrevrange(&index, 0, 199).await })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for id in ids {
            let Ok(job) = JobId::parse(&id) else { continue };
            match self.job_status(&job).await? {
                Some(s) => out.push(s),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            // Finished jobs expire after their retention; drop them from the index too.
            let index = jobs_index(&self.ns);
            self.run(|mut c| async move { c.zrem::<_, _, ()>(&index, &gone).await })
                .await?;
        }
        Ok(out)
    }

    async fn chunk_results(
        &self,
        job: &JobId,
        chunks: Range<u64>,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let keys = JobKeys::new(&self.ns, job);
        let fields: Vec<u64> = chunks.collect();
        self.run(|mut c| async move {
            redis::cmd("HMGET")
                .arg(&keys.results)
                .arg(&fields)
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn heartbeat(&self, beat: &WorkerBeat) -> Result<(), StoreError> {
        let key = worker_key(&self.ns, &beat.id);
        let index = workers_index(&self.ns);
        let body = serde_json::to_string(beat).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.run(|mut c| async move {
            redis::pipe()
                .set_ex(&key, body, WORKER_BEAT_KEPT_SECS)
                .ignore()
                .zadd(&index, &beat.id, beat.at_ms)
                .ignore()
                .zrembyscore(&index, 0, beat.at_ms.saturating_sub(3_600_000))
                .ignore()
                // The index goes with the last beat it lists: a namespace whose workers have
                // all gone keeps no key of theirs.
                .expire(&index, WORKER_BEAT_KEPT_SECS as i64)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn workers(&self, now_ms: u64, within_ms: u64) -> Result<Vec<WorkerBeat>, StoreError> {
        let index = workers_index(&self.ns);
        let since = now_ms.saturating_sub(within_ms);
        let ids: Vec<String> = self
            .run(|mut c| async move { c.zrangebyscore(&index, since, "+inf").await })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| worker_key(&self.ns, id)).collect();
        let bodies: Vec<Option<String>> = self
            .run(|mut c| async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await })
            .await?;
        Ok(bodies
            .into_iter()
            .flatten()
            .filter_map(|b| serde_json::from_str(&b).ok())
            .collect())
    }
}
