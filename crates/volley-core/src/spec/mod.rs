//! The job spec: the user's single TOML file, parsed into typed config.
//!
//! Every error names the key it is about (`request.timeout: invalid duration 'ten'`), so a
//! user with a 40-line spec finds the mistake without reading code.

mod duration;
mod types;
mod validate;

pub use duration::SpecDuration;
pub use types::{
    BodyMode, BreakerSpec, ChunkingSpec, ConcurrencySpec, InputSpec, JobSpec, RequestSpec,
    ResultSpec, RetrySpec, SpecMethod, Weight,
};

/// Why a job spec was refused. The text always starts with the key path it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SpecError {
    /// Dotted key path, e.g. `request.timeout` (or `spec` for a syntax error).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl JobSpec {
    /// Parses and validates a spec from its TOML text.
    ///
    /// # Errors
    /// A [`SpecError`] naming the offending key: syntax errors, unknown keys, bad values,
    /// templates that do not compile.
    pub fn from_toml(text: &str) -> Result<JobSpec, SpecError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            SpecError::new("spec", format!("invalid TOML{at}: {msg}"))
        })?;
        let spec: JobSpec = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                "spec".to_string()
            } else {
                path
            };
            let message = e.inner().to_string();
            let first = message.lines().next().unwrap_or_default().to_string();
            SpecError::new(key, first)
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads, parses and validates a spec file.
    ///
    /// # Errors
    /// A [`SpecError`] for a file that cannot be read or a spec that is refused.
    pub fn from_file(path: &std::path::Path) -> Result<JobSpec, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpecError::new("spec", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text)
    }
}

#[cfg(test)]
mod tests;
