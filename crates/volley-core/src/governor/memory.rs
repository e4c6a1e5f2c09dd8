use super::fleet::{FleetEvent, FleetState, HostLimit, Reservation, gcra_reserve};
use crate::StoreError;
use crate::time::now_ms;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

#[derive(Default)]
struct Shared {
    tats: HashMap<String, f64>,
    pauses: HashMap<String, u64>,
    breakers: HashMap<String, super::StoredBreaker>,
    probes: HashMap<String, u64>,
    limits: HashMap<String, HostLimit>,
}

/// The fleet state of one process (the embedded default, and tests).
pub struct MemoryFleet {
    shared: Mutex<Shared>,
    events: broadcast::Sender<FleetEvent>,
}

impl Default for MemoryFleet {
    fn default() -> Self {
        Self {
            shared: Mutex::new(Shared::default()),
            events: broadcast::channel(1024).0,
        }
    }
}

impl MemoryFleet {
    /// An empty fleet state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a host's fleet-level limit.
    pub fn set_host_limit(&self, host: &str, limit: HostLimit) {
        self.lock().limits.insert(host.to_string(), limit);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Each critical section is a map update that cannot panic half-way.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FleetState for MemoryFleet {
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        n: u32,
        rate: f64,
        burst: u32,
    ) -> BoxFuture<'a, Result<Reservation, StoreError>> {
        Box::pin(async move {
            let now = now_ms() as f64;
            let mut shared = self.lock();
            let (tat, base) = gcra_reserve(shared.tats.get(key).copied(), now, n, rate, burst);
            shared.tats.insert(key.to_string(), tat);
            Ok(Reservation {
                base_ms: base,
                interval_ms: 1000.0 / rate,
                now_ms: now,
            })
        })
    }

    fn announce(&self, event: FleetEvent) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            {
                let mut shared = self.lock();
                match &event {
                    FleetEvent::Pause { host, until_ms } => {
                        let entry = shared.pauses.entry(host.clone()).or_default();
                        *entry = (*entry).max(*until_ms);
                    }
                    FleetEvent::Breaker { host, phase, cause } => {
                        let stored = super::StoredBreaker {
                            phase: *phase,
                            cause: cause.clone(),
                        };
                        shared.breakers.insert(host.clone(), stored);
                    }
                    // The controls live in the store: only the announcement travels.
                    FleetEvent::JobControl { .. } | FleetEvent::JobAdded { .. } => {}
                }
            }
            let _ = self.events.send(event);
            Ok(())
        })
    }

    fn try_probe<'a>(
        &'a self,
        host: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut shared = self.lock();
            match shared.probes.get(host) {
                Some(until) if *until > now => Ok(false),
                _ => {
                    shared.probes.insert(host.to_string(), now + ttl_ms);
                    Ok(true)
                }
            }
        })
    }

    fn current(&self) -> BoxFuture<'_, Result<Vec<FleetEvent>, StoreError>> {
        Box::pin(async move {
            let shared = self.lock();
            let mut out: Vec<FleetEvent> = shared
                .pauses
                .iter()
                .map(|(host, until)| FleetEvent::Pause {
                    host: host.clone(),
                    until_ms: *until,
                })
                .collect();
            out.extend(
                shared
                    .breakers
                    .iter()
                    .map(|(host, stored)| FleetEvent::Breaker {
                        host: host.clone(),
                        phase: stored.phase,
                        cause: stored.cause.clone(),
                    }),
            );
            Ok(out)
        })
    }

    fn host_limits(&self) -> BoxFuture<'_, Result<HashMap<String, HostLimit>, StoreError>> {
        Box::pin(async move { Ok(self.lock().limits.clone()) })
    }

    fn events(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }
}
