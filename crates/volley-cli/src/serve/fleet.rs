//! The fleet as a whole, for monitoring and autoscaling: `/metrics` (Prometheus text) and
//! `/api/pending` (the records still to do across the running jobs, for KEDA's
//! `metrics-api` scaler). Read fresh from Redis and the broker at every scrape; labels are
//! bounded (a job state, a worker state), no job or worker id.

use super::Dashboard;
use super::api::ApiError;
use crate::commands::jobs::{job_list, worker_list};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Json, Response};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use volley_core::time::now_ms;
use volley_core::{JobId, JobState};

/// What is left of the namespace's jobs that have not ended.
#[derive(Debug, serde::Serialize)]
pub(super) struct Pending {
    /// Records not yet done, over every job that has not ended (a job still publishing
    /// counts what it has published so far).
    pub records_pending: u64,
    /// Jobs that have not ended.
    pub jobs_active: u64,
    /// Of those, paused.
    pub jobs_paused: u64,
}

struct Fleet {
    pending: Pending,
    by_state: Vec<(JobState, u64)>,
    workers: Vec<(&'static str, u64)>,
    active: Vec<JobId>,
}

async fn read(d: &Dashboard) -> Result<Fleet, ApiError> {
    let now = now_ms();
    let jobs = job_list(&d.store, &[], now)
        .await
        .map_err(|e| super::api::store_down(d, e))?;
    let mut pending = Pending {
        records_pending: 0,
        jobs_active: 0,
        jobs_paused: 0,
    };
    let mut active = Vec::new();
    let mut by_state: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
    for view in &jobs {
        let s = &view.status;
        if let Some(slot) = by_state.iter_mut().find(|(st, _)| *st == s.state) {
            slot.1 += 1;
        }
        if view.terminal {
            continue;
        }
        pending.jobs_active += 1;
        pending.jobs_paused += u64::from(view.paused);
        let total = s.total.unwrap_or(s.published_records);
        pending.records_pending += total.saturating_sub(s.done);
        if let Ok(id) = JobId::parse(&s.job) {
            active.push(id);
        }
    }
    let beats = worker_list(&d.store, now)
        .await
        .map_err(|e| super::api::store_down(d, e))?;
    let mut workers: Vec<(&'static str, u64)> = Vec::new();
    for b in &beats {
        let name = b.state.as_str();
        match workers.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 += 1,
            None => workers.push((name, 1)),
        }
    }
    Ok(Fleet {
        pending,
        by_state,
        workers,
        active,
    })
}

pub(super) async fn pending(State(d): State<Arc<Dashboard>>) -> Result<Response, ApiError> {
    Ok(Json(read(&d).await?.pending).into_response())
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn family(registry: &mut Registry, name: &str, help: &str, label: &str, values: &[(String, u64)]) {
    let f: Family<Vec<(String, String)>, Gauge> = Family::default();
    for (v, n) in values {
        f.get_or_create(&vec![(label.to_string(), v.clone())])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(name, help, f);
}

pub(super) async fn metrics(State(d): State<Arc<Dashboard>>) -> Result<Response, ApiError> {
    let fleet = read(&d).await?;
    let mut registry = Registry::default();
    gauge(
        &mut registry,
        "volley_fleet_records_pending",
        "Records not yet done over the jobs that have not ended",
        fleet.pending.records_pending,
    );
    gauge(
        &mut registry,
        "volley_fleet_jobs_paused",
        "Jobs paused by volley pause",
        fleet.pending.jobs_paused,
    );
    let states: Vec<(String, u64)> = fleet
        .by_state
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), *n))
        .collect();
    family(
        &mut registry,
        "volley_fleet_jobs",
        "Jobs kept in Redis, by state",
        "state",
        &states,
    );
    let workers: Vec<(String, u64)> = fleet
        .workers
        .iter()
        .map(|(s, n)| ((*s).to_string(), *n))
        .collect();
    family(
        &mut registry,
        "volley_fleet_workers",
        "Workers seen in the last minutes, by state",
        "state",
        &workers,
    );
    // The broker's side: chunks waiting in the active jobs' queues, and the dead letters. A
    // broker that cannot be read leaves these out, and says so in a gauge.
    match d.broker.queue_counts(&fleet.active).await {
        Ok(counts) => {
            gauge(
                &mut registry,
                "volley_fleet_chunks_ready",
                "Chunk messages waiting in the active jobs' queues (not counting those workers hold)",
                u64::from(counts.chunks_ready),
            );
            gauge(
                &mut registry,
                "volley_fleet_dead_letters",
                "Messages in the namespace's dead-letter queue",
                u64::from(counts.dead),
            );
            gauge(
                &mut registry,
                "volley_fleet_broker_up",
                "Whether RabbitMQ answered this scrape",
                1,
            );
        }
        Err(_) => gauge(
            &mut registry,
            "volley_fleet_broker_up",
            "Whether RabbitMQ answered this scrape",
            0,
        ),
    }
    let mut text = String::new();
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    Ok(([(CONTENT_TYPE, volley_core::metrics::CONTENT_TYPE)], text).into_response())
}
