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

/// A job that finished nothing for this long, and has not ended, is shown `stalled` (no
/// ETA). Long enough for one slow chunk: commits come per chunk, not per record.
pub const STALLED_AFTER_SECS: u64 = 30;

/// A status with the figures people ask for: rates, ETA, latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// The stored status.
    #[serde(flatten)]
    pub status: JobStatus,
    /// Records per second since the job was registered.
    pub rate: f64,
    /// Records per second over the last 10 s.
    pub rate_10s: f64,
    /// Records per second over the last minute.
    pub rate_1m: f64,
    /// Seconds left at the last minute's rate; `None` when ended, stalled or not known.
    pub eta_secs: Option<f64>,
    /// Seconds since anything finished, when that is [`STALLED_AFTER_SECS`] or more and the
    /// job has not ended.
    pub stalled_secs: Option<u64>,
    /// Median latency of the last attempts, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// Whether the job has ended.
    pub terminal: bool,
    /// When the job's data expires (ms since the epoch), once it has finished.
    pub expires_ms: Option<u64>,
    /// Workers of the namespace beating now (running or draining; `volley status` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_workers: Option<usize>,
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
        let ended = status.has_ended();
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
        let first = status.first_commit_ms;
        let rate_10s = status.recent.rate(now_ms, 10, first);
        let rate_1m = status.recent.rate(now_ms, 60, first);
        let quiet_secs =
            now_ms.saturating_sub(status.last_commit_ms.unwrap_or(status.created_ms)) / 1000;
        let stalled_secs = (!ended && quiet_secs >= STALLED_AFTER_SECS).then_some(quiet_secs);
        let eta_secs = match status.total {
            Some(total) if rate_1m > 0.0 && !ended && stalled_secs.is_none() => {
                Some(total.saturating_sub(status.done) as f64 / rate_1m)
            }
            _ => None,
        };
        Self {
            cancelling: status.cancelling(),
            paused: status.controls.paused_ms.is_some() && !terminal,
            now_ms,
            p50_ms: percentile_ms(&status.latency, 50.0),
            p95_ms: percentile_ms(&status.latency, 95.0),
            p99_ms: percentile_ms(&status.latency, 99.0),
            expires_ms: status.expires_ms(),
            status,
            rate,
            rate_10s,
            rate_1m,
            eta_secs,
            stalled_secs,
            terminal,
            live_workers: None,
            host: None,
            missing_chunks: None,
        }
    }

    /// `1234 / 5000 (24.7%)`, or `1234 / 1300+ (publishing)` before the total is known.
    pub fn progress(&self) -> String {
        let s = &self.status;
        match s.total {
            Some(total) => format!("{} / {total}{}", s.done, self.percent_text()),
            None => format!("{} / {}+ (publishing)", s.done, s.published_records),
        }
    }

    /// The share done, once the total is known.
    pub fn percent(&self) -> Option<f64> {
        let total = self.status.total.filter(|t| *t > 0)?;
        Some(self.status.done as f64 * 100.0 / total as f64)
    }

    fn percent_text(&self) -> String {
        self.percent()
            .map(|p| format!(" ({p:.1}%)"))
            .unwrap_or_default()
    }

    /// `120/s (10s)   118/s (1m)   eta 32.0s`, or `… stalled: nothing finished for 42s`.
    pub fn pace(&self) -> String {
        let mut out = format!("{:.0}/s (10s)   {:.0}/s (1m)", self.rate_10s, self.rate_1m);
        if let Some(quiet) = self.stalled_secs {
            out.push_str(&format!("   stalled: nothing finished for {quiet}s"));
        } else if let Some(eta) = self.eta_secs {
            out.push_str(&format!("   eta {}", duration(eta)));
        }
        out
    }

    /// `p50 12 ms   p95 40 ms   p99 80 ms`, once a request was made.
    pub fn latency(&self) -> Option<String> {
        let (p50, p95, p99) = (self.p50_ms?, self.p95_ms?, self.p99_ms?);
        Some(format!(
            "p50 {p50:.0} ms   p95 {p95:.0} ms   p99 {p99:.0} ms"
        ))
    }

    /// The labelled lines of the human view, in order; one figure more is one push more.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let s = &self.status;
        let mut lines = vec![
            ("job", escape(&s.job)),
            ("state", s.state.to_string()),
            (
                "records",
                format!(
                    "{} done   ok {}   failed {}{}   retries {}",
                    self.progress(),
                    s.ok,
                    s.failed,
                    self.cancelled_text(),
                    s.retries
                ),
            ),
        ];
        if let Some(line) = self.controls_line() {
            lines.push(("controls", line));
        }
        if !self.terminal {
            lines.push(("rate", self.pace()));
        } else {
            lines.push(("rate", format!("{:.0} records/s overall", self.rate)));
        }
        if let Some(latency) = self.latency() {
            lines.push(("latency", latency));
        }
        if let Some(n) = self.live_workers {
            lines.push(("workers", format!("{n} live")));
        }
        if let Some(host) = &self.host {
            lines.push(("host", host.text()));
        }
        if !s.by_status.is_empty() {
            lines.push(("statuses", counts(&s.by_status)));
        }
        if !s.by_error.is_empty() {
            lines.push(("errors", counts(&s.by_error)));
        }
        if let Some(error) = &s.error {
            lines.push(("input", escape(error)));
        }
        if let Some(at) = self.expires_ms {
            lines.push(("expires", expiry(at)));
        }
        if let Some(missing) = &self.missing_chunks {
            lines.push((
                "missing",
                format!(
                    "{} chunks ({}): not queued, held by no worker, and without outcome in Redis (Redis lost recent writes?)\n          republish them: volley-producer --spec SPEC --input INPUT --resume {} --missing",
                    missing.len(),
                    volley_core::render_list(missing, 10),
                    escape(&s.job)
                ),
            ));
        }
        lines
    }

    /// Aligned text for a terminal.
    pub fn text(&self) -> String {
        self.lines()
            .into_iter()
            .map(|(label, value)| format!("{label:<10}{value}\n"))
            .collect()
    }

    /// One line for a log or a pipe: `job J running 1234 / 5000 (24.7%) ok … · 120/s …`.
    pub fn line(&self) -> String {
        let s = &self.status;
        let mut out = format!(
            "job {} {}   {}   ok {}   failed {}{}   {}",
            escape(&s.job),
            s.state,
            self.progress(),
            s.ok,
            s.failed,
            self.cancelled_text(),
            self.pace()
        );
        if let Some(line) = self.controls_line() {
            out.push_str(&format!("   {line}"));
        }
        if let Some(latency) = self.latency() {
            out.push_str(&format!("   {latency}"));
        }
        if let Some(n) = self.live_workers {
            out.push_str(&format!("   workers {n}"));
        }
        if let Some(host) = &self.host {
            out.push_str(&format!("   breaker {}", host.breaker));
        }
        out
    }
}

/// `200: 950   503: 50`.
fn counts<K: std::fmt::Display>(map: &std::collections::BTreeMap<K, u64>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    parts.join("   ")
}

/// `in 6d23h (2026-12-09 13:46 UTC)`-style: how long until `at_ms`.
pub fn expiry(at_ms: u64) -> String {
    let left = at_ms.saturating_sub(volley_core::time::now_ms()) as f64 / 1000.0;
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms),
    );
    format!("in {} ({when})", duration(left))
}

impl StatusView {
    /// `   cancelled N`, once a cancel was asked or a record was cancelled.
    fn cancelled_text(&self) -> String {
        let s = &self.status;
        if s.cancelled > 0 || s.controls.cancel_ms.is_some() {
            format!("   cancelled {}", s.cancelled)
        } else {
            String::new()
        }
    }

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
    } else if secs < 86_400.0 {
        format!(
            "{}h{:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    } else {
        format!(
            "{}d{:02}h",
            (secs / 86_400.0) as u64,
            ((secs % 86_400.0) / 3600.0) as u64
        )
    }
}
