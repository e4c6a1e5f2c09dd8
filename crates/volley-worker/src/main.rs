//! `volley-worker`: consumes chunks from RabbitMQ, calls the API, commits to Redis.

// glibc's allocator took about a fifth of the CPU per record in profiles (many small,
// short-lived allocations across threads); mimalloc does the same work for less. Built
// with `no_thp`: with transparent huge pages on, its arenas were backed by 2 MiB pages and
// an idle worker held 41 MiB instead of 29.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use volley_amqp::{AmqpBroker, AmqpOptions};
use volley_core::output::LogFormat;
use volley_core::{StoreError, redact_url};
use volley_redis::{RedisFleet, RedisOptions, RedisStore};
use volley_runtime::Settings;
use volley_worker::healthcheck::{self, Probe};
use volley_worker::startup::wait_until_up;
use volley_worker::{
    DEFAULT_STARTUP_TIMEOUT, WorkerOptions, WorkerState, run_worker, serve_probes,
};

/// The codes `volley-worker` can return (its `--help` lists them): 69 for any failure to
/// run, 78 for a namespace schema that does not fit, 130 on a second stop signal;
/// `healthcheck` returns 0 or 1.
const EXIT_CODES: &[u8] = {
    use volley_core::exit::{CONFIG, INTERNAL, INTERRUPTED, OK, SOFTWARE, UNAVAILABLE, USAGE};
    &[
        OK,
        INTERNAL,
        USAGE,
        UNAVAILABLE,
        SOFTWARE,
        CONFIG,
        INTERRUPTED,
    ]
};

/// Consume chunks of Volley jobs and call their APIs.
#[derive(Debug, Parser)]
#[command(name = "volley-worker", version, after_help = volley_core::exit::help(EXIT_CODES))]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Requests in flight in this worker, across all jobs (each job is further bounded by
    /// its concurrency.per_worker).
    #[arg(long, env = "VOLLEY_CONCURRENCY", default_value_t = 512)]
    concurrency: usize,
    /// Chunks held at once (broker prefetch).
    #[arg(long, env = "VOLLEY_PREFETCH", default_value_t = 8)]
    prefetch: u16,
    /// After SIGTERM/SIGINT, how long held chunks may take to finish before they are
    /// returned to the queue (a second signal stops at once).
    #[arg(long, env = "VOLLEY_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Exit 0 once nothing has arrived and nothing is held for this long.
    #[arg(long, value_parser = humantime::parse_duration)]
    exit_when_idle: Option<Duration>,
    /// Return a chunk to the queue if it is still running after this long; keep it below
    /// RabbitMQ's consumer_timeout (30 min by default).
    #[arg(long, env = "VOLLEY_MAX_HOLD", default_value = "25m", value_parser = humantime::parse_duration)]
    max_hold: Duration,
    /// Address of the probes: GET /livez (also /health), /readyz and /metrics.
    #[arg(long, env = "VOLLEY_HTTP_ADDR")]
    http_addr: Option<String>,
    /// Log lines as text (for people) or json (one object per line, for collectors).
    #[arg(long, env = "VOLLEY_LOG_FORMAT", value_name = "text|json")]
    log_format: Option<LogFormat>,
    /// Settings file (TOML): amqp_url, redis_url, namespace, delivery_limit, retention.
    #[arg(long, env = "VOLLEY_CONFIG")]
    config: Option<PathBuf>,
    /// Namespace of queues and keys (overrides VOLLEY_NAMESPACE).
    #[arg(long)]
    namespace: Option<String>,
    /// Worker id in heartbeats and logs (default host-pid-random).
    #[arg(long)]
    worker_id: Option<String>,
    /// How long to wait at start for Redis and RabbitMQ (together) when they are not up
    /// yet, retrying with backoff; then exit 69 naming the one still down. 0 waits for as
    /// long as it takes.
    #[arg(long, env = "VOLLEY_STARTUP_TIMEOUT", default_value_t = DEFAULT_STARTUP_TIMEOUT.into())]
    startup_timeout: humantime::Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask a running worker's /readyz (or /livez): exit 0 on 200, 1 otherwise, printing the
    /// reason. For container images without curl.
    Healthcheck {
        /// The worker's --http-addr (0.0.0.0 is asked on 127.0.0.1) or base URL.
        #[arg(long, env = "VOLLEY_HTTP_ADDR")]
        url: String,
        /// Ask /livez instead: is the runtime making progress (no dependency checks).
        #[arg(long)]
        live: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    volley_runtime::telemetry::init_tracing("info", args.log_format);
    if let Some(Command::Healthcheck { url, live }) = &args.command {
        let probe = if *live { Probe::Live } else { Probe::Ready };
        let url = healthcheck::probe_url(url, probe);
        return match volley_runtime::block_on("volley-worker", healthcheck::check(&url)) {
            Ok(Ok(answer)) => {
                volley_core::outln!("{answer}");
                ExitCode::SUCCESS
            }
            Ok(Err(reason)) => {
                volley_core::errln!("{reason}");
                ExitCode::from(volley_core::exit::INTERNAL)
            }
            Err(code) => code,
        };
    }
    match volley_runtime::block_on("volley-worker", run(args)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "worker failed");
            // The log line above says it already under JSON logs; text logs get it plainly.
            if !volley_core::output::json_logs() {
                volley_core::errln!("volley-worker: {e:#}");
            }
            match e.downcast_ref::<volley_core::schema::SchemaError>() {
                Some(schema) => ExitCode::from(schema.exit_code()),
                None => ExitCode::from(volley_core::exit::UNAVAILABLE),
            }
        }
        Err(code) => code,
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::load(
        args.config.as_deref(),
        &[("namespace", args.namespace.clone())],
    )?;
    let startup_limit = Some(Duration::from(args.startup_timeout)).filter(|d| !d.is_zero());
    let mut options = worker_options(&args, &settings);
    let connection_name = format!("volley-worker {}", options.worker_id);
    let broker = AmqpBroker::new(AmqpOptions::from_settings(&settings, connection_name));
    let store = RedisStore::from_settings(&settings)?;
    let fleet = RedisFleet::start(store.clone(), &RedisOptions::from_settings(&settings))?;
    tracing::info!(namespace = %settings.namespace, amqp = %redact_url(settings.amqp_url()), redis = %redact_url(settings.redis_url()), "starting");
    raise_open_file_limit(args.concurrency);
    if let Some(proxy) = volley_core::proxy_from_env() {
        tracing::info!(proxy = %proxy, "API requests go through a proxy (from the environment)");
    }
    // Signals and the probes come first: a stop while waiting for a service ends the
    // wait, and a liveness probe must not restart a worker that is only waiting. The probes
    // outlive the drain (`/readyz` says `draining`) and stop when this function returns.
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let state = Arc::new(WorkerState::new());
    let probes_stop = CancellationToken::new();
    let _probes_guard = probes_stop.clone().drop_guard();
    if let Some(addr) = &args.http_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tokio::spawn(serve_probes(listener, state.clone(), probes_stop));
    }
    let redis_name = format!("Redis at {}", redact_url(settings.redis_url()));
    state.readiness.waiting_for(&redis_name);
    let Some(warnings) = wait_for_redis(&store, &redis_name, startup_limit, &shutdown).await?
    else {
        tracing::info!("stopped while waiting for Redis");
        return Ok(());
    };
    for warning in warnings {
        if volley_core::output::first_time(&warning) {
            tracing::warn!("{warning}");
        }
    }
    // A namespace made before migrations, or migrated by newer binaries, is refused with
    // what to do; a fresh one is the producer's to migrate (the worker declares what it
    // needs on the fly, as it always has).
    let holder = volley_core::schema::holder("volley-worker");
    volley_core::schema::ensure_compatible(&store, &broker, &holder, false, "volley-worker")
        .await?;
    // One start-up timeout for both: what is left of it is the broker's.
    options.startup_timeout = startup_limit.map(|limit| limit.saturating_sub(started.elapsed()));
    options.store_name = redis_name;
    run_worker(broker, store, options, fleet, shutdown, Some(state))
        .await
        .context("worker could not start")?;
    Ok(())
}

