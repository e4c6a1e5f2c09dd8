//! Logging set-up shared by the binaries: `VOLLEY_LOG`, else `RUST_LOG`, filters (each
//! binary has its default), flat JSON lines ([`json_lines`]) with `--log-format json` or
//! `VOLLEY_LOG_FORMAT=json`, compact text otherwise; always on stderr, so stdout stays free
//! for what scripts read (the producer's job id, `--json` output). Lines for the user that
//! follow the same format are [`volley_core::output::say`].

mod json_lines;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::JsonFields;
use volley_core::output::{LogFormat, json_logs, say, set_log_format};

/// The variable whose filter wins over `RUST_LOG` (which other Rust programs in the same
/// environment may read too).
const LEVEL_VAR: &str = "VOLLEY_LOG";

/// Under JSON logs a panic is reported as one JSON line (the default hook writes several
/// lines of text): the payload, where it happened, and the backtrace when `RUST_BACKTRACE`
/// asks for one.
fn report_panics_as_json() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => backtrace.to_string(),
            _ => String::new(),
        };
        let mut fields = vec![
            ("panic", message.as_str()),
            ("panic.location", location.as_str()),
            ("thread", thread.as_str()),
        ];
        if !backtrace.is_empty() {
            fields.push(("backtrace", backtrace.as_str()));
        }
        say(tracing::Level::ERROR, "", "panicked", &fields);
    }));
}

/// Installs the global subscriber in `format` (a binary's `--log-format`; `None` leaves it
/// to `VOLLEY_LOG_FORMAT`), then warns if `VOLLEY_FAILPOINTS` is set in a build without
/// failpoints ([`volley_core::failpoint::warn_if_ignored`]). Calling it twice is harmless.
pub fn init_tracing(default_filter: &str, format: Option<LogFormat>) {
    if let Some(format) = format {
        set_log_format(format);
    }
    let filter = EnvFilter::try_from_env(LEVEL_VAR)
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = json_logs();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        report_panics_as_json();
        builder
            .fmt_fields(JsonFields::new())
            .event_format(json_lines::JsonLines)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // Every binary starts here: one place for all of them to say so.
    volley_core::failpoint::warn_if_ignored();
}
