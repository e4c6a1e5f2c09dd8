use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what the mock received.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Requests to the user routes.
    pub requests: u64,
    /// Requests per id (only with `track_ids`).
    pub per_id: BTreeMap<String, u64>,
}

/// Live counters. The total is one atomic add; per-id counts take a lock and are off unless
/// asked for, so the benchmark path stays lock-free.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    per_id: Option<Mutex<HashMap<String, u64>>>,
}

impl Counters {
    pub(crate) fn new(track_ids: bool) -> Self {
        Self {
            requests: AtomicU64::new(0),
            per_id: track_ids.then(|| Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn count(&self, id: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(map) = &self.per_id {
            *map.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.to_string())
                .or_default() += 1;
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let per_id = self
            .per_id
            .as_ref()
            .map(|m| {
                m.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            })
            .unwrap_or_default();
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            per_id,
        }
    }

    pub(crate) fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        if let Some(map) = &self.per_id {
            map.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}
