//! Exit codes of every Volley binary, one meaning each (sysexits where one fits), and the
//! table each command's `--help` shows: generated from [`MEANINGS`], so the help cannot
//! drift from the codes.

/// Success; for a job: completed, or completed with failures within the tolerated percentage.
pub const OK: u8 = 0;
/// An unexpected error; for `volley-worker healthcheck`, the worker is not ready (or not
/// live), the one answer container health checks read besides 0.
pub const INTERNAL: u8 = 1;
/// Bad arguments or a bad spec (or no such job); nothing was done.
pub const USAGE: u8 = 2;
/// The job ended `failed`: more failures than `result.tolerated_failure_percent`.
pub const JOB_FAILED: u8 = 3;
/// The job stopped at a malformed input record and is not complete.
pub const JOB_INPUT_ERROR: u8 = 4;
/// The job cannot finish on its own: chunks RabbitMQ no longer holds have no outcome in
/// Redis (`volley-producer --resume JOB --missing` republishes them).
pub const JOB_STALLED: u8 = 5;
/// The job was cancelled (`volley cancel`): its unsent records are `cancelled`
/// (`volley retry JOB` sends them).
pub const JOB_CANCELLED: u8 = 6;
/// `volley verify` found a finished job's accounting broken: a counter, a commit mark, a
/// results row or a kept input that does not add up, or chunks of it left in a queue.
pub const VERIFY_FAILED: u8 = 7;
/// Malformed input data (EX_DATAERR).
pub const DATA_ERROR: u8 = 65;
/// The input file cannot be opened (EX_NOINPUT).
pub const NO_INPUT: u8 = 66;
/// RabbitMQ or Redis cannot be reached (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// The process cannot start its runtime (EX_SOFTWARE).
pub const SOFTWARE: u8 = 70;
/// The output cannot be written (EX_CANTCREAT).
pub const CANT_CREATE: u8 = 73;
/// Not now, try again later (EX_TEMPFAIL): `volley status --wait --timeout` gave up before
/// the job ended; `volley-producer --missing` cannot be sure chunks are missing yet; `volley
/// verify`, `forget` or `namespace delete` met a job that has not ended.
pub const TRY_LATER: u8 = 75;
/// A setting contradicts what the broker holds, e.g. `delivery_limit` against a queue
/// declared with another `x-delivery-limit`, or the namespace's schema does not fit this
/// binary: older than it needs (`volley migrate`) or newer than it knows (EX_CONFIG).
pub const CONFIG: u8 = 78;
/// Stopped by a signal. `volley run`: the first SIGINT/SIGTERM drained and wrote the
/// finished records' results (`--skip-done` runs the rest). A worker: a second stop signal
/// made it leave at once (its held chunks return to the queue).
pub const INTERRUPTED: u8 = 130;

/// Every code and what it means, in the words `--help` shows.
pub const MEANINGS: &[(u8, &str)] = &[
    (
        OK,
        "success (for a job: completed, or failures within result.tolerated_failure_percent)",
    ),
    (
        INTERNAL,
        "unexpected error (volley-worker healthcheck: the worker is not ready, or not live with --live)",
    ),
    (
        USAGE,
        "bad arguments, bad spec or no such job; nothing was done",
    ),
    (JOB_FAILED, "the job ended failed"),
    (
        JOB_INPUT_ERROR,
        "the job stopped at an input error and is not complete",
    ),
    (
        JOB_STALLED,
        "the job cannot finish: chunks are missing (volley-producer --resume JOB --missing)",
    ),
    (
        JOB_CANCELLED,
        "the job was cancelled (volley cancel); volley retry JOB sends its cancelled records",
    ),
    (
        VERIFY_FAILED,
        "verify: the job's accounting does not add up (each failed check is printed)",
    ),
    (
        DATA_ERROR,
        "malformed input data (or an input that changed since the job started)",
    ),
    (NO_INPUT, "the input file cannot be opened"),
    (UNAVAILABLE, "RabbitMQ or Redis cannot be reached"),
    (SOFTWARE, "the runtime cannot start"),
    (CANT_CREATE, "the output cannot be written"),
    (
        TRY_LATER,
        "not yet: status --wait --timeout passed before the job ended, --missing cannot be sure chunks are missing, or verify/forget/namespace delete met a job that has not ended; try again later",
    ),
    (
        CONFIG,
        "a setting contradicts the broker (delivery_limit / VOLLEY_DELIVERY_LIMIT against the queue's x-delivery-limit), or the namespace's schema is older than this binary needs (volley migrate) or newer than it knows",
    ),
    (
        INTERRUPTED,
        "stopped by a signal (volley run: finished records written, --skip-done runs the rest; a worker: second signal, left at once)",
    ),
];

/// The constants by name, for tests that read the binaries' source for the codes they use.
pub const NAMES: &[(&str, u8)] = &[
    ("OK", OK),
    ("INTERNAL", INTERNAL),
    ("USAGE", USAGE),
    ("JOB_FAILED", JOB_FAILED),
    ("JOB_INPUT_ERROR", JOB_INPUT_ERROR),
    ("JOB_STALLED", JOB_STALLED),
    ("JOB_CANCELLED", JOB_CANCELLED),
    ("VERIFY_FAILED", VERIFY_FAILED),
    ("DATA_ERROR", DATA_ERROR),
    ("NO_INPUT", NO_INPUT),
    ("UNAVAILABLE", UNAVAILABLE),
    ("SOFTWARE", SOFTWARE),
    ("CANT_CREATE", CANT_CREATE),
    ("TRY_LATER", TRY_LATER),
    ("CONFIG", CONFIG),
    ("INTERRUPTED", INTERRUPTED),
];

/// What `code` means, if it is one of Volley's.
pub fn meaning(code: u8) -> Option<&'static str> {
    MEANINGS.iter().find(|(c, _)| *c == code).map(|(_, m)| *m)
}

/// The "Exit codes:" table of a command's `--help`, for the codes it can return.
pub fn help(codes: &[u8]) -> String {
    let mut out = String::from("Exit codes:");
    for &code in codes {
        let text = meaning(code).unwrap_or("(undocumented)");
        out.push_str(&format!("\n  {code:<4}{text}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_meaning() {
        for (i, (code, _)) in MEANINGS.iter().enumerate() {
            assert!(
                MEANINGS[i + 1..].iter().all(|(c, _)| c != code),
                "{code} twice"
            );
        }
        assert!(help(&[OK, CONFIG]).contains("\n  78  a setting contradicts"));
        assert_eq!(NAMES.len(), MEANINGS.len(), "each code has a name");
        for (name, code) in NAMES {
            assert!(meaning(*code).is_some(), "{name} has no meaning");
        }
    }
}
