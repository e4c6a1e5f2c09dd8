//! `volley`: run jobs embedded, and watch and export jobs of a fleet.

#![warn(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "stdout and stderr go through volley_core::outln! and errln!, which never panic on a closed pipe"
)]

// glibc's allocator took about a fifth of the CPU per record in profiles (many small,
// short-lived allocations across threads); mimalloc does the same work for less. Built
// with `no_thp`: with transparent huge pages on, its arenas were backed by 2 MiB pages and
// an idle worker held 41 MiB instead of 29.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use volley_cli::commands::{
    control, dead, demo, forget, hosts, jobs, migrate, namespace, results, retry, run, status,
    verify,
};
use volley_cli::exit::{self, codes};
use volley_core::ControlChange;

/// Push millions of records through an HTTP API, on one machine or a fleet.
#[derive(Debug, Parser)]
#[command(name = "volley", version, after_help = exit::help(codes::VOLLEY))]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (for people) or json (one object per line, for collectors).
    #[arg(
        long,
        global = true,
        env = "VOLLEY_LOG_FORMAT",
        value_name = "text|json"
    )]
    log_format: Option<volley_core::output::LogFormat>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole job in this process (no RabbitMQ, no Redis).
    #[command(after_help = exit::help(codes::RUN))]
    Run(run::RunArgs),
    /// Run a demo job against a built-in mock API.
    #[command(after_help = exit::help(codes::DEMO))]
    Demo(demo::DemoArgs),
    /// Show a job's progress; --wait blocks until it ends.
    #[command(after_help = exit::help(codes::STATUS))]
    Status(status::StatusArgs),
    /// Export a job's results.
    #[command(after_help = exit::help(codes::RESULTS))]
    Results(results::ResultsArgs),
    /// Send a finished job's failed (and cancelled) records again.
    #[command(after_help = exit::help(codes::RETRY))]
    Retry(retry::RetryArgs),
    /// List jobs.
    #[command(after_help = exit::help(codes::LISTS))]
    Jobs(jobs::JobsArgs),
    /// List workers: running, draining, exited or dead (no beat for a while).
    #[command(after_help = exit::help(codes::LISTS))]
    Workers(jobs::WorkersArgs),
    /// Show target hosts (limits, pauses, breakers); set fleet-wide host limits.
    #[command(after_help = exit::help(codes::LISTS))]
    Hosts(hosts::HostsArgs),
    /// Show the dead-letter queue, or send its messages back.
    #[command(after_help = exit::help(codes::DEAD))]
    Dead(dead::DeadArgs),
    /// Cancel a job: no new request within a second or two; unsent records end `cancelled`.
    #[command(after_help = exit::help(codes::CONTROL))]
    Cancel(control::ControlArgs),
    /// Pause a job: its records wait without sending (and hold no slot).
    #[command(after_help = exit::help(codes::CONTROL))]
    Pause(control::ControlArgs),
    /// Resume a paused job.
    #[command(after_help = exit::help(codes::CONTROL))]
    Resume(control::ControlArgs),
    /// Change a running job's fleet rate and per-worker concurrency.
    #[command(after_help = exit::help(codes::CONTROL))]
    Limit(control::LimitArgs),
    /// Check a finished job's accounting (counters, commits, results, kept inputs, queues).
    #[command(after_help = exit::help(codes::VERIFY))]
    Verify(verify::VerifyArgs),
    /// Delete a finished job's data now instead of at the end of its retention.
    #[command(after_help = exit::help(codes::FORGET))]
    Forget(forget::ForgetArgs),
    /// Delete a namespace: its queues, exchange and Redis keys.
    #[command(after_help = exit::help(codes::FORGET))]
    Namespace(namespace::NamespaceArgs),
    /// Serve the dashboard and its JSON API (read-only), by default on 127.0.0.1:8686.
    #[command(after_help = exit::help(codes::SERVE))]
    Serve(volley_cli::serve::ServeArgs),
    /// Apply the namespace's pending migrations (broker topology, schema version); --dry-run shows them.
    #[command(after_help = exit::help(codes::MIGRATE))]
    Migrate(migrate::MigrateArgs),
}

fn main() -> ExitCode {
    // lapin logs each channel the broker closes; the commands report those errors themselves.
    let cli = Cli::parse();
    volley_runtime::telemetry::init_tracing("warn,lapin=off", cli.log_format);
    let result = volley_runtime::block_on("volley", async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Results(args) => results::run(args).await,
            Command::Retry(args) => retry::run(args).await,
            Command::Jobs(args) => jobs::run(args).await,
            Command::Workers(args) => jobs::workers(args).await,
            Command::Hosts(args) => hosts::run(args).await,
            Command::Dead(args) => dead::run(args).await,
            Command::Cancel(args) => control::run(args, ControlChange::Cancel).await,
            Command::Pause(args) => control::run(args, ControlChange::Pause).await,
            Command::Resume(args) => control::run(args, ControlChange::Resume).await,
            Command::Limit(args) => control::limit(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Serve(args) => volley_cli::serve::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Forget(args) => forget::run(args).await,
            Command::Namespace(args) => namespace::run(args).await,
        }
    });
    match result {
        Ok(Ok(())) => volley_runtime::unless_stdout_failed(ExitCode::SUCCESS),
        Ok(Err(failure)) => failure.report(),
        Err(code) => code,
    }
}
