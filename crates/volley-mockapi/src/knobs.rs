use serde::Deserialize;
use std::time::Duration;

/// The query knobs of the user routes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Knobs {
    pub(crate) delay_ms: Option<u64>,
    pub(crate) jitter_ms: Option<u64>,
    pub(crate) fail_pct: Option<f64>,
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<String>,
    pub(crate) body_bytes: Option<usize>,
}

impl Knobs {
    pub(crate) fn delay(&self) -> Duration {
        let base = self.delay_ms.unwrap_or(0);
        let jitter = self.jitter_ms.map_or(0, |j| fastrand::u64(0..=j));
        Duration::from_millis(base + jitter)
    }

    /// Whether this request fails: with `fail_pct` by chance, or always when only `status`
    /// is given.
    pub(crate) fn fails(&self) -> bool {
        match (self.fail_pct, self.status) {
            (Some(pct), _) => fastrand::f64() * 100.0 < pct,
            (None, Some(_)) => true,
            (None, None) => false,
        }
    }
}
