//! The store look-ups the job commands share (`status`, `results`, `retry`), so a job that is
//! not there ends each of them the same way: exit 2, `no job JOB in namespace NS`.

use super::unavailable;
use crate::exit::{self, Failure};
use volley_core::{JobId, JobSpec, JobStatus, Store};
use volley_runtime::Settings;

/// The job's status.
///
/// # Errors
/// A usage [`Failure`] when there is no such job, an unavailable one when Redis is down.
pub(crate) async fn job_status<S: Store>(
    settings: &Settings,
    store: &S,
    job: &JobId,
) -> Result<JobStatus, Failure> {
    store
        .job_status(job)
        .await
        .map_err(|e| unavailable(settings, e))?
        .ok_or_else(|| no_job(settings, job))
}

/// The job's stored spec.
///
/// # Errors
/// As [`job_status`], and an internal [`Failure`] when the stored text is not a spec.
pub(crate) async fn job_spec<S: Store>(
    settings: &Settings,
    store: &S,
    job: &JobId,
) -> Result<JobSpec, Failure> {
    let text = store
        .job_spec(job)
        .await
        .map_err(|e| unavailable(settings, e))?
        .ok_or_else(|| no_job(settings, job))?;
    JobSpec::from_toml(&text)
        .map_err(|e| Failure::new(exit::INTERNAL, format!("stored spec of {job}: {e}")))
}

fn no_job(settings: &Settings, job: &JobId) -> Failure {
    Failure::new(
        exit::USAGE,
        format!("no job {job} in namespace {}", settings.namespace),
    )
}
