//! `volley-mockapi --addr ADDR`: the mock API as a process.

use clap::Parser;
use std::io::Write as _;
use std::process::ExitCode;
use volley_mockapi::{MockConfig, serve};

/// A configurable fake API: GET /users/{id}, POST /users, GET /stats, POST|DELETE /admin/outage.
#[derive(Debug, Parser)]
#[command(name = "volley-mockapi", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Count requests per id in /stats (costs a lock per request).
    #[arg(long)]
    track_ids: bool,
    /// Keep each request's arrival time (ms since the epoch) in /stats (costs a lock per
    /// request).
    #[arg(long)]
    track_times: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("volley-mockapi: {e}");
            return ExitCode::from(70);
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr).await?;
        println!(
            "volley-mockapi listening on http://{}",
            listener.local_addr()?
        );
        std::io::stdout().flush()?;
        serve(
            listener,
            MockConfig {
                track_ids: args.track_ids,
                track_times: args.track_times,
            },
            volley_runtime::stop_signal(),
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("volley-mockapi: {e}");
            ExitCode::from(69)
        }
    }
}
