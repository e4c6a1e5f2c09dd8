//! The `volley` operator tool. Each subcommand lives in `commands/`; what several share
//! (the embedded pipeline, result export, status rendering, exit codes) has its own module.

#![warn(
    clippy::print_stdout,
    reason = "stdout goes through volley_core::outln!, which ends quietly on a closed pipe"
)]

pub mod commands;
pub mod done;
pub mod embedded;
pub mod exit;
pub mod export;
pub mod render;
