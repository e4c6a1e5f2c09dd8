//! The `volley` operator tool. Each subcommand lives in `commands/`; what several share
//! (the embedded pipeline, result export, status rendering, exit codes) has its own module.

pub mod commands;
pub mod done;
pub mod embedded;
pub mod exit;
pub mod export;
pub mod render;
