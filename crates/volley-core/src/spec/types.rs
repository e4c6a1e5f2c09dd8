use super::SpecDuration;
use crate::input::InputFormat;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// A whole job spec, as the user writes it in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JobSpec {
    /// A human name for the job; job ids start with it.
    pub name: String,
    /// The job's share of the fleet beside other running jobs (1 to 100, default 1).
    #[serde(default)]
    pub weight: Weight,
    /// How to read the record file.
    #[serde(default)]
    pub input: InputSpec,
    /// How records are grouped into broker messages.
    #[serde(default)]
    pub chunking: ChunkingSpec,
    /// The HTTP call made once per record.
    pub request: RequestSpec,
    /// How many calls are in flight.
    #[serde(default)]
    pub concurrency: ConcurrencySpec,
    /// When and how failed calls are tried again.
    #[serde(default)]
    pub retry: RetrySpec,
    /// What is kept of each response, and when the job counts as failed.
    #[serde(default)]
    pub result: ResultSpec,
    /// When calls to a failing host stop on every worker.
    #[serde(default)]
    pub breaker: BreakerSpec,
}

/// A job's weight: how many chunks of it a worker holds beside other jobs' (its prefetch
/// is the worker's `--prefetch` times the weight), and so its share of the worker's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight(u8);

impl Weight {
    /// The largest weight.
    pub const MAX: u8 = 100;

    /// A weight, if `value` is within 1..=100.
    pub fn new(value: u64) -> Option<Self> {
        u8::try_from(value)
            .ok()
            .filter(|w| (1..=Self::MAX).contains(w))
            .map(Self)
    }

    /// The weight as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Weight {
    fn default() -> Self {
        Self(1)
    }
}

impl std::fmt::Display for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        u64::try_from(value)
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "weight {value} is out of range (1 to {})",
                    Self::MAX
                ))
            })
    }
}

/// `[breaker]`: the fleet-wide circuit breaker of the job's host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BreakerSpec {
    /// Whether the breaker runs.
    pub enabled: bool,
    /// Failed calls (connection errors, timeouts, 5xx) in percent of the window's calls that
    /// open the breaker.
    pub failure_percent: f64,
    /// Calls in the window before the breaker may open.
    pub min_calls: u32,
    /// The sliding window the percentage is taken over.
    pub window: SpecDuration,
    /// How long the breaker stays open before one probe call tests the host.
    pub cooldown: SpecDuration,
    /// After a successful probe, traffic ramps from little to all over this long.
    pub ramp: SpecDuration,
    /// Once the breaker has been open this long, records fail fast with `breaker` and the
    /// host's last error (a later `volley retry JOB --only breaker` sends them again);
    /// probes go on. A minute by default: long enough to ride out a restart or a deploy,
    /// short enough that a host that is down ends the job in classified failures instead
    /// of holding it silently.
    pub max_wait: SpecDuration,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_percent: 50.0,
            min_calls: 20,
            window: SpecDuration(Duration::from_secs(10)),
            cooldown: SpecDuration(Duration::from_secs(5)),
            ramp: SpecDuration(Duration::from_secs(10)),
            max_wait: SpecDuration(Duration::from_secs(60)),
        }
    }
}

/// `[input]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct InputSpec {
    /// `jsonl` or `csv`; from the file extension when left out.
    pub format: Option<InputFormat>,
    /// The field holding the record id; the line number is used when a record lacks it.
    pub id_field: String,
    /// Largest accepted record (one JSONL line or CSV row), in bytes.
    pub max_record_bytes: usize,
}

impl Default for InputSpec {
    fn default() -> Self {
        Self {
            format: None,
            id_field: "id".into(),
            max_record_bytes: 1 << 20,
        }
    }
}

/// `[chunking]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ChunkingSpec {
    /// Records per broker message.
    pub size: u32,
}

impl Default for ChunkingSpec {
    fn default() -> Self {
        Self { size: 100 }
    }
}

/// An HTTP method the engine sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecMethod(pub http::Method);

impl<'de> Deserialize<'de> for SpecMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let method = match text.to_ascii_uppercase().as_str() {
            "GET" => http::Method::GET,
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "PATCH" => http::Method::PATCH,
            "DELETE" => http::Method::DELETE,
            "HEAD" => http::Method::HEAD,
            "OPTIONS" => http::Method::OPTIONS,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "unsupported method '{text}' (expected GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS)"
                )));
            }
        };
        Ok(SpecMethod(method))
    }
}

