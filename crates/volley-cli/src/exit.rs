//! Exit codes (defined in `volley_core::exit`, shared with the producer and the worker),
//! which of them each command can return, and the failure that carries one.

use std::process::ExitCode;
use volley_core::JobState;

pub use volley_core::exit::{
    CANT_CREATE, CONFIG, DATA_ERROR, INTERNAL, INTERRUPTED, JOB_CANCELLED, JOB_FAILED,
    JOB_INPUT_ERROR, JOB_STALLED, NO_INPUT, OK, SOFTWARE, TRY_LATER, UNAVAILABLE, USAGE,
    VERIFY_FAILED, help,
};

/// The codes each command can return, for its `--help` (`exit::help`). Every command can
/// exit 0, 1 (unexpected), 2 (arguments), 70 (no runtime) and 73 (stdout cannot be
/// written); the unit test below checks each command's source against its list.
pub mod codes {
    use super::*;

    /// `volley run`.
    pub const RUN: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        JOB_FAILED,
        JOB_INPUT_ERROR,
        DATA_ERROR,
        NO_INPUT,
        SOFTWARE,
        CANT_CREATE,
        INTERRUPTED,
    ];
    /// `volley demo`.
    pub const DEMO: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        JOB_FAILED,
        JOB_INPUT_ERROR,
        UNAVAILABLE,
        SOFTWARE,
        CANT_CREATE,
    ];
    /// `volley status`.
    pub const STATUS: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        JOB_FAILED,
        JOB_INPUT_ERROR,
        JOB_STALLED,
        JOB_CANCELLED,
        UNAVAILABLE,
        SOFTWARE,
        CANT_CREATE,
        TRY_LATER,
    ];
    /// `volley results`.
    pub const RESULTS: &[u8] = &[OK, INTERNAL, USAGE, UNAVAILABLE, SOFTWARE, CANT_CREATE];
    /// `volley retry` (it publishes: the queue's arguments must match the settings).
    pub const RETRY: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        UNAVAILABLE,
        SOFTWARE,
        CANT_CREATE,
        CONFIG,
    ];
    /// `volley cancel`, `pause`, `resume`, `limit` (USAGE also for a job that has ended).
    pub const CONTROL: &[u8] = &[OK, INTERNAL, USAGE, UNAVAILABLE, SOFTWARE, CANT_CREATE];
    /// `volley jobs`, `volley workers`, `volley hosts`.
    pub const LISTS: &[u8] = &[OK, INTERNAL, USAGE, UNAVAILABLE, SOFTWARE, CANT_CREATE];
    /// `volley dead` (`--requeue` publishes: the queue's arguments must match the settings).
    pub const DEAD: &[u8] = RETRY;
    /// `volley verify`.
    pub const VERIFY: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        VERIFY_FAILED,
        UNAVAILABLE,
        SOFTWARE,
        CANT_CREATE,
        TRY_LATER,
    ];
    /// `volley forget`, `volley namespace delete`.
    pub const FORGET: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        UNAVAILABLE,
        SOFTWARE,
        CANT_CREATE,
        TRY_LATER,
    ];
    /// `volley migrate`.
    pub const MIGRATE: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        UNAVAILABLE,
        SOFTWARE,
        CANT_CREATE,
        TRY_LATER,
        CONFIG,
    ];
    /// `volley serve`.
    pub const SERVE: &[u8] = &[OK, INTERNAL, USAGE, UNAVAILABLE, SOFTWARE];
    /// Every code of the `volley` binary.
    pub const VOLLEY: &[u8] = &[
        OK,
        INTERNAL,
        USAGE,
        JOB_FAILED,
        JOB_INPUT_ERROR,
        JOB_STALLED,
        JOB_CANCELLED,
        VERIFY_FAILED,
        DATA_ERROR,
        NO_INPUT,
        UNAVAILABLE,
        SOFTWARE,
        CANT_CREATE,
        CONFIG,
        TRY_LATER,
        INTERRUPTED,
    ];
}

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
            volley_core::errln!("volley: {}", self.message);
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
pub fn for_state(state: JobState) -> u8 {
    match state {
        JobState::Completed | JobState::CompletedWithFailures => OK,
        JobState::InputError => JOB_INPUT_ERROR,
        // Only a fleet job can be cancelled: `volley status` answers JOB_CANCELLED for it
        // itself, so that an embedded run's help does not list a code it cannot return.
        JobState::Cancelled => JOB_FAILED,
        JobState::Failed | JobState::Publishing | JobState::Running => JOB_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use volley_core::exit::NAMES;

    /// Shared helpers a command calls, and the codes they return.
    const HELPERS: &[(&str, &[u8])] = &[
        ("for_state(", &[OK, JOB_FAILED, JOB_INPUT_ERROR]),
        ("write_results(", &[CANT_CREATE]),
        ("retry_job(", &[USAGE, INTERNAL, UNAVAILABLE, CONFIG]),
        ("broker_failure(", &[UNAVAILABLE, CONFIG]),
        ("broker_unavailable(", &[UNAVAILABLE]),
        ("unavailable(", &[UNAVAILABLE]),
        ("lookup::job_status(", &[USAGE, UNAVAILABLE]),
        ("lookup::job_spec(", &[USAGE, UNAVAILABLE, INTERNAL]),
        ("job_id(", &[USAGE]),
        ("connection.store()", &[USAGE, UNAVAILABLE]),
        ("connection.settings()", &[USAGE]),
        ("open_fleet(", &[USAGE, UNAVAILABLE]),
        ("anyhow::Error::from", &[INTERNAL]),
        ("print_json(", &[INTERNAL]),
    ];

    /// Each command's source and the codes its `--help` lists.
    const COMMANDS: &[(&str, &str, &[u8])] = &[
        ("run", include_str!("commands/run.rs"), codes::RUN),
        ("demo", include_str!("commands/demo.rs"), codes::DEMO),
        ("status", include_str!("commands/status.rs"), codes::STATUS),
        (
            "results",
            include_str!("commands/results.rs"),
            codes::RESULTS,
        ),
        ("retry", include_str!("commands/retry.rs"), codes::RETRY),
        ("jobs", include_str!("commands/jobs.rs"), codes::LISTS),
        ("hosts", include_str!("commands/hosts.rs"), codes::LISTS),
        ("dead", include_str!("commands/dead.rs"), codes::DEAD),
        ("verify", include_str!("commands/verify.rs"), codes::VERIFY),
        ("forget", include_str!("commands/forget.rs"), codes::FORGET),
        (
            "namespace",
            include_str!("commands/namespace.rs"),
            codes::FORGET,
        ),
        (
            "control",
            include_str!("commands/control.rs"),
            codes::CONTROL,
        ),
    ];

    /// The codes a command's source names: `exit::NAME` and the helpers it calls.
    fn codes_in(source: &str) -> Vec<u8> {
        let mut found = Vec::new();
        for (at, _) in source.match_indices("exit::") {
            let name: String = source[at + 6..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `exit::Failure`, `exit::for_state`: not constants.
            if name.is_empty() || name.chars().any(|c| c.is_ascii_lowercase()) {
                continue;
            }
            let code = NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
            found.push(code.unwrap_or_else(|| {
                panic!("exit::{name} is not in NAMES: add it there, to MEANINGS and to codes::*")
            }));
        }
        for (call, codes) in HELPERS {
            if source.contains(call) {
                found.extend_from_slice(codes);
            }
        }
        found
    }

    #[test]
    fn every_code_a_command_returns_is_in_its_help() {
        for (command, source, listed) in COMMANDS {
            for code in codes_in(source) {
                assert!(
                    listed.contains(&code),
                    "volley {command} can exit {code}, but codes::* does not list it"
                );
                assert!(codes::VOLLEY.contains(&code), "codes::VOLLEY lacks {code}");
            }
        }
    }
}
