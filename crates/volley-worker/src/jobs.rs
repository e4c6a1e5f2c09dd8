use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, Semaphore};
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

/// Compiled jobs, loaded from the store once per job.
pub(crate) struct JobCache {
    client: reqwest::Client,
    worker_slots: Arc<Semaphore>,
    governor: Arc<Governor>,
    jobs: Mutex<HashMap<JobId, Arc<JobEntry>>>,
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
        }
    }

    /// The job, or `None` when the store does not know it.
    /// Drops a job whose state the store no longer has, so its next chunk asks again.
    pub(crate) async fn forget(&self, job: &JobId) {
        self.jobs.lock().await.remove(job);
    }

    /// The jobs this worker has loaded.
    pub(crate) async fn known(&self) -> Vec<JobId> {
        self.jobs.lock().await.keys().cloned().collect()
    }

    pub(crate) async fn get<S: Store>(
        &self,
        store: &S,
        job: &JobId,
    ) -> Result<Option<Arc<JobEntry>>, StoreError> {
        if let Some(entry) = self.jobs.lock().await.get(job) {
            return Ok(Some(entry.clone()));
        }
        let Some(spec_text) = store.job_spec(job).await? else {
            return Ok(None);
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
            Ok(processor) => JobEntry::Ready(Arc::new(processor)),
            Err(e) => {
                tracing::error!(job.id = %job, error.message = %e, "job spec cannot run on this worker");
                JobEntry::Broken(e.to_string())
            }
        };
        let entry = Arc::new(entry);
        self.jobs.lock().await.insert(job.clone(), entry.clone());
        Ok(Some(entry))
    }
}
