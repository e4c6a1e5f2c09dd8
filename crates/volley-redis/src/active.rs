//! The index of active jobs (`{ns}:active`, a set of ids): what every worker reads each
//! second to know which job queues to consume. It is kept beside the job keys, not by the
//! job's scripts: those touch only the job's own slot (Redis Cluster), and an index in
//! another slot cannot join them. So registering and redriving add the id after their
//! script, and whoever reads a terminal job in the index drops it.

use crate::keys::{JobKeys, active_index, fleet_channel};
use crate::status::parse_state;
use crate::store::RedisStore;
use volley_core::governor::FleetEvent;
use volley_core::{ActiveJob, ActiveJobs, JobId, JobState, StoreError, Weight};

/// Adds `job` to the index and tells the fleet (`FleetEvent::JobAdded`), so idle workers
/// follow it at once. Called after the job's state became non-terminal, so a reader that
/// drops it meanwhile (it read the old state) re-reads the state and puts it back.
pub(crate) async fn add(store: &RedisStore, job: &JobId) -> Result<(), StoreError> {
    let index = active_index(store.namespace());
    let channel = fleet_channel(store.namespace());
    let added = FleetEvent::JobAdded {
        job: job.to_string(),
    };
    let payload = serde_json::to_string(&added)
        .map_err(|e| StoreError::Corrupt(format!("fleet event: {e}")))?;
    store
        .with(|mut c| async move {
            redis::pipe()
                .sadd(&index, job.as_str())
                .ignore()
                .publish(&channel, &payload)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
}

/// The index's jobs that are not terminal, with their weights; terminal and forgotten jobs
/// are dropped from it (the terminal ones are named: their queues can go).
pub(crate) async fn read(store: &RedisStore) -> Result<ActiveJobs, StoreError> {
    let ns = store.namespace();
    let index = active_index(ns);
    let ids: Vec<String> = store
        .with(|mut c| {
            let index = index.clone();
            async move { redis::cmd("SMEMBERS").arg(&index).query_async(&mut c).await }
        })
        .await?;
    let jobs: Vec<JobId> = ids.iter().filter_map(|id| JobId::parse(id).ok()).collect();
    let states = states_of(store, &jobs).await?;
    let mut found = ActiveJobs::default();
    let mut gone = Vec::new();
    for (job, (state, weight, paused)) in jobs.into_iter().zip(states) {
        match state {
            Some(state) if !state.is_terminal() => found.active.push(ActiveJob {
                id: job,
                weight,
                paused,
            }),
            Some(_) => found.ended.push(job),
            None => gone.push(job),
        }
    }
    if !found.ended.is_empty() || !gone.is_empty() {
        let reopened = drop_ended(store, &[found.ended.as_slice(), &gone].concat()).await?;
        found.ended.retain(|job| !reopened.contains(job));
    }
    Ok(found)
}

/// Removes `ended` from the index, then reads their states again: a job reopened between
/// the first read and the removal (a redrive) goes back in, so no active job is lost from
/// the index (the redrive's own add may have come before the removal). Returns those.
async fn drop_ended(store: &RedisStore, ended: &[JobId]) -> Result<Vec<JobId>, StoreError> {
    let index = active_index(store.namespace());
    let ids: Vec<&str> = ended.iter().map(JobId::as_str).collect();
    store
        .with(|mut c| async move {
            redis::cmd("SREM")
                .arg(&index)
                .arg(&ids)
                .query_async::<()>(&mut c)
                .await
        })
        .await?;
    let mut reopened = Vec::new();
    for (job, (state, _, _)) in ended.iter().zip(states_of(store, ended).await?) {
        if state.is_some_and(|s| !s.is_terminal()) {
            add(store, job).await?;
            reopened.push(job.clone());
        }
    }
    Ok(reopened)
}

/// Each job's state (`None`: the store has no such job), weight and whether it is paused
/// (and not cancelled), in one round trip.
async fn states_of(
    store: &RedisStore,
    jobs: &[JobId],
) -> Result<Vec<(Option<JobState>, Weight, bool)>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ns = store.namespace();
    let mut pipe = redis::pipe();
    for job in jobs {
        pipe.cmd("HMGET")
            .arg(JobKeys::new(ns, job).meta)
            .arg("state")
            .arg("weight")
            .arg("paused_ms")
            .arg("cancel_ms");
    }
    type Row = (Option<String>, Option<u64>, Option<String>, Option<String>);
    let rows: Vec<Row> = store
        .with(|mut c| async move { pipe.query_async(&mut c).await })
        .await?;
    jobs.iter()
        .zip(rows)
        .map(|(job, (state, weight, paused, cancel))| {
            let state = state.map(|s| parse_state(job.as_str(), &s)).transpose()?;
            // Jobs registered before weights existed have none: the default.
            let weight = weight.and_then(Weight::new).unwrap_or_default();
            let set = |v: Option<String>| v.is_some_and(|v| !v.is_empty());
            Ok((state, weight, set(paused) && !set(cancel)))
        })
        .collect()
}