impl Default for SpecMethod {
    fn default() -> Self {
        SpecMethod(http::Method::GET)
    }
}

/// `[request]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RequestSpec {
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: SpecMethod,
    /// URL template: `{field}` placeholders in path segments and query values only.
    pub url: String,
    /// Header templates: `{field}` placeholders and `${env:VAR}` secrets in values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body template; a string that is exactly `"{f}"` keeps f's JSON type.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Deadline for one attempt: connect, send and read the whole response.
    #[serde(default = "default_timeout")]
    pub timeout: SpecDuration,
    /// Send `Idempotency-Key: {job}-{record id}` (default on for POST, PUT and PATCH).
    #[serde(default)]
    pub idempotency_key: Option<bool>,
}

fn default_timeout() -> SpecDuration {
    SpecDuration(Duration::from_secs(10))
}

impl RequestSpec {
    /// Whether the idempotency key header is sent for this request.
    pub fn sends_idempotency_key(&self) -> bool {
        self.idempotency_key.unwrap_or(matches!(
            self.method.0,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        ))
    }
}

/// `[concurrency]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ConcurrencySpec {
    /// Requests in flight per worker process for this job.
    pub per_worker: u32,
    /// Requests per second for this job across the whole fleet.
    pub rate_limit: Option<f64>,
    /// Requests that may go out at once above the steady rate (default: a tenth of a second's
    /// worth, at least 1).
    pub burst: Option<u32>,
    /// Adjust each worker's in-flight limit between 1 and `per_worker` from observed latency
    /// and throttling (AIMD).
    pub adaptive: bool,
}

impl ConcurrencySpec {
    /// The burst allowance for a rate.
    pub fn burst_for(&self, rate: f64) -> u32 {
        self.burst
            .unwrap_or_else(|| ((rate / 10.0).ceil() as u32).max(1))
    }
}

impl Default for ConcurrencySpec {
    fn default() -> Self {
        Self {
            per_worker: 64,
            rate_limit: None,
            burst: None,
            adaptive: false,
        }
    }
}

/// `[retry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RetrySpec {
    /// Attempts per record, the first included.
    pub max_attempts: u32,
    /// First backoff delay; doubles each attempt, with full jitter.
    pub base_delay: SpecDuration,
    /// Largest backoff delay.
    pub max_delay: SpecDuration,
    /// Status codes that are retried.
    pub on_status: Vec<u16>,
    /// Transport failures that are retried: any of `timeout`, `connect` (refused or reset),
    /// `dns`, `tls`, `request` (a response cut off mid-way).
    pub on_errors: Vec<String>,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: SpecDuration(Duration::from_millis(200)),
            max_delay: SpecDuration(Duration::from_secs(30)),
            on_status: vec![429, 500, 502, 503, 504],
            on_errors: ["timeout", "connect", "dns", "request"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// What is kept of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyMode {
    /// Nothing.
    None,
    /// The body as text (lossy UTF-8).
    Text,
    /// The body parsed as JSON.
    Json,
}

/// `[result]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ResultSpec {
    /// `none`, `text` or `json`.
    pub body: BodyMode,
    /// Bodies longer than this are cut and the record fails with `body_too_large`.
    pub max_body_bytes: usize,
    /// JSON pointers kept from a JSON body (all of it when empty).
    pub select: Vec<String>,
    /// Failed records (in percent of all) below which the job still counts as completed.
    pub tolerated_failure_percent: f64,
    /// How long the job's data (results, counters, kept inputs) is kept once it has
    /// finished; unset, the fleet's `retention` setting (`VOLLEY_RETENTION`, 7 days).
    pub retention: Option<SpecDuration>,
}

impl ResultSpec {
    /// Seconds the job's data is kept after it finishes: the spec's `retention`, else
    /// `fleet_default` (the settings' `retention`).
    pub fn retention_secs(&self, fleet_default: Duration) -> u64 {
        self.retention
            .map_or(fleet_default, SpecDuration::get)
            .as_secs()
    }
}

impl Default for ResultSpec {
    fn default() -> Self {
        Self {
            body: BodyMode::Json,
            max_body_bytes: 64 * 1024,
            select: Vec::new(),
            tolerated_failure_percent: 0.0,
            retention: None,
        }
    }
}
