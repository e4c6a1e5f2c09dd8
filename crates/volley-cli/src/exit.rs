//! Exit codes, one meaning each (sysexits where one fits).

use std::process::ExitCode;

/// Success; for a job: completed, or completed with failures within the tolerated percentage.
pub const OK: u8 = 0;
/// An unexpected error.
pub const INTERNAL: u8 = 1;
/// Bad arguments or a bad spec; nothing was done.
pub const USAGE: u8 = 2;
/// The job ended `failed`: more failures than `result.tolerated_failure_percent`.
pub const JOB_FAILED: u8 = 3;
/// The job stopped at a malformed input record and is not complete.
pub const JOB_INPUT_ERROR: u8 = 4;
/// The job cannot finish on its own: chunks RabbitMQ no longer holds have no outcome in
/// Redis (`volley-producer --job-id JOB --missing` republishes them).
pub const JOB_STALLED: u8 = 5;
/// `volley status --wait --timeout` gave up: the job had not ended (EX_TEMPFAIL).
pub const WAIT_TIMEOUT: u8 = 75;
/// Malformed input data (EX_DATAERR).
pub const DATA_ERROR: u8 = 65;
/// The input file cannot be opened (EX_NOINPUT).
pub const NO_INPUT: u8 = 66;
/// RabbitMQ or Redis cannot be reached (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// The output cannot be written (EX_CANTCREAT).
pub const CANT_CREATE: u8 = 73;

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl Failure {
    /// A failure with a code.
    pub fn new(code: u8, message: impl std::fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }

    /// Prints the message to stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("volley: {}", self.message);
        }
        ExitCode::from(self.code)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::new(INTERNAL, format!("{e:#}"))
    }
}

/// The exit code of a finished job's state.
pub fn for_state(state: &str) -> u8 {
    match state {
        "completed" | "completed_with_failures" => OK,
        "input_error" => JOB_INPUT_ERROR,
        _ => JOB_FAILED,
    }
}
