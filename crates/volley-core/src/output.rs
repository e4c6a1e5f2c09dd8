//! What the binaries print on stdout goes through here, never through `println!`: it
//! panics (exit 101) when the reader has gone away (`volley jobs | head -1`).
//!
//! A closed pipe is not an error: the reader has what it wanted. That write and every
//! later one are dropped quietly and the command goes on to end with its normal exit code
//! (a producer still finishes publishing, `status --wait` still exits with the job's code).
//! Any other write error (a full disk) is said once on stderr and remembered, so the binary
//! exits [`crate::exit::CANT_CREATE`] instead of leaving a short file behind a 0.
//!
//! Messages for the user go to stderr through [`crate::errln!`] and [`crate::err!`]: a
//! closed stderr (`volley status JOB 2>&1 | head -1`) would make `eprintln!` panic too.
//! There is nowhere left to report a failed write to stderr, so it is dropped.
//!
//! A line for the user that must follow the log format (a JSON line under
//! `VOLLEY_LOG_FORMAT=json`) goes through [`say`]; it lives here rather than beside the
//! tracing set-up (in `volley-runtime`) because the domain says such lines too (dry runs,
//! failpoints).

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const READER_GONE: u8 = 1;
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);

/// Writes to stdout (use [`crate::outln!`] and [`crate::out!`]).
pub fn write(args: std::fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) != OPEN {
        return;
    }
    let mut out = std::io::stdout().lock();
    // Flushed each time so a closed pipe is seen at the write that met it.
    let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) else {
        return;
    };
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT.store(READER_GONE, Ordering::Relaxed);
    } else if STDOUT.swap(FAILED, Ordering::Relaxed) == OPEN {
        write_stderr(format_args!("cannot write to stdout: {e}\n"));
    }
}

/// Writes to stderr, dropping any error (use [`crate::errln!`] and [`crate::err!`]).
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Whether a write to stdout failed for another reason than a closed pipe.
pub fn failed() -> bool {
    STDOUT.load(Ordering::Relaxed) == FAILED
}

/// `println!` to stdout that ends quietly when the reader has gone away.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` to stdout that ends quietly when the reader has gone away.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics, even when stderr is a closed pipe.
#[macro_export]
macro_rules! errln {
    () => {
        $crate::output::write_stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics, even when stderr is a closed pipe.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!($($arg)*))
    };
}

/// How log lines (and [`say`]'s lines) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: compact text, coloured on a terminal.
    Text,
    /// For collectors: one JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("text") {
            Ok(LogFormat::Text)
        } else if text.eq_ignore_ascii_case("json") {
            Ok(LogFormat::Json)
        } else {
            Err(format!(
                "unknown log format '{text}': expected text or json"
            ))
        }
    }
}

static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Sets the log format (a binary's `--log-format`) before anything is logged; later calls,
/// or a call after the format was read, change nothing.
pub fn set_log_format(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
}

/// Whether logs are JSON lines: `--log-format json` (see [`set_log_format`]), else
/// `VOLLEY_LOG_FORMAT=json`; read once.
pub fn json_logs() -> bool {
    let format = LOG_FORMAT.get_or_init(|| {
        match std::env::var("VOLLEY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
            true => LogFormat::Json,
            false => LogFormat::Text,
        }
    });
    *format == LogFormat::Json
}

/// `true` the first time this process asks about `notice`, `false` after: a warning about
/// the deployment (Redis without AOF) is said once per process, however often it is found.
pub fn first_time(notice: &str) -> bool {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if said.iter().any(|s| s == notice) {
        return false;
    }
    said.push(notice.to_string());
    true
}

/// A line for the user on stderr, shown whatever `RUST_LOG` says: `prefix: text` (or the
/// text alone when `prefix` is empty), or with `VOLLEY_LOG_FORMAT=json` one JSON object
/// like the log lines (`timestamp`, `level`, `message`, then `fields`, e.g. `job.id`), so a
/// log collector reading stderr sees JSON only.
pub fn say(level: tracing::Level, prefix: &str, text: &str, fields: &[(&str, &str)]) {
    if !json_logs() {
        if prefix.is_empty() {
            crate::errln!("{text}");
        } else {
            crate::errln!("{prefix}: {text}");
        }
        return;
    }
    let mut line = serde_json::Map::new();
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    line.insert("timestamp".into(), now.into());
    line.insert("level".into(), level.as_str().into());
    line.insert("message".into(), text.into());
    for (key, value) in fields {
        line.insert((*key).into(), (*value).into());
    }
    crate::errln!("{}", serde_json::Value::Object(line));
}
