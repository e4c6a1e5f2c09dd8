//! The jobs a worker has met: each job's spec is loaded from the store once and compiled
//! into one [`HttpProcessor`], shared by every chunk of the job on this worker, with the
//! job's controls (cancel, pause, limits) as stored when it was loaded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OnceCell, Semaphore};
use volley_core::governor::Governor;
use volley_core::template::process_env;
use volley_core::{HttpProcessor, JobId, JobSpec, Store, StoreError};

/// What a worker knows of a job.
pub(crate) enum JobEntry {
    /// Ready to process records.
    Ready(Arc<HttpProcessor>),
    /// The stored spec does not work on this worker (e.g. a secret missing here): every
    /// record fails with this reason, so the job still ends and says why.
    Broken(String),
}

/// One job's slot in the cache: filled once, by the first delivery of the job to get here;
/// the deliveries arriving meanwhile wait for that load instead of building processors
/// (and semaphores) of their own, so the job's `per_worker` bound is one bound.
type JobSlot = Arc<OnceCell<Arc<JobEntry>>>;

/// Why a job was not loaded. Neither outcome is kept: the next delivery asks the store again.
enum NotLoaded {
    /// The store does not know the job.
    Unknown,
    /// The store could not be asked.
    Store(StoreError),
}

/// Compiled jobs, loaded from the store once per job.
pub(crate) struct JobCache {
    client: reqwest::Client,
    worker_slots: Arc<Semaphore>,
    governor: Arc<Governor>,
    jobs: Mutex<HashMap<JobId, JobSlot>>,
    /// When a delivery last asked for each job: the controls of jobs in use are re-read
    /// every second, not those of every job the worker ever met.
    used: std::sync::Mutex<HashMap<JobId, Instant>>,
}