fn worker_options(args: &Args, settings: &Settings) -> WorkerOptions {
    WorkerOptions {
        concurrency: args.concurrency,
        prefetch: args.prefetch,
        drain_timeout: args.drain_timeout,
        exit_when_idle: args.exit_when_idle,
        worker_id: args
            .worker_id
            .clone()
            .unwrap_or_else(volley_worker_default_id),
        settle_poison_at: Some(u64::from(settings.delivery_limit.saturating_sub(1).max(1))),
        max_hold: args.max_hold,
        broker_name: format!("RabbitMQ at {}", redact_url(settings.amqp_url())),
        ..WorkerOptions::default()
    }
}

/// Waits until Redis answers the start-up check; its warnings, or `None` when stopped first.
async fn wait_for_redis(
    store: &RedisStore,
    name: &str,
    limit: Option<Duration>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Vec<String>>> {
    wait_until_up(
        name,
        limit,
        shutdown,
        // Any answer short of a PING may be a Redis not up yet (refused, still `LOADING`).
        |_: &StoreError| false,
        || store.check_server(),
    )
    .await
    .map_err(anyhow::Error::new)
}

fn volley_worker_default_id() -> String {
    WorkerOptions::default().worker_id
}

/// First SIGTERM/SIGINT: drain. Second: exit at once (held chunks return to the queue when
/// the connection closes).
async fn watch_signals(shutdown: CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    let mut signals = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        signals += 1;
        if signals == 1 {
            tracing::info!("stop signal: no new chunks; draining held chunks");
            shutdown.cancel();
        } else {
            tracing::warn!("second stop signal: exiting now; held chunks return to the queue");
            std::process::exit(130);
        }
    }
}

/// Raises the soft open-file limit to the hard one (many systems start processes at 1,024),
/// and warns when even that is short of what `concurrency` connections need. Running out
/// is survivable (requests wait for descriptors), but slow.
fn raise_open_file_limit(concurrency: usize) {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return;
    };
    let limit = if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    // A connection per request in flight, the broker and Redis pools, files and slack.
    let needed = u64::try_from(concurrency)
        .unwrap_or(u64::MAX)
        .saturating_add(64);
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            "open-file limit is below --concurrency plus room for the broker and Redis; requests will wait for descriptors: raise ulimit -n"
        );
    }
}
