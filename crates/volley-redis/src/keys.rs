use volley_core::{JobId, Namespace};

/// The keys of one job. `{id}` is the Redis Cluster hash tag: all of them share a slot.
pub(crate) struct JobKeys {
    pub(crate) meta: String,
    pub(crate) counters: String,
    pub(crate) chunks: String,
    pub(crate) results: String,
    /// Failed records' inputs, `{chunk}:{pos}` → record, for `volley retry`.
    pub(crate) failed: String,
    /// Redrive chunks of a round being published, index → records.
    pub(crate) redrive: String,
    /// Throughput: `s{second % 120}` → `{second} {done} {failed}`, `m{minute}` →
    /// `{done} {failed}` (see `volley_core::throughput`).
    pub(crate) series: String,
    /// Outcomes of chunks returned unfinished, chunk → rows (see `volley_core::partial`).
    pub(crate) partial: String,
    /// Chunks being run, chunk → `{holder} {expires_ms}` (see `lua/hold.lua`).
    pub(crate) holds: String,
}

impl JobKeys {
    pub(crate) fn new(ns: &Namespace, job: &JobId) -> Self {
        let base = format!("{ns}:job:{{{job}}}");
        Self {
            meta: format!("{base}:meta"),
            counters: format!("{base}:counters"),
            chunks: format!("{base}:chunks"),
            results: format!("{base}:results"),
            failed: format!("{base}:failed"),
            redrive: format!("{base}:redrive"),
            series: format!("{base}:series"),
            partial: format!("{base}:partial"),
            holds: format!("{base}:holds"),
        }
    }

    /// In the order the Lua scripts expect them.
    pub(crate) fn all(&self) -> [&str; 9] {
        [
            &self.meta,
            &self.counters,
            &self.chunks,
            &self.results,
            &self.failed,
            &self.redrive,
            &self.series,
            &self.partial,
            &self.holds,
        ]
    }
}

/// Sorted set of job ids by creation time.
pub(crate) fn jobs_index(ns: &Namespace) -> String {
    format!("{ns}:jobs")
}

/// The pub/sub channel of fleet events (a job added, see `active.rs`).
pub(crate) fn fleet_channel(ns: &Namespace) -> String {
    format!("{ns}:fleet:events")
}

/// The set of active job ids (see `active.rs`).
pub(crate) fn active_index(ns: &Namespace) -> String {
    format!("{ns}:active")
}

/// Sorted set of worker ids by last heartbeat.
pub(crate) fn workers_index(ns: &Namespace) -> String {
    format!("{ns}:workers")
}

/// A worker's last heartbeat, expiring on its own.
pub(crate) fn worker_key(ns: &Namespace, id: &str) -> String {
    format!("{ns}:worker:{id}")
}

/// Set when the first job of a namespace is registered: a namespace with jobs in flight but
/// without this key is a Redis that lost its data.
pub(crate) fn namespace_marker(ns: &Namespace) -> String {
    format!("{ns}:since")
}

/// The namespace's schema: version, applied migrations and the migration lock (a hash).
pub(crate) fn schema_key(ns: &Namespace) -> String {
    format!("{ns}:schema")
}
