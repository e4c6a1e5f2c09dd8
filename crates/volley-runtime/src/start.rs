//! The runtime start-up every binary shares: the multi-thread tokio runtime, the exit code
//! when it cannot start, and the exit code when stdout could not be written.

use std::future::Future;
use std::process::ExitCode;
use volley_core::exit::{CANT_CREATE, SOFTWARE};
use volley_core::output;

/// Runs `main` to completion on a multi-thread runtime. A runtime that cannot start is said
/// on stderr as `binary: cannot start the runtime: …` (a JSON line under JSON logs), and is
/// exit [`SOFTWARE`] (70).
///
/// # Errors
/// The exit code to return when the runtime cannot start.
pub fn block_on<F: Future>(binary: &str, main: F) -> Result<F::Output, ExitCode> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Ok(runtime.block_on(main)),
        Err(e) => {
            let text = format!("cannot start the runtime: {e}");
            output::say(tracing::Level::ERROR, binary, &text, &[]);
            Err(ExitCode::from(SOFTWARE))
        }
    }
}

/// `code`, unless a write to stdout failed (a full disk): then [`CANT_CREATE`] (73), since
/// a short output behind a 0 would pass for a complete one.
pub fn unless_stdout_failed(code: ExitCode) -> ExitCode {
    if output::failed() {
        ExitCode::from(CANT_CREATE)
    } else {
        code
    }
}

/// Resolves at the first SIGTERM or SIGINT: the graceful-shutdown signal of the servers
/// (`volley serve`, `volley-mockapi`). The worker counts signals itself (a second one
/// leaves at once).
pub async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
