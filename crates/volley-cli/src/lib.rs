//! The `volley` operator tool. Each subcommand lives in `commands/`; what several share
//! (the embedded pipeline, result export, status rendering, exit codes) has its own module.

#![warn(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "stdout and stderr go through volley_core::outln! and errln!, which never panic on a closed pipe"
)]

pub mod commands;
pub mod done;
pub mod embedded;
pub mod exit;
pub mod export;
pub mod render;
pub mod serve;
pub mod verify;
pub mod watch;
