//! `volley-producer`: turns a record file into a Volley job on RabbitMQ and Redis.

use anyhow::Context as _;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use volley_amqp::{AmqpBroker, AmqpOptions};
use volley_core::input::{InputFormat, ReaderOptions, open_input};
use volley_core::preview::DryRun;
use volley_core::template::process_env;
use volley_core::time::now_ms;
use volley_core::{JobId, JobSpec, Settings};
use volley_producer::{ProduceError, ProduceRequest, Verdict, check_missing, produce};
use volley_redis::{RedisOptions, RedisStore, redact_url};

/// Publish a record file as a Volley job. Prints the job id alone on stdout.
#[derive(Debug, Parser)]
#[command(name = "volley-producer", version)]
struct Args {
    /// The job spec (TOML).
    #[arg(long)]
    spec: PathBuf,
    /// The records: a .jsonl or .csv file, or - for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Resume (or name) this job: a re-run publishes only the chunks not yet confirmed.
    #[arg(long)]
    job_id: Option<String>,
    /// With --job-id: publish again the chunks of this fully published job that Redis has
    /// no outcome for (Redis lost its last writes after RabbitMQ saw them acked; `volley
    /// status` reports them as missing). Checks the input is the one published first.
    /// Refuses (exit 75, nothing published) while any chunk may still be queued or held by
    /// a worker: it republishes only chunks certainly missing.
    #[arg(long, requires = "job_id")]
    missing: bool,
    /// Settings file (TOML): amqp_url, redis_url, namespace, delivery_limit, retention.
    #[arg(long, env = "VOLLEY_CONFIG")]
    config: Option<PathBuf>,
    /// Namespace of queues and keys (overrides VOLLEY_NAMESPACE).
    #[arg(long)]
    namespace: Option<String>,
    /// Print the requests the first records would send (secrets redacted); publish and
    /// register nothing, and connect to nothing.
    #[arg(long)]
    dry_run: bool,
    /// Records a dry run renders.
    #[arg(long, default_value_t = 5, requires = "dry_run")]
    limit: usize,
    /// Dry run output as JSON lines.
    #[arg(long, requires = "dry_run")]
    json: bool,
}

