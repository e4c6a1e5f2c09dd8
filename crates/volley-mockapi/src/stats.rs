use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A snapshot of what the mock received.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Requests to the user routes.
    pub requests: u64,
    /// Requests per id (only with `track_ids`).
    pub per_id: BTreeMap<String, u64>,
    /// Arrival time of each user-route request, in ms since the unix epoch, in arrival order
    /// (only with `track_times`).
    #[serde(default)]
    pub times_ms: Vec<u64>,
    /// Arrival time of each user-route request answered with a knob failure (`status`,
    /// `fail_pct`, `fail_first`; not the outage), in arrival order (only with `track_times`).
    #[serde(default)]
    pub failures_ms: Vec<u64>,
    /// Arrival times per id, in arrival order (only with both `track_ids` and `track_times`).
    #[serde(default)]
    pub per_id_times_ms: BTreeMap<String, Vec<u64>>,
    /// User-route requests being answered right now.
    #[serde(default)]
    pub in_flight: u64,
    /// The most user-route requests answered at once since the start (or the last reset):
    /// what a client's concurrency bound looks like from the API's side.
    #[serde(default)]
    pub in_flight_max: u64,
}

/// Live counters. The total and the in-flight gauge are atomics; per-id counts and arrival times take a lock
/// and are off unless asked for, so the benchmark path stays lock-free. The `fail_first`
/// counts take a lock only for requests that carry the knob.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    in_flight_max: AtomicU64,
    per_id: Option<Mutex<HashMap<String, u64>>>,
    /// Arrival times per id, when ids and times are both tracked.
    per_id_times: Option<Mutex<HashMap<String, Vec<u64>>>>,
    times: Option<Mutex<Vec<u64>>>,
    failures: Option<Mutex<Vec<u64>>>,
    fail_first: Mutex<HashMap<String, u64>>,
    /// The status every user route answers while an outage is on; 0 when off.
    outage: AtomicU16,
    /// The serving slots of the `capacity` knob, one pool per capacity asked for.
    capacity: Mutex<HashMap<u32, Arc<Semaphore>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a push or a map update: a poisoned lock holds good data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Counters {
    pub(crate) fn new(track_ids: bool, track_times: bool) -> Self {
        Self {
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            in_flight_max: AtomicU64::new(0),
            per_id: track_ids.then(|| Mutex::new(HashMap::new())),
            per_id_times: (track_ids && track_times).then(|| Mutex::new(HashMap::new())),
            times: track_times.then(|| Mutex::new(Vec::new())),
            failures: track_times.then(|| Mutex::new(Vec::new())),
            fail_first: Mutex::new(HashMap::new()),
            outage: AtomicU16::new(0),
            capacity: Mutex::new(HashMap::new()),
        }
    }

    /// User-route requests being answered right now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Waits for one of `n` serving slots (the `capacity` knob); served until the permit drops.
    pub(crate) async fn serve_slot(&self, n: u32) -> Option<OwnedSemaphorePermit> {
        let pool = lock(&self.capacity)
            .entry(n)
            .or_insert_with(|| Arc::new(Semaphore::new(n as usize)))
            .clone();
        pool.acquire_owned().await.ok()
    }

    /// Notes a user-route request being answered until the guard drops (also when the
    /// client hangs up and the handler is dropped mid-way).
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        // A load first: the read-modify-write happens only when the maximum moves.
        if now > self.in_flight_max.load(Ordering::Relaxed) {
            self.in_flight_max.fetch_max(now, Ordering::Relaxed);
        }
        InFlight(self)
    }

    /// Counts a user-route request; returns its arrival time when times are tracked.
    pub(crate) fn count(&self, id: &str) -> Option<u64> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let arrived = self.times.as_ref().map(|times| {
            // Read the clock under the lock so the list is in arrival order.
            let mut times = lock(times);
            let now = now_ms();
            times.push(now);
            now
        });
        if let Some(map) = &self.per_id {
            *lock(map).entry(id.to_string()).or_default() += 1;
        }
        if let (Some(map), Some(at)) = (&self.per_id_times, arrived) {
            lock(map).entry(id.to_string()).or_default().push(at);
        }
        arrived
    }

    /// Notes that the request that arrived at `arrived` was answered with a knob failure.
    pub(crate) fn failed(&self, arrived: Option<u64>) {
        if let (Some(failures), Some(at)) = (&self.failures, arrived) {
            let mut failures = lock(failures);
            let pos = failures.partition_point(|t| *t <= at);
            failures.insert(pos, at);
        }
    }

    /// Counts a request carrying `fail_first` for `id`; returns its 1-based number.
    pub(crate) fn nth_for(&self, id: &str) -> u64 {
        let mut map = lock(&self.fail_first);
        let n = map.entry(id.to_string()).or_default();
        *n += 1;
        *n
    }

    pub(crate) fn outage(&self) -> Option<u16> {
        match self.outage.load(Ordering::Relaxed) {
            0 => None,
            code => Some(code),
        }
    }

    pub(crate) fn set_outage(&self, status: Option<u16>) {
        self.outage.store(status.unwrap_or(0), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let per_id = self
            .per_id
            .as_ref()
            .map(|m| lock(m).iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        let times_ms = self
            .times
            .as_ref()
            .map(|t| lock(t).clone())
            .unwrap_or_default();
        let failures_ms = self
            .failures
            .as_ref()
            .map(|t| lock(t).clone())
            .unwrap_or_default();
        let per_id_times_ms = self
            .per_id_times
            .as_ref()
            .map(|m| {
                lock(m)
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            per_id,
            times_ms,
            failures_ms,
            per_id_times_ms,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            in_flight_max: self.in_flight_max.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        // The gauge itself is live; its maximum starts again from what is in flight now.
        self.in_flight_max
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
        if let Some(map) = &self.per_id {
            lock(map).clear();
        }
        if let Some(map) = &self.per_id_times {
            lock(map).clear();
        }
        for list in [&self.times, &self.failures].into_iter().flatten() {
            lock(list).clear();
        }
        lock(&self.fail_first).clear();
    }
}

/// One user-route request in flight; see [`Counters::enter`].
pub(crate) struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
