use super::adaptive::AdaptiveLimit;
use super::classify::{AttemptClass, out_of_descriptors, transport_error};
use super::first_failures::FirstFailures;
use super::response::{BodyRead, Redactor, keep_body, keep_error_body, read_capped};
use super::slots::ResizableSlots;
use crate::governor::{Admission, Governor, JobLimits, Observation, host_key};
use crate::metrics;
use crate::pipeline::Processor;
use crate::template::{RecordView, RequestTemplate};
use crate::{
    BodyMode, ChunkRecord, ConcurrencySpec, ErrorKind, JobControls, JobId, JobSpec, LiveControls,
    RecordError, RecordOutcome, RetryPolicy, SpecError, parse_retry_after,
};
use http::{HeaderValue, Method};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// This job's slots on this worker (`concurrency.per_worker`, or a live `volley limit
/// --concurrency`), fixed or adaptive.
enum JobSlots {
    Fixed(ResizableSlots),
    Adaptive(Arc<AdaptiveLimit>),
}

impl JobSlots {
    fn resize(&self, size: usize) {
        match self {
            JobSlots::Fixed(slots) => slots.resize(size),
            JobSlots::Adaptive(limit) => limit.set_max(size),
        }
    }
}

/// Sends one job's records to its API. Built once per job per worker; shared by all records.
pub struct HttpProcessor {
    client: reqwest::Client,
    job: JobId,
    method: Method,
    template: RequestTemplate,
    timeout: Duration,
    retry: RetryPolicy,
    body_mode: BodyMode,
    select: Vec<String>,
    max_body_bytes: usize,
    idempotency_key: bool,
    /// The worker's slots, shared by every job it runs.
    worker_slots: Arc<Semaphore>,
    job_slots: JobSlots,
    governor: Arc<Governor>,
    limits: JobLimits,
    /// The spec's rate and concurrency, which `volley limit --clear` goes back to.
    spec_limits: ConcurrencySpec,
    /// The job's fleet rate limit now: (requests/s, burst).
    rate: RwLock<Option<(f64, u32)>>,
    /// Wakes the records waiting for a token at the old rate.
    rate_changed: tokio::sync::Notify,
    /// Cancel and pause, as the worker last read them.
    controls: LiveControls,
    host: String,
    /// Keeps `${env:VAR}` values out of stored bodies.
    redactor: Redactor,
    /// The spec's origin, parsed once; each record's path and query are joined to it.
    base: url::Url,
    /// Warns early when the job's first calls all fail the same way.
    first_failures: FirstFailures,
}

impl std::fmt::Debug for HttpProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProcessor")
            .field("job", &self.job)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
struct Attempt {
    status: Option<u16>,
    latency: Duration,
    result: Result<Option<serde_json::Value>, RecordError>,
    retry_after: Option<Duration>,
    /// The process ran out of file descriptors: neither the host's nor the record's fault.
    local_shortage: bool,
    /// The body of an error status, when `result.body` keeps bodies (and it fit the cap):
    /// kept with the record if this was its last attempt.
    error_body: Option<Vec<u8>>,
}

impl HttpProcessor {
    /// Compiles a job's request for sending. `env` resolves `${env:VAR}` secrets.
    ///
    /// # Errors
    /// A [`SpecError`] when a template does not compile or a secret is missing.
    pub fn new(
        client: reqwest::Client,
        job: JobId,
        spec: &JobSpec,
        env: &dyn Fn(&str) -> Option<String>,
        worker_slots: Arc<Semaphore>,
        governor: Arc<Governor>,
    ) -> Result<Self, SpecError> {
        let template = RequestTemplate::compile(&spec.request, env)?;
        let redactor = Redactor::new(&template.secrets());
        let per_worker = usize::try_from(spec.concurrency.per_worker)
            .unwrap_or(usize::MAX)
            .max(1);
        let origin = url::Url::parse(template.url.origin())
            .map_err(|e| SpecError::new("request.url", format!("invalid host: {e}")))?;
        let job_slots = if spec.concurrency.adaptive {
            JobSlots::Adaptive(Arc::new(AdaptiveLimit::new(per_worker)))
        } else {
            JobSlots::Fixed(ResizableSlots::new(per_worker))
        };
        let rate = spec
            .concurrency
            .rate_limit
            .map(|r| (r, spec.concurrency.burst_for(r)));
        let limits = JobLimits {
            job: job.to_string(),
            breaker: spec.breaker.clone(),
            max_pause: spec.retry.max_delay.get(),
        };
        Ok(Self {
            client,
            job,
            method: spec.request.method.0.clone(),
            template,
            timeout: spec.request.timeout.get(),
            retry: RetryPolicy::from(&spec.retry),
            body_mode: spec.result.body,
            select: spec.result.select.clone(),
            max_body_bytes: spec.result.max_body_bytes,
            idempotency_key: spec.request.sends_idempotency_key(),
            worker_slots,
            job_slots,
            governor,
            limits,
            spec_limits: spec.concurrency.clone(),
            rate: RwLock::new(rate),
            rate_changed: tokio::sync::Notify::new(),
            controls: LiveControls::default(),
            host: host_key(&origin),
            redactor,
            base: origin,
            first_failures: FirstFailures::default(),
        })
    }