/// Exit codes (sysexits): 2 bad spec or arguments, 65 bad input data, 66 input not found,
/// 69 broker or store unavailable, 75 `--missing` refused (chunks may still be queued or
/// held), 1 anything else.
fn main() -> ExitCode {
    volley_core::telemetry::init_tracing("warn");
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("volley-producer: cannot start the runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("volley-producer: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("volley-producer: {message}");
    Ok(ExitCode::from(code))
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec_text = match std::fs::read_to_string(&args.spec) {
        Ok(t) => t,
        Err(e) => return fail(2, format!("cannot read spec {}: {e}", args.spec.display())),
    };
    let spec = match JobSpec::from_toml(&spec_text)
        .and_then(|s| s.check_secrets(&process_env).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => return fail(2, format!("{}: {e}", args.spec.display())),
    };
    let stdin = args.input.as_os_str() == "-";
    let Some(format) = spec
        .input
        .format
        .or_else(|| InputFormat::from_path(&args.input))
    else {
        return fail(
            2,
            format!(
                "input.format: cannot tell the format of {}; set input.format = \"jsonl\" or \"csv\"",
                args.input.display()
            ),
        );
    };
    let job = match args.job_id.as_deref().map(JobId::parse).transpose() {
        Ok(Some(id)) => id,
        Ok(None) => JobId::generate(&spec.name, now_ms() / 1000),
        Err(e) => return fail(2, format!("--job-id: {e}")),
    };
    let input = match open_input(&args.input) {
        Ok(i) => i,
        Err(e) => return fail(66, format!("cannot open {}: {e}", args.input.display())),
    };
    let input_name = if stdin {
        "<stdin>".to_string()
    } else {
        args.input.display().to_string()
    };
    if args.dry_run {
        let reader = ReaderOptions {
            format,
            id_field: spec.input.id_field.clone(),
            max_record_bytes: spec.input.max_record_bytes,
            source_name: input_name,
        };
        return match DryRun::run(&spec, reader, input, args.limit, &process_env) {
            Err(e) => fail(2, format!("{}: {e}", args.spec.display())),
            Ok(dry) => match dry.print(args.json) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => fail(65, e),
            },
        };
    }
    let settings = match Settings::load(
        args.config.as_deref(),
        &[("namespace", args.namespace.clone())],
    ) {
        Ok(s) => s,
        Err(e) => return fail(2, e),
    };
    let ns = settings.namespace()?;
    let mut amqp = AmqpOptions::new(settings.amqp_url(), ns.clone());
    amqp.delivery_limit = settings.delivery_limit;
    amqp.connection_name = format!("volley-producer {job}");
    let broker = AmqpBroker::new(amqp);
    if let Err(e) = broker.check().await {
        return fail(69, e);
    }
    let store = RedisStore::new(&RedisOptions::new(settings.redis_url()), ns)?;
    match store.check_server().await {
        Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
        Err(e) => {
            return fail(
                69,
                format!(
                    "cannot reach Redis at {}: {e}",
                    redact_url(settings.redis_url())
                ),
            );
        }
    }
    let missing = if args.missing {
        match certain_missing(&broker, &store, &job).await {
            Ok(chunks) => Some(chunks),
            Err(refused) => return refused,
        }
    } else {
        None
    };
    let bar = progress_bar();
    let progress = bar.clone();
    let keeps_bodies = spec.result.body != volley_core::BodyMode::None;
    let body_cap = spec.result.max_body_bytes as u64;
    let request = ProduceRequest {
        spec_text,
        reader: ReaderOptions {
            format,
            id_field: spec.input.id_field.clone(),
            max_record_bytes: spec.input.max_record_bytes,
            source_name: input_name.clone(),
        },
        spec,
        job: job.clone(),
        input,
        input_name,
        retention_secs: settings.retention()?.as_secs(),
        on_progress: Box::new(move |n| progress.set_position(n)),
        missing,
    };
    let result = produce(&broker, &store, request).await;
    bar.finish_and_clear();
    match result {
        Ok(report) if args.missing => {
            if report.republished.is_empty() {
                eprintln!(
                    "volley-producer: job {job} ({}): no missing chunks, nothing published",
                    report.state
                );
            } else {
                eprintln!(
                    "volley-producer: job {job}: republished {} missing chunks: {}",
                    report.republished.len(),
                    volley_core::render_list(&report.republished, 20)
                );
            }
            println!("{job}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(report) => {
            if let Some(chunk) = report.resumed_at_chunk {
                eprintln!("volley-producer: resumed job {job} at chunk {chunk}");
            }
            eprintln!(
                "volley-producer: job {job}: {} records in {} chunks published ({} by this run); state {}",
                report.total_records, report.total_chunks, report.published_now, report.state
            );
            if let Some(warning) = report.duplicates.describe() {
                eprintln!("volley-producer: warning: {warning}");
            }
            // Kept bodies live in Redis for every record: say so before it fills up.
            let worst = report.total_records.saturating_mul(body_cap);
            if keeps_bodies && worst > 4 << 30 {
                eprintln!(
                    "volley-producer: warning: this job may keep up to {:.1} GiB of response bodies in Redis ({} records x result.max_body_bytes {}); keep less with result.select, a smaller max_body_bytes or body = \"none\"",
                    worst as f64 / f64::from(1u32 << 30),
                    report.total_records,
                    body_cap
                );
            }
            println!("{job}");
            Ok(ExitCode::SUCCESS)
        }
        Err(ProduceError::Input {
            error,
            published_chunks,
        }) => {
            println!("{job}");
            fail(
                65,
                format!(
                    "{error}\njob {job} is now input_error: its {published_chunks} published chunks still run; fix the input and re-run with --job-id {job} to publish the rest"
                ),
            )
        }
        Err(e @ (ProduceError::InputChanged { .. } | ProduceError::ChunkTooLarge { .. })) => {
            fail(65, e)
        }
        Err(e @ ProduceError::NotRepublishable { .. }) => fail(2, e),
        Err(ProduceError::Broker(e)) => fail(69, e).context("broker"),
        Err(ProduceError::Store(e)) => fail(69, e),
        Err(e) => fail(1, e),
    }
}

/// `--missing` refused: chunks may still be queued or held (EX_TEMPFAIL).
const MISSING_REFUSED: u8 = 75;

/// `--missing`: the chunks certainly missing (none when the job is not running: the
/// republish path then says why there is nothing to do), or the exit when it must refuse.
async fn certain_missing(
    broker: &AmqpBroker,
    store: &RedisStore,
    job: &JobId,
) -> Result<Vec<u64>, anyhow::Result<ExitCode>> {
    match check_missing(broker, store, job).await {
        Ok(Verdict::Missing(chunks)) => Ok(chunks),
        Ok(Verdict::NoJob | Verdict::NoneMissing | Verdict::NotPublished(_)) => Ok(Vec::new()),
        Ok(Verdict::Unsure(why)) => Err(fail(
            MISSING_REFUSED,
            format!(
                "not republishing any chunk of job {job}: {why}, so chunks without an outcome may still be processed; --missing republishes only chunks certainly lost (volley status {job} lists them)"
            ),
        )),
        Err(e) => Err(fail(69, e)),
    }
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} published {pos} records ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
