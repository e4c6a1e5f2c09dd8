use super::{JobSpec, SpecError};
use crate::template::RequestTemplate;

/// Largest accepted `result.max_body_bytes`: beyond it a thousand records in flight would hold
/// gigabytes.
pub(crate) const MAX_BODY_BYTES_CAP: usize = 16 * 1024 * 1024;
/// Error kinds `retry.on_errors` may list.
pub(crate) const RETRYABLE_ERRORS: &[&str] = &["timeout", "connect", "dns", "tls", "request"];
/// Largest accepted `chunking.size`.
pub(crate) const MAX_CHUNK_SIZE: u32 = 10_000;

impl JobSpec {
    /// Checks value ranges and compiles the templates (secrets are not resolved here: see
    /// [`JobSpec::check_secrets`]).
    ///
    /// # Errors
    /// A [`SpecError`] naming the first offending key.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.name.trim().is_empty() {
            return Err(SpecError::new("name", "must not be empty"));
        }
        if self.input.id_field.is_empty() {
            return Err(SpecError::new("input.id_field", "must not be empty"));
        }
        if self.input.max_record_bytes == 0 {
            return Err(SpecError::new(
                "input.max_record_bytes",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_CHUNK_SIZE).contains(&self.chunking.size) {
            return Err(SpecError::new(
                "chunking.size",
                format!(
                    "must be between 1 and {MAX_CHUNK_SIZE}, got {}",
                    self.chunking.size
                ),
            ));
        }
        if !(1..=100_000).contains(&self.concurrency.per_worker) {
            return Err(SpecError::new(
                "concurrency.per_worker",
                format!(
                    "must be between 1 and 100000, got {}",
                    self.concurrency.per_worker
                ),
            ));
        }
        if let Some(rate) = self.concurrency.rate_limit
            && (!rate.is_finite() || rate <= 0.0)
        {
            return Err(SpecError::new(
                "concurrency.rate_limit",
                "must be a positive number",
            ));
        }
        if !(1..=100).contains(&self.retry.max_attempts) {
            return Err(SpecError::new(
                "retry.max_attempts",
                format!("must be between 1 and 100, got {}", self.retry.max_attempts),
            ));
        }
        if self.retry.base_delay > self.retry.max_delay {
            return Err(SpecError::new(
                "retry.base_delay",
                "must not exceed retry.max_delay",
            ));
        }
        if let Some(bad) = self
            .retry
            .on_status
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            return Err(SpecError::new(
                "retry.on_status",
                format!("{bad} is not an HTTP status"),
            ));
        }
        if let Some(bad) = self
            .retry
            .on_errors
            .iter()
            .find(|e| !RETRYABLE_ERRORS.contains(&e.as_str()))
        {
            return Err(SpecError::new(
                "retry.on_errors",
                format!(
                    "'{bad}' is not a retryable error kind (expected any of {})",
                    RETRYABLE_ERRORS.join(", ")
                ),
            ));
        }
        if self.concurrency.burst == Some(0) {
            return Err(SpecError::new("concurrency.burst", "must be at least 1"));
        }
        let b = &self.breaker;
        if !(1.0..=100.0).contains(&b.failure_percent) {
            return Err(SpecError::new(
                "breaker.failure_percent",
                format!("must be between 1 and 100, got {}", b.failure_percent),
            ));
        }
        if b.window.get().is_zero() || b.cooldown.get().is_zero() {
            return Err(SpecError::new(
                "breaker.window",
                "breaker.window and breaker.cooldown must be above zero",
            ));
        }
        if self.request.timeout.get().is_zero() {
            return Err(SpecError::new("request.timeout", "must be above zero"));
        }
        if self.result.max_body_bytes == 0 || self.result.max_body_bytes > MAX_BODY_BYTES_CAP {
            return Err(SpecError::new(
                "result.max_body_bytes",
                format!(
                    "must be between 1 and {MAX_BODY_BYTES_CAP}, got {}",
                    self.result.max_body_bytes
                ),
            ));
        }
        if let Some(bad) = self.result.select.iter().find(|p| !p.starts_with('/')) {
            return Err(SpecError::new(
                "result.select",
                format!("'{bad}' is not a JSON pointer (they start with '/')"),
            ));
        }
        let tolerated = self.result.tolerated_failure_percent;
        if !(0.0..=100.0).contains(&tolerated) {
            return Err(SpecError::new(
                "result.tolerated_failure_percent",
                format!("must be between 0 and 100, got {tolerated}"),
            ));
        }
        if self
            .result
            .retention
            .is_some_and(|r| r.get().as_secs() < 60)
        {
            return Err(SpecError::new(
                "result.retention",
                "must be at least 1 minute (the results would be gone before anyone exports them)",
            ));
        }
        // Compile with a stand-in for every secret, so template errors show up here even on a
        // machine that does not hold the secrets.
        RequestTemplate::compile(&self.request, &|_| Some(String::new()))?;
        Ok(())
    }

    /// Checks that every `${env:VAR}` the spec uses is set in this process's environment.
    ///
    /// # Errors
    /// A [`SpecError`] naming the header whose secret is missing.
    pub fn check_secrets(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), SpecError> {
        RequestTemplate::compile(&self.request, env).map(|_| ())
    }
}
