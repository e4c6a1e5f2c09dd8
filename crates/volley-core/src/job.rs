//! Names that travel between processes: job ids, namespaces and job states.

use std::fmt;

/// A job id: 1–100 characters of letters, digits, `.`, `_` and `-`. Parsed once at the edge,
/// then trusted (it becomes part of queue message ids and Redis keys).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// Validates a job id.
    ///
    /// # Errors
    /// A message saying which rule the id breaks.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 100 {
            return Err(format!(
                "job id must be 1 to 100 characters, got {}",
                text.len()
            ));
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "job id '{}' may only hold letters, digits, '.', '_' and '-'",
                text.escape_default()
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// A new id from the job name, the time and a random suffix: `enrich-users-20261125-0412-x7k2`.
    pub fn generate(name: &str, now_unix_secs: u64) -> Self {
        let stem: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(60)
            .collect();
        let stem = stem.trim_matches('-');
        let stem = if stem.is_empty() { "job" } else { stem };
        let (y, mo, d, h, mi) = civil_from_unix(now_unix_secs);
        let suffix: String = (0..4)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        Self(format!("{stem}-{y:04}{mo:02}{d:02}-{h:02}{mi:02}-{suffix}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        JobId::parse(&value)
    }
}

impl From<JobId> for String {
    fn from(value: JobId) -> Self {
        value.0
    }
}

/// Days-from-civil inverse (Howard Hinnant's algorithm), so ids need no date crate.
fn civil_from_unix(secs: u64) -> (i64, u32, u32, u32, u32) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let to_u32 = |v: i64| u32::try_from(v).unwrap_or(0);
    let rem = u32::try_from(rem).unwrap_or(0);
    (y, to_u32(m), to_u32(d), rem / 3600, (rem % 3600) / 60)
}

/// A namespace: the prefix of every queue and Redis key, so many deployments (and tests)
/// share one broker and one Redis without seeing each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Validates a namespace: 1–64 characters of letters, digits, `.`, `_` and `-`.
    ///
    /// # Errors
    /// A message naming the rule broken.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty()
            || text.len() > 64
            || !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "namespace '{}' must be 1 to 64 letters, digits, '.', '_' or '-'",
                text.escape_default()
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self("volley".into())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life. Stored, printed and serialized by its snake_case name
/// ([`JobState::as_str`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// The producer is publishing chunks; workers may already process them.
    #[default]
    Publishing,
    /// Every chunk is published; workers are processing.
    Running,
    /// The producer stopped at a malformed record; published chunks still run. Fix the input
    /// and re-run the producer with `--resume JOB` to continue.
    InputError,
    /// Every record succeeded.
    Completed,
    /// Every record has an outcome and the failures are within the tolerated percentage.
    CompletedWithFailures,
    /// Every record has an outcome and the failures are above the tolerated percentage.
    Failed,
    /// Cancelled (`volley cancel`): every chunk is settled, and the records not sent before
    /// the cancel have the outcome `cancelled` (`volley retry` sends them).
    Cancelled,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: &'static [JobState] = &[
        JobState::Publishing,
        JobState::Running,
        JobState::InputError,
        JobState::Completed,
        JobState::CompletedWithFailures,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The state's name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Publishing => "publishing",
            JobState::Running => "running",
            JobState::InputError => "input_error",
            JobState::Completed => "completed",
            JobState::CompletedWithFailures => "completed_with_failures",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored state name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "publishing" => JobState::Publishing,
            "running" => JobState::Running,
            "input_error" => JobState::InputError,
            "completed" => JobState::Completed,
            "completed_with_failures" => JobState::CompletedWithFailures,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::CompletedWithFailures
                | JobState::Failed
                | JobState::Cancelled
        )
    }

    /// The terminal state for a job whose records all have an outcome: `cancelled` while any
    /// record is still cancelled, else by the failures against the tolerated percentage.
    /// (`finish.lua` decides the same for Redis.)
    pub fn finished(failed: u64, cancelled: u64, total: u64, tolerated_percent: f64) -> Self {
        if cancelled > 0 {
            JobState::Cancelled
        } else if failed == 0 {
            JobState::Completed
        } else if total > 0 && (failed as f64) * 100.0 / (total as f64) <= tolerated_percent {
            JobState::CompletedWithFailures
        } else {
            JobState::Failed
        }
    }
}

impl fmt::Display for JobState {
    /// The name, honouring width and alignment (`{:<24}` in `volley jobs`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_serializes_parses_and_prints_as_its_stored_name() {
        for &state in JobState::ALL {
            let name = state.as_str();
            assert_eq!(
                serde_json::to_string(&state).ok(),
                Some(format!("\"{name}\""))
            );
            assert_eq!(
                serde_json::from_str::<JobState>(&format!("\"{name}\"")).ok(),
                Some(state)
            );
            assert_eq!(JobState::parse(name), Some(state));
            assert_eq!(state.to_string(), name);
        }
        assert_eq!(JobState::parse("unknown"), None);
        assert_eq!(JobState::default(), JobState::Publishing);
        assert_eq!(format!("[{:<10}]", JobState::Running), "[running   ]");
    }

    #[test]
    fn a_job_with_cancelled_records_ends_cancelled_whatever_its_failures() {
        assert_eq!(JobState::finished(0, 0, 10, 0.0), JobState::Completed);
        assert_eq!(
            JobState::finished(1, 0, 10, 10.0),
            JobState::CompletedWithFailures
        );
        assert_eq!(JobState::finished(5, 0, 10, 10.0), JobState::Failed);
        assert_eq!(JobState::finished(5, 1, 10, 10.0), JobState::Cancelled);
        assert_eq!(JobState::finished(0, 3, 10, 0.0), JobState::Cancelled);
        assert!(JobState::Cancelled.is_terminal());
    }
}
