//! What the binaries print on stdout goes through here, never through `println!`: it
//! panics (exit 101) when the reader has gone away (`volley jobs | head -1`).
//!
//! A closed pipe is not an error: the reader has what it wanted. That write and every
//! later one are dropped quietly and the command goes on to end with its normal exit code
//! (a producer still finishes publishing, `status --wait` still exits with the job's code).
//! Any other write error (a full disk) is said once on stderr and remembered, so the binary
//! exits [`crate::exit::CANT_CREATE`] instead of leaving a short file behind a 0.

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
        eprintln!("cannot write to stdout: {e}");
    }
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