    /// The job's cancel and pause as this worker knows them.
    pub fn controls(&self) -> &LiveControls {
        &self.controls
    }

    /// Takes the job's stored controls: a cancel or pause reaches every waiting record at
    /// once, a new rate the next token, a new concurrency the next slot.
    pub fn apply_controls(&self, controls: JobControls) {
        let Some(before) = self.controls.set(controls) else {
            return;
        };
        if before.rate != controls.rate {
            let rate = controls
                .rate
                .or(self.spec_limits.rate_limit)
                .map(|r| (r, self.spec_limits.burst_for(r)));
            *self.rate.write().unwrap_or_else(|p| p.into_inner()) = rate;
            self.rate_changed.notify_waiters();
        }
        if before.concurrency != controls.concurrency {
            let size = controls.concurrency.unwrap_or(self.spec_limits.per_worker);
            self.job_slots
                .resize(usize::try_from(size).unwrap_or(usize::MAX));
        }
        tracing::info!(
            job.id = %self.job,
            cancelled = controls.cancel_ms.is_some(),
            paused = controls.paused_ms.is_some(),
            rate = controls.rate,
            concurrency = controls.concurrency,
            "job controls changed"
        );
    }

    /// Renders the request for a record, without sending it.
    ///
    /// # Errors
    /// A `template` [`RecordError`].
    pub fn build(&self, record: &ChunkRecord) -> Result<reqwest::Request, RecordError> {
        let view = RecordView {
            id: &record.id,
            line: record.line,
            data: &record.data,
        };
        let template_error = |e: crate::TemplateError| RecordError {
            kind: ErrorKind::Template,
            message: e.to_string(),
        };
        let rendered = self.template.url.render(&view).map_err(template_error)?;
        // The origin is fixed by the spec: parse only the path and query against it, which
        // skips parsing (and IDNA-mapping) the host on every record.
        // (`//x` or `/\x` would be read as another host: those take the full parse.)
        let url = match rendered.strip_prefix(self.template.url.origin()) {
            Some(rest)
                if rest.starts_with('/')
                    && !matches!(rest.as_bytes().get(1), Some(b'/' | b'\\')) =>
            {
                self.base.join(rest)
            }
            _ => url::Url::parse(&rendered),
        }
        .map_err(|e| RecordError {
            kind: ErrorKind::Template,
            message: format!("request could not be built: {e}"),
        })?;
        let mut builder = self
            .client
            .request(self.method.clone(), url)
            .timeout(self.timeout);
        for header in &self.template.headers {
            let h = header.render(&view).map_err(template_error)?;
            builder = builder.header(h.name, h.value);
        }
        if self.idempotency_key {
            builder = builder.header("idempotency-key", idempotency_key(&self.job, &record.id));
        }
        if let Some(body) = &self.template.body {
            let value = body.render(&view).map_err(template_error)?;
            // Serializing a serde_json::Value cannot fail.
            let bytes = serde_json::to_vec(&value).unwrap_or_default();
            builder = builder
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        builder.build().map_err(|e| RecordError {
            kind: ErrorKind::Template,
            message: format!("request could not be built: {}", e.without_url()),
        })
    }

    async fn attempt(&self, request: reqwest::Request) -> Attempt {
        let started = Instant::now();
        let mut response = match self.client.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                return Attempt {
                    status: None,
                    latency: started.elapsed(),
                    local_shortage: out_of_descriptors(&e),
                    result: Err(transport_error(&e)),
                    retry_after: None,
                    error_body: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // A body nobody keeps is only read to free the connection for reuse: no buffer, no
        // copy.
        let discard = self.body_mode == BodyMode::None;
        let body = read_capped(&mut response, self.max_body_bytes, discard).await;
        let latency = started.elapsed();
        let mut error_body = None;
        let result = match body {
            Err(e) => Err(transport_error(&e)),
            Ok(read) if status.is_success() => self.success_body(read),
            Ok(_) if status.is_redirection() => Err(RecordError {
                kind: ErrorKind::Redirect,
                message: format!("HTTP {status}: redirect to another origin not followed"),
            }),
            // The status is the failure, whatever the body's size: an error body over the cap
            // is not kept, and does not hide the status behind `body_too_large`.
            Ok(read) => {
                if let BodyRead::Complete(bytes) = read
                    && !discard
                {
                    error_body = Some(bytes);
                }
                Err(RecordError {
                    kind: ErrorKind::Status,
                    message: format!("HTTP {status}"),
                })
            }
        };
        Attempt {
            status: Some(status.as_u16()),
            latency,
            local_shortage: false,
            result,
            retry_after,
            error_body,
        }
    }

    /// What a successful response keeps.
    fn success_body(&self, read: BodyRead) -> Result<Option<serde_json::Value>, RecordError> {
        match read {
            // A body nobody keeps may be as large as it likes; the record still succeeded.
            _ if self.body_mode == BodyMode::None => Ok(None),
            BodyRead::TooLarge => Err(RecordError {
                kind: ErrorKind::BodyTooLarge,
                message: format!(
                    "response body exceeds result.max_body_bytes ({})",
                    self.max_body_bytes
                ),
            }),
            BodyRead::Complete(bytes) => {
                keep_body(self.body_mode, &self.select, &self.redactor.redact(&bytes))
            }
        }
    }

    /// What a record that ends failed keeps of its last error response: the API's reason,
    /// under the same cap and redaction as a successful body.
    fn kept_error_body(&self, bytes: Option<Vec<u8>>) -> Option<serde_json::Value> {
        keep_error_body(self.body_mode, &self.redactor.redact(&bytes?))
    }

    /// Tells the early warning about an attempt that reached the API or failed trying.
    fn watch_first_calls(&self, attempt: &Attempt) {
        match &attempt.result {
            Ok(_) => self.first_failures.success(),
            Err(e) => {
                self.first_failures.failure(&self.host, e, attempt.status);
            }
        }
    }
}

impl Processor for HttpProcessor {
    fn job(&self) -> Option<&JobId> {
        Some(&self.job)
    }

    async fn process(&self, record: &ChunkRecord) -> RecordOutcome {
        let never = CancellationToken::new();
        let outcome = self.process_until(record, &never).await;
        // Only a fired token gives a record up.
        outcome.unwrap_or_else(|| unreachable_outcome(record))
    }

    async fn process_until(
        &self,
        record: &ChunkRecord,
        stop: &CancellationToken,
    ) -> Option<RecordOutcome> {
        let mut outcome = RecordOutcome {
            id: record.id.clone(),
            line: record.line,
            status: None,
            attempts: 0,
            latency_ms: 0,
            error: None,
            body: None,
        };
        match self.call(record, &mut outcome, stop).await {
            Ok(()) => {}
            Err(Refused::Outcome(e)) => outcome.error = Some(e),
            Err(Refused::GivenUp) => return None,
        }
        Some(outcome)
    }
}

/// Why a record has no outcome from the API.
enum Refused {
    /// Its outcome is this error (a template fails, the breaker gives up, a cancel).
    Outcome(RecordError),
    /// Its chunk is going back to the queue (`stop`) before it could send: no outcome.
    GivenUp,
}

impl From<RecordError> for Refused {
    fn from(e: RecordError) -> Self {
        Refused::Outcome(e)
    }
}

fn unreachable_outcome(record: &ChunkRecord) -> RecordOutcome {
    RecordOutcome::unsent(record, ErrorKind::Request, "record given up without a stop")
}

/// What the record does after an attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Its outcome is final.
    Done,
    /// Try again after this delay: the attempt counted.
    Retry(Duration),
    /// The request never left (no file descriptor): try again soon, spending no try.
    Again,
}

/// Both slots a request holds while it is in flight, taken in order: the job's, then the
/// worker's, which other jobs share. Dropping it frees both.
struct Admitted<'a> {
    admission: Admission,
    _job: Option<Slot>,
    _worker: tokio::sync::SemaphorePermit<'a>,
    _in_flight: metrics::InFlight,
}