impl JobCache {
    pub(crate) fn new(
        client: reqwest::Client,
        worker_slots: Arc<Semaphore>,
        governor: Arc<Governor>,
    ) -> Self {
        Self {
            client,
            worker_slots,
            governor,
            jobs: Mutex::new(HashMap::new()),
            used: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The loaded processors of jobs a delivery asked for within `within`.
    pub(crate) async fn in_use(&self, within: Duration) -> Vec<(JobId, Arc<HttpProcessor>)> {
        let recent: Vec<JobId> = {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            used.retain(|_, at| at.elapsed() <= within);
            used.keys().cloned().collect()
        };
        let mut out = Vec::with_capacity(recent.len());
        for job in recent {
            if let Some(processor) = self.processor(&job).await {
                out.push((job, processor));
            }
        }
        out
    }

    /// The job's processor, if it is loaded and runs here.
    pub(crate) async fn processor(&self, job: &JobId) -> Option<Arc<HttpProcessor>> {
        let slot = self.jobs.lock().await.get(job).cloned()?;
        match slot.get()?.as_ref() {
            JobEntry::Ready(processor) => Some(processor.clone()),
            JobEntry::Broken(_) => None,
        }
    }

    /// Drops a job whose state the store no longer has, so its next chunk asks again.
    pub(crate) async fn forget(&self, job: &JobId) {
        self.jobs.lock().await.remove(job);
    }

    /// The jobs this worker has loaded.
    #[cfg(test)]
    pub(crate) async fn known(&self) -> Vec<JobId> {
        self.jobs
            .lock()
            .await
            .iter()
            .filter(|(_, slot)| slot.initialized())
            .map(|(job, _)| job.clone())
            .collect()
    }

    /// The job, or `None` when the store does not know it. Concurrent first deliveries of a
    /// job share one load and one processor.
    pub(crate) async fn get<S: Store>(
        &self,
        store: &S,
        job: &JobId,
    ) -> Result<Option<Arc<JobEntry>>, StoreError> {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.clone(), Instant::now());
        let slot = self.slot(job).await;
        match slot.get_or_try_init(|| self.load(store, job)).await {
            Ok(entry) => Ok(Some(entry.clone())),
            Err(not_loaded) => {
                self.drop_if_unused(job, &slot).await;
                match not_loaded {
                    NotLoaded::Unknown => Ok(None),
                    NotLoaded::Store(e) => Err(e),
                }
            }
        }
    }

    /// The job's slot, made empty if the job is new here.
    async fn slot(&self, job: &JobId) -> JobSlot {
        self.jobs
            .lock()
            .await
            .entry(job.clone())
            .or_default()
            .clone()
    }

    /// Removes a slot left empty by a failed load, unless another delivery holds it (that
    /// one is loading or about to: removing it then would let a third build a second
    /// processor). Slots are handed out only under the map's lock, so the count is exact.
    async fn drop_if_unused(&self, job: &JobId, slot: &JobSlot) {
        let mut jobs = self.jobs.lock().await;
        if let Some(held) = jobs.get(job)
            && Arc::ptr_eq(held, slot)
            && !held.initialized()
            && Arc::strong_count(held) == 2
        {
            jobs.remove(job);
        }
    }

    /// Reads the job's spec and controls and compiles it; a spec that cannot run here is a
    /// `Broken` entry (kept: it will not start working by itself). The controls are read
    /// before the first record runs, so a worker started during a pause or after a cancel
    /// sends nothing.
    async fn load<S: Store>(&self, store: &S, job: &JobId) -> Result<Arc<JobEntry>, NotLoaded> {
        let spec_text = match store.job_spec(job).await {
            Ok(Some(text)) => text,
            Ok(None) => return Err(NotLoaded::Unknown),
            Err(e) => return Err(NotLoaded::Store(e)),
        };
        let entry = match JobSpec::from_toml(&spec_text).and_then(|spec| {
            HttpProcessor::new(
                self.client.clone(),
                job.clone(),
                &spec,
                &process_env,
                self.worker_slots.clone(),
                self.governor.clone(),
            )
        }) {
            Ok(processor) => {
                match store.job_controls(job).await {
                    Ok(Some(controls)) => processor.apply_controls(controls),
                    Ok(None) => return Err(NotLoaded::Unknown),
                    Err(e) => return Err(NotLoaded::Store(e)),
                }
                JobEntry::Ready(Arc::new(processor))
            }
            Err(e) => {
                tracing::error!(job.id = %job, error.message = %e, "job spec cannot run on this worker");
                JobEntry::Broken(e.to_string())
            }
        };
        Ok(Arc::new(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_core::NewJob;
    use volley_core::governor::MemoryFleet;
    use volley_core::memory::MemoryStore;

    fn cache() -> JobCache {
        JobCache::new(
            reqwest::Client::new(),
            Arc::new(Semaphore::new(8)),
            Governor::start(Arc::new(MemoryFleet::new())),
        )
    }

    async fn register(store: &MemoryStore, job: &JobId) {
        let spec = "name = \"j\"\n[request]\nurl = \"http://127.0.0.1:9/users/{id}\"\n";
        store
            .register_job(&NewJob {
                id: job.clone(),
                name: "j".into(),
                spec_toml: spec.into(),
                input: "in.jsonl".into(),
                chunk_size: 10,
                tolerated_failure_percent: 0.0,
                retention_secs: 60,
                weight: volley_core::Weight::default(),
                now_ms: 1,
                resume_only: false,
            })
            .await
            .expect("memory store registers");
    }

    fn ready(entry: &Option<Arc<JobEntry>>) -> Arc<JobEntry> {
        let entry = entry.clone().expect("job known");
        assert!(matches!(entry.as_ref(), JobEntry::Ready(_)));
        entry
    }

    #[tokio::test]
    async fn an_unknown_job_is_asked_again_and_loaded_once_known() {
        let (cache, store) = (cache(), MemoryStore::new());
        let job = JobId::parse("later-1").expect("valid id");
        assert!(
            cache
                .get(&store, &job)
                .await
                .expect("no store error")
                .is_none()
        );
        assert!(cache.known().await.is_empty(), "nothing kept for it");
        register(&store, &job).await;
        let first = ready(&cache.get(&store, &job).await.expect("no store error"));
        let again = ready(&cache.get(&store, &job).await.expect("no store error"));
        assert!(Arc::ptr_eq(&first, &again), "one processor per job");
        assert_eq!(cache.known().await, vec![job]);
    }

    #[tokio::test]
    async fn a_forgotten_job_is_loaded_again() {
        let (cache, store) = (cache(), MemoryStore::new());
        let job = JobId::parse("lost-1").expect("valid id");
        register(&store, &job).await;
        let first = ready(&cache.get(&store, &job).await.expect("no store error"));
        cache.forget(&job).await;
        assert!(cache.known().await.is_empty());
        let reloaded = ready(&cache.get(&store, &job).await.expect("no store error"));
        assert!(!Arc::ptr_eq(&first, &reloaded));
    }
}
