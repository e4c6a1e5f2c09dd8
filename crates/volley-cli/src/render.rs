//! How jobs look to people (aligned text) and to machines (`--json`).

use crate::exit::Failure;
use serde::Serialize;
use volley_core::{JobStatus, percentile_ms};

/// Prints `value` as one line of JSON (`--json`).
///
/// # Errors
/// A [`Failure`] with `exit::INTERNAL` when `value` cannot be serialized.
pub(crate) fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let line = serde_json::to_string(value).map_err(anyhow::Error::from)?;
    volley_core::outln!("{line}");
    Ok(())
}

/// A status with the figures people ask for: rate, ETA, latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// The stored status.
    #[serde(flatten)]
    pub status: JobStatus,
    /// Records per second since the first commit.
    pub rate: f64,
    /// Seconds left at the current rate, when known.
    pub eta_secs: Option<f64>,
    /// Median latency of the last attempts, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// Whether the job has ended.
    pub terminal: bool,
    /// Whether a cancel was asked and chunks are still being settled.
    pub cancelling: bool,
    /// Whether the job is paused (`controls.paused_ms` says since when).
    pub paused: bool,
    /// When these figures were taken.
    #[serde(skip)]
    now_ms: u64,
    /// The job's target host as the fleet sees it (`volley status` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<crate::commands::hosts::HostView>,
    /// Chunks neither queued, held by a worker nor committed: acked by RabbitMQ and then
    /// lost by Redis (`volley status` only; the first 1,000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_chunks: Option<Vec<u64>>,
}

impl StatusView {
    /// Derives the figures from a status at time `now_ms`.
    pub fn new(status: JobStatus, now_ms: u64) -> Self {
        let terminal = status.state.is_terminal();
        let since = status.created_ms;
        let until = if terminal {
            status
                .finished_ms
                .or(status.last_commit_ms)
                .unwrap_or(now_ms)
        } else {
            now_ms
        };
        let secs = (until.saturating_sub(since) as f64 / 1000.0).max(0.001);
        let rate = status.done as f64 / secs;
        let eta_secs = match status.total {
            Some(total) if rate > 0.0 && !terminal => {
                Some(total.saturating_sub(status.done) as f64 / rate)
            }
            _ => None,
        };
        Self {
            cancelling: status.cancelling(),
            paused: status.controls.paused_ms.is_some() && !terminal,
            now_ms,
            p50_ms: percentile_ms(&status.latency, 50.0),
            p99_ms: percentile_ms(&status.latency, 99.0),
            status,
            rate,
            eta_secs,
            terminal,
            host: None,
            missing_chunks: None,
        }
    }

    /// Aligned text for a terminal.
    pub fn text(&self) -> String {
        let s = &self.status;
        let total = s.total.map_or_else(
            || format!("{}+ (publishing)", s.published_records),
            |t| t.to_string(),
        );
        let pct = s
            .total
            .filter(|t| *t > 0)
            .map(|t| format!(" ({:.1}%)", s.done as f64 * 100.0 / t as f64))
            .unwrap_or_default();
        let mut out = String::new();
        out.push_str(&format!("job       {}\n", escape(&s.job)));
        out.push_str(&format!("state     {}\n", s.state));
        let cancelled = if s.cancelled > 0 || s.controls.cancel_ms.is_some() {
            format!("   cancelled {}", s.cancelled)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "records   {} / {} done{pct}   ok {}   failed {}{cancelled}   retries {}\n",
            s.done, total, s.ok, s.failed, s.retries
        ));
        if let Some(line) = self.controls_line() {
            out.push_str(&format!("controls  {line}\n"));
        }
        let eta = self
            .eta_secs
            .map(|e| format!("   eta {}", duration(e)))
            .unwrap_or_default();
        out.push_str(&format!("rate      {:.0} records/s{eta}\n", self.rate));
        if let (Some(p50), Some(p99)) = (self.p50_ms, self.p99_ms) {
            out.push_str(&format!("latency   p50 {p50:.0} ms   p99 {p99:.0} ms\n"));
        }
        if let Some(host) = &self.host {
            out.push_str(&format!("host      {}\n", host.text()));
        }
        if !s.by_status.is_empty() {
            let codes: Vec<String> = s
                .by_status
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            out.push_str(&format!("statuses  {}\n", codes.join("   ")));
        }
        if !s.by_error.is_empty() {
            let kinds: Vec<String> = s
                .by_error
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            out.push_str(&format!("errors    {}\n", kinds.join("   ")));
        }
        if let Some(error) = &s.error {
            out.push_str(&format!("input     {}\n", escape(error)));
        }
        if let Some(missing) = &self.missing_chunks {
            out.push_str(&format!(
                "missing   {} chunks ({}): not queued, held by no worker, and without outcome in Redis (Redis lost recent writes?)\n          republish them: volley-producer --spec SPEC --input INPUT --resume {} --missing\n",
                missing.len(),
                volley_core::render_list(missing, 10),
                escape(&s.job)
            ));
        }
        out
    }
}

impl StatusView {
    /// What operators set, for people: a cancel under way, a pause and since when, the
    /// live limits. `None` when nothing is set.
    fn controls_line(&self) -> Option<String> {
        let s = &self.status;
        let c = &s.controls;
        let mut parts = Vec::new();
        if s.cancelling() {
            parts.push("cancel under way: unsent records end cancelled".to_string());
        }
        if let Some(since) = c.paused_ms {
            let secs = self.now_ms.saturating_sub(since) as f64 / 1000.0;
            parts.push(format!(
                "paused for {} (volley resume {})",
                duration(secs),
                escape(&s.job)
            ));
        }
        if c.rate.is_some() || c.concurrency.is_some() {
            parts.push(format!(
                "limits {}",
                crate::commands::control::describe_limits(c)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("   "))
    }
}

/// Escapes control characters, so ids and messages cannot rewrite an operator's terminal.
pub fn escape(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.escape_debug().to_string()
    } else {
        text.to_string()
    }
}

/// `1h02m`, `3m05s`, `4.2s`.
pub fn duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    }
}
