//! Failpoints for the fault tests: `VOLLEY_FAILPOINTS="name=value;other=value"` arms a named
//! point in a process. Unset (production), every check is one relaxed atomic load after the
//! first.

use std::collections::HashMap;
use std::sync::OnceLock;

fn points() -> &'static HashMap<String, String> {
    static POINTS: OnceLock<HashMap<String, String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("VOLLEY_FAILPOINTS")
            .unwrap_or_default()
            .split(';')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    })
}

/// The value a failpoint is armed with, if any.
pub fn armed(name: &str) -> Option<&'static str> {
    points().get(name).map(String::as_str)
}

/// Aborts the process (like `kill -9`: no clean-up, no flush) when `name` is armed with a
/// number that `progress` has reached.
pub fn abort_when_reached(name: &str, progress: u64) {
    if let Some(limit) = armed(name).and_then(|v| v.parse::<u64>().ok())
        && progress >= limit
    {
        let text = format!("failpoint {name} reached at {progress}: aborting");
        crate::telemetry::say(tracing::Level::ERROR, "", &text, &[]);
        std::process::abort();
    }
}

/// Crashes on one record, for the poison tests: `abort_on_record=ID` aborts the process,
/// `panic_on_record=ID` panics the record's task. Unarmed, one load of a cached `None`.
pub fn on_record(id: &str) {
    static ARMED: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
    let (abort, panic) = ARMED.get_or_init(|| {
        (
            armed("abort_on_record").map(str::to_string),
            armed("panic_on_record").map(str::to_string),
        )
    });
    if abort.as_deref() == Some(id) {
        let text = format!("failpoint abort_on_record reached at {id}: aborting");
        crate::telemetry::say(tracing::Level::ERROR, "", &text, &[]);
        std::process::abort();
    }
    if panic.as_deref() == Some(id) {
        panic!("failpoint panic_on_record reached at {id}");
    }
}
