//! Failpoints for the fault tests: `VOLLEY_FAILPOINTS="name=value;other=value"` arms a named
//! point in a process. They exist only in a build with the `failpoints` feature
//! (`--features volley-core/failpoints`, which the test command uses): a user's build has
//! none, so a stray `VOLLEY_FAILPOINTS` can never abort a production worker, and every check
//! below compiles to nothing. [`warn_if_ignored`] says so at start when the variable is set
//! in such a build.

/// The variable that arms failpoints.
const VARIABLE: &str = "VOLLEY_FAILPOINTS";

#[cfg(feature = "failpoints")]
mod points {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    fn table() -> &'static HashMap<String, String> {
        static POINTS: OnceLock<HashMap<String, String>> = OnceLock::new();
        POINTS.get_or_init(|| {
            std::env::var(super::VARIABLE)
                .unwrap_or_default()
                .split(';')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
    }

    pub(super) fn armed(name: &str) -> Option<&'static str> {
        table().get(name).map(String::as_str)
    }

    /// Unarmed, every check after the first is one relaxed atomic load.
    pub(super) fn abort_when_reached(name: &str, progress: u64) {
        if let Some(limit) = armed(name).and_then(|v| v.parse::<u64>().ok())
            && progress >= limit
        {
            let text = format!("failpoint {name} reached at {progress}: aborting");
            crate::output::say(tracing::Level::ERROR, "", &text, &[]);
            std::process::abort();
        }
    }

    /// Unarmed, one load of a cached `None` per record.
    pub(super) fn on_record(id: &str) {
        static ARMED: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
        let (abort, panic) = ARMED.get_or_init(|| {
            (
                armed("abort_on_record").map(str::to_string),
                armed("panic_on_record").map(str::to_string),
            )
        });
        if abort.as_deref() == Some(id) {
            let text = format!("failpoint abort_on_record reached at {id}: aborting");
            crate::output::say(tracing::Level::ERROR, "", &text, &[]);
            std::process::abort();
        }
        if panic.as_deref() == Some(id) {
            panic!("failpoint panic_on_record reached at {id}");
        }
    }
}

/// Without the feature: nothing is armed, and every check is an empty inline function.
#[cfg(not(feature = "failpoints"))]
mod points {
    #[inline(always)]
    pub(super) fn armed(_name: &str) -> Option<&'static str> {
        None
    }

    #[inline(always)]
    pub(super) fn abort_when_reached(_name: &str, _progress: u64) {}

    #[inline(always)]
    pub(super) fn on_record(_id: &str) {}
}

/// Whether this build has failpoints (the `failpoints` feature).
pub const COMPILED: bool = cfg!(feature = "failpoints");

/// The value a failpoint is armed with, if any; always `None` without the feature.
#[inline(always)]
pub fn armed(name: &str) -> Option<&'static str> {
    points::armed(name)
}

/// Aborts the process (like `kill -9`: no clean-up, no flush) when `name` is armed with a
/// number that `progress` has reached.
#[inline(always)]
pub fn abort_when_reached(name: &str, progress: u64) {
    points::abort_when_reached(name, progress);
}

/// Crashes on one record, for the poison tests: `abort_on_record=ID` aborts the process,
/// `panic_on_record=ID` panics the record's task.
#[inline(always)]
pub fn on_record(id: &str) {
    points::on_record(id);
}

/// The warning [`warn_if_ignored`] logs; the test kit looks for it to tell a binary built
/// without failpoints from one whose failpoint did not fire.
pub const IGNORED_WARNING: &str = "VOLLEY_FAILPOINTS is set but ignored: this build has no failpoints (they need a build with --features volley-core/failpoints)";

/// Logs [`IGNORED_WARNING`] when `VOLLEY_FAILPOINTS` is set in a build without failpoints, so
/// an operator who arms one learns why nothing happens. Call after tracing is set up.
pub fn warn_if_ignored() {
    if !COMPILED && std::env::var_os(VARIABLE).is_some() {
        tracing::warn!("{IGNORED_WARNING}");
    }
}
