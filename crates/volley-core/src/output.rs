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

use std::io::Write as _;
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