impl HttpProcessor {
    /// Calls the API for one record until its outcome is final; an `Err` is the outcome's
    /// error when no attempt could be made (a template fails, the worker shuts down, the
    /// breaker gives up, the job is cancelled), or the record given up when `stop` fires
    /// while it waits to send (never while a request of it is in flight).
    async fn call(
        &self,
        record: &ChunkRecord,
        outcome: &mut RecordOutcome,
        stop: &CancellationToken,
    ) -> Result<(), Refused> {
        // Most records take one attempt: the first sends the rendered request as it is, and
        // only a retry renders it again (cheaper than cloning every first attempt).
        let mut rendered = Some(self.build(record)?);
        let mut spent = 0;
        loop {
            let request = match rendered.take() {
                Some(request) => request,
                None => self.build(record)?,
            };
            let admitted = tokio::select! {
                admitted = self.admit() => admitted?,
                () = stop.cancelled() => return Err(Refused::GivenUp),
            };
            let admission = admitted.admission;
            let attempt = self.attempt(request).await;
            drop(admitted);
            match self.settle(attempt, admission, &mut spent, outcome).await {
                Next::Done => return Ok(()),
                Next::Retry(delay) => {
                    // A cancel ends the backoff: the record settles `cancelled` at once.
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.controls.until_cancelled() => {}
                        () = stop.cancelled() => return Err(Refused::GivenUp),
                    }
                }
                Next::Again => {
                    // Wait for descriptors to free up (other requests finishing).
                    tokio::time::sleep(Duration::from_millis(50 + fastrand::u64(0..200))).await;
                }
            }
        }
    }

    /// Waits until the record may send: the job's pause, the host's pauses and the breaker
    /// first, so that a record backing off, paused or held by the breaker holds no slot;
    /// then the job's slot, the job's and host's rate tokens, and the worker's slot. A
    /// cancelled job's record gets no slot: it ends `cancelled`.
    async fn admit(&self) -> Result<Admitted<'_>, RecordError> {
        loop {
            self.wait_while_paused().await?;
            let admission = self.governor.admit(&self.host, &self.limits).await?;
            let job = match &self.job_slots {
                JobSlots::Fixed(s) => s.acquire().await.map(Slot::Fixed),
                JobSlots::Adaptive(a) => Some(Slot::Adaptive(a.acquire().await)),
            };
            // Tokens are taken with the job's slot held (so the request leaves at its
            // token's time) but before the worker-wide slot, which other jobs share.
            let rate = *self.rate.read().unwrap_or_else(|p| p.into_inner());
            tokio::select! {
                () = self.governor.tokens(&self.host, &self.limits, rate) => {}
                // A token of the old rate may be seconds away: take one of the new.
                () = self.rate_changed.notified() => continue,
            }
            let worker = self.worker_slots.acquire().await.map_err(|_| RecordError {
                kind: ErrorKind::Request,
                message: "worker is shutting down".into(),
            })?;
            // A pause or an open breaker that began while this record waited for its slot
            // holds it too: give the slots back and wait again.
            if admission == Admission::Normal && self.governor.blocked(&self.host, &self.limits) {
                continue;
            }
            // Likewise a cancel or pause of the job (a probe goes: the host waits for it).
            if admission == Admission::Normal
                && (self.controls.cancelled() || self.controls.paused())
            {
                continue;
            }
            return Ok(Admitted {
                admission,
                _job: job,
                _worker: worker,
                _in_flight: metrics::global().in_flight(),
            });
        }
    }

    /// Waits while the job is paused (holding nothing and spending no attempt).
    ///
    /// # Errors
    /// The `cancelled` outcome once the job is cancelled.
    async fn wait_while_paused(&self) -> Result<(), RecordError> {
        let mut since: Option<std::time::Instant> = None;
        let result = loop {
            if self.controls.cancelled() {
                break Err(RecordError {
                    kind: ErrorKind::Cancelled,
                    message: "job cancelled (volley cancel) before the request was sent".into(),
                });
            }
            if !self.controls.paused() {
                break Ok(());
            }
            since.get_or_insert_with(std::time::Instant::now);
            self.controls.changed().await;
        };
        if let Some(since) = since {
            metrics::global().waited(metrics::WaitReason::Pause, since.elapsed());
        }
        result
    }

    /// Tells the adaptive limit, the early warning and the governor what an attempt came
    /// to, writes it into the outcome, and decides what the record does next.
    async fn settle(
        &self,
        attempt: Attempt,
        admission: Admission,
        spent: &mut u32,
        outcome: &mut RecordOutcome,
    ) -> Next {
        if attempt.local_shortage {
            // Not an attempt: the request never left. Neither the host nor the record is
            // blamed, and no try is spent.
            warn_out_of_descriptors();
            return Next::Again;
        }
        metrics::global().http_request(attempt.status, attempt.latency);
        let error = attempt.result.as_ref().err();
        // Judged once; the adaptive limit, the governor and the retry policy read it.
        let class = AttemptClass::of(attempt.status, error);
        if let JobSlots::Adaptive(a) = &self.job_slots {
            a.record(attempt.latency, class.congested(), class.succeeded());
        }
        self.watch_first_calls(&attempt);
        let seen = Observation {
            class,
            error,
            retry_after: attempt.retry_after,
        };
        self.governor
            .observe(&self.host, admission, seen, &self.limits)
            .await;
        outcome.attempts += 1;
        // A failed probe tells about the host, not the record: the record that carried it
        // keeps its tries for when the host is back.
        if !(admission == Admission::Probe && attempt.result.is_err()) {
            *spent += 1;
        }
        outcome.status = attempt.status;
        outcome.latency_ms = u32::try_from(attempt.latency.as_millis()).unwrap_or(u32::MAX);
        match attempt.result {
            Ok(body) => {
                outcome.error = None;
                outcome.body = body;
                Next::Done
            }
            Err(error) => {
                let retry = *spent < self.retry.max_attempts.max(1) && self.retry.retries(class);
                outcome.error = Some(error);
                // Only the last attempt's body is kept: a record waiting to try again holds
                // no body meanwhile.
                if !retry {
                    outcome.body = self.kept_error_body(attempt.error_body);
                    return Next::Done;
                }
                metrics::global().retry();
                // A fleet-wide pause already makes the next admission wait out the
                // Retry-After; the computed backoff applies on top only without one.
                Next::Retry(match attempt.retry_after {
                    Some(_) if class.asks_to_back_off() => Duration::ZERO,
                    after => self.retry.delay(*spent + 1, after),
                })
            }
        }
    }
}

/// Says once a minute at most that the process is out of file descriptors.
fn warn_out_of_descriptors() {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = crate::time::now_ms();
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if now.saturating_sub(last) >= 60_000
        && LAST
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!(
            "out of file descriptors (too many open files): requests wait for connections to close; raise the open-file limit (ulimit -n) or lower --concurrency"
        );
    }
}

/// `{job}-{record id}`, the same on every attempt and every redelivery. Bytes a header cannot
/// carry are percent-encoded.
fn idempotency_key(job: &JobId, id: &str) -> HeaderValue {
    let encoded = percent_encoding::utf8_percent_encode(id, percent_encoding::CONTROLS);
    HeaderValue::from_str(&format!("{job}-{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A held job slot of either kind.
#[expect(dead_code, reason = "held only so that dropping it frees the slot")]
enum Slot {
    Fixed(tokio::sync::OwnedSemaphorePermit),
    Adaptive(super::adaptive::AdaptivePermit),
}
