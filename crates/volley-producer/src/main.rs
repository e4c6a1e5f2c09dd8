//! `volley-producer`: turns a record file into a Volley job on RabbitMQ and Redis.

#![warn(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "stdout and stderr go through volley_core::outln! and errln!, which never panic on a closed pipe"
)]

use anyhow::Context as _;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::Level;
use volley_amqp::{AmqpBroker, AmqpOptions};
use volley_core::exit::{
    CANT_CREATE, CONFIG, DATA_ERROR, INTERNAL, NO_INPUT, OK, SOFTWARE, TRY_LATER, UNAVAILABLE,
    USAGE, help,
};
use volley_core::input::{InputFormat, ReaderOptions, open_input};
use volley_core::preview::DryRun;
use volley_core::schema;
use volley_core::template::process_env;
use volley_core::time::now_ms;
use volley_core::{BrokerError, JobId, JobSpec, StoreError, redact_url};
use volley_producer::{JobStart, ProduceError, ProduceRequest, Verdict, check_missing, produce};
use volley_redis::RedisStore;
use volley_runtime::Settings;

/// The codes `volley-producer` can return (its `--help` lists them).
const EXIT_CODES: &[u8] = &[
    OK,
    INTERNAL,
    USAGE,
    DATA_ERROR,
    NO_INPUT,
    UNAVAILABLE,
    SOFTWARE,
    CANT_CREATE,
    CONFIG,
    TRY_LATER,
];

/// Publish a record file as a Volley job. Prints the job id alone on stdout.
#[derive(Debug, Parser)]
#[command(name = "volley-producer", version, after_help = help(EXIT_CODES))]
#[command(group(clap::ArgGroup::new("job").args(["job_id", "resume"])))]
struct Args {
    /// The job spec (TOML).
    #[arg(long)]
    spec: PathBuf,
    /// The records: a .jsonl or .csv file, or - for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Create this job, or resume it if it exists (a re-run publishes only the chunks not
    /// yet confirmed, so a restarted producer can resubmit safely); stderr says which.
    #[arg(long)]
    job_id: Option<String>,
    /// Resume this existing job: publish only the chunks not yet confirmed. A job that does
    /// not exist is refused (exit 2) and nothing is registered or published.
    #[arg(long, value_name = "JOB_ID")]
    resume: Option<String>,
    /// With --resume (or --job-id): publish again the chunks of this fully published job
    /// that Redis has no outcome for (Redis lost its last writes after RabbitMQ saw them
    /// acked; `volley status` reports them as missing). Checks the input is the one
    /// published first. Refuses (exit 75, nothing published) while any chunk may still be
    /// queued or held by a worker: it republishes only chunks certainly missing.
    #[arg(long, requires = "job")]
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
    /// Log lines as text (for people) or json (one object per line, for collectors).
    #[arg(long, env = "VOLLEY_LOG_FORMAT", value_name = "text|json")]
    log_format: Option<volley_core::output::LogFormat>,
}

/// Exit codes: [`EXIT_CODES`], meanings in `volley_core::exit`.
fn main() -> ExitCode {
    // lapin logs each channel the broker closes; the producer reports those errors itself.
    let args = Args::parse();
    volley_runtime::telemetry::init_tracing("warn,lapin=off", args.log_format);
    match volley_runtime::block_on("volley-producer", run(args)) {
        // The job id could not be printed (a full disk): a script would not find it.
        Ok(Ok(code)) => volley_runtime::unless_stdout_failed(code),
        Ok(Err(e)) => {
            say(Level::ERROR, &format!("{e:#}"), None);
            ExitCode::from(INTERNAL)
        }
        Err(code) => code,
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    say(Level::ERROR, &message.to_string(), None);
    Ok(ExitCode::from(code))
}

/// A line for the user on stderr: `volley-producer: text`, or a JSON log line (with the job
/// as `job.id`) under `VOLLEY_LOG_FORMAT=json`.
fn say(level: Level, text: &str, job: Option<&JobId>) {
    let job = job.map(ToString::to_string);
    let fields: Vec<(&str, &str)> = job.iter().map(|j| ("job.id", j.as_str())).collect();
    volley_core::output::say(level, "volley-producer", text, &fields);
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec_text = match std::fs::read_to_string(&args.spec) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                USAGE,
                format!("cannot read spec {}: {e}", args.spec.display()),
            );
        }
    };
    let spec = match JobSpec::from_toml(&spec_text)
        .and_then(|s| s.check_secrets(&process_env).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => return fail(USAGE, format!("{}: {e}", args.spec.display())),
    };
    let stdin = args.input.as_os_str() == "-";
    let Some(format) = spec
        .input
        .format
        .or_else(|| InputFormat::from_path(&args.input))
    else {
        return fail(
            USAGE,
            format!(
                "input.format: cannot tell the format of {}; set input.format = \"jsonl\" or \"csv\"",
                args.input.display()
            ),
        );
    };
    let (flag, given) = match (&args.job_id, &args.resume) {
        (_, Some(id)) => ("--resume", Some(id)),
        (id, None) => ("--job-id", id.as_ref()),
    };
    let job = match given.map(|id| JobId::parse(id)).transpose() {
        Ok(Some(id)) => id,
        Ok(None) => JobId::generate(&spec.name, now_ms() / 1000),
        Err(e) => return fail(USAGE, format!("{flag}: {e}")),
    };
    let input = match open_input(&args.input) {
        Ok(i) => i,
        Err(e) => {
            return fail(
                NO_INPUT,
                format!("cannot open {}: {e}", args.input.display()),
            );
        }
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
            Err(e) => fail(USAGE, format!("{}: {e}", args.spec.display())),
            Ok(dry) => match dry.print(args.json) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => fail(DATA_ERROR, e),
            },
        };
    }
    let settings = match Settings::load(
        args.config.as_deref(),
        &[("namespace", args.namespace.clone())],
    ) {
        Ok(s) => s,
        Err(e) => return fail(USAGE, e),
    };
    let broker = AmqpBroker::new(AmqpOptions::from_settings(
        &settings,
        format!("volley-producer {job}"),
    ));
    if let Err(e) = broker.check().await {
        return broker_failure(e);
    }
    let store = RedisStore::from_settings(&settings)?;
    match store.check_server().await {
        // The workers, which run for as long as the deployment does, warn about it; each
        // submission saying it again would be noise.
        Ok(warnings) => warnings.iter().for_each(|w| tracing::info!("{w}")),
        Err(e) => {
            return fail(
                UNAVAILABLE,
                format!(
                    "cannot reach Redis at {}: {e}",
                    redact_url(settings.redis_url())
                ),
            );
        }
    }
    // A brand-new namespace is migrated here, as its first job makes it; one made before
    // migrations, or migrated by newer binaries, is refused with what to do.
    let holder = schema::holder("volley-producer");
    if let Err(e) =
        schema::ensure_compatible(&store, &broker, &holder, true, "volley-producer").await
    {
        return fail(e.exit_code(), e);
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
        retention_secs: settings.retention.as_secs(),
        on_progress: Box::new(move |n| progress.set_position(n)),
        missing,
        skip_done: None,
        resume_only: args.resume.is_some(),
        on_start: Box::new(say_start(job.clone())),
    };
    let result = produce(&broker, &store, request).await;
    bar.finish_and_clear();
    match result {
        Ok(report) if args.missing => {
            if report.republished.is_empty() {
                say(
                    Level::INFO,
                    &format!(
                        "job {job} ({}): no missing chunks, nothing published",
                        report.state
                    ),
                    Some(&job),
                );
            } else {
                say(
                    Level::INFO,
                    &format!(
                        "job {job}: republished {} missing chunks: {}",
                        report.republished.len(),
                        volley_core::render_list(&report.republished, 20)
                    ),
                    Some(&job),
                );
            }
            volley_core::outln!("{job}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(report) => {
            say(
                Level::INFO,
                &format!(
                    "job {job}: {} records in {} chunks published ({} by this run); state {}",
                    report.total_records, report.total_chunks, report.published_now, report.state
                ),
                Some(&job),
            );
            if report.cancelled {
                say(
                    Level::WARN,
                    &format!(
                        "job {job} was cancelled while publishing: stopped after {} records; the rest of the input was not published",
                        report.total_records
                    ),
                    Some(&job),
                );
            }
            if let Some(warning) = report.duplicates.describe() {
                say(Level::WARN, &format!("warning: {warning}"), Some(&job));
            }
            // Kept bodies live in Redis for every record: say so before it fills up.
            let worst = report.total_records.saturating_mul(body_cap);
            if keeps_bodies && worst > 4 << 30 {
                say(
                    Level::WARN,
                    &format!(
                        "warning: this job may keep up to {:.1} GiB of response bodies in Redis ({} records x result.max_body_bytes {}); keep less with result.select, a smaller max_body_bytes or body = \"none\"",
                        worst as f64 / f64::from(1u32 << 30),
                        report.total_records,
                        body_cap
                    ),
                    Some(&job),
                );
            }
            volley_core::outln!("{job}");
            Ok(ExitCode::SUCCESS)
        }
        Err(ProduceError::Input {
            error,
            published_chunks,
            ..
        }) => {
            volley_core::outln!("{job}");
            fail(
                DATA_ERROR,
                format!(
                    "{error}\njob {job} is now input_error: its {published_chunks} published chunks still run; fix the input and re-run with --resume {job} to publish the rest"
                ),
            )
        }
        Err(e @ (ProduceError::InputChanged { .. } | ProduceError::ChunkTooLarge { .. })) => {
            fail(DATA_ERROR, e)
        }
        Err(e @ ProduceError::NotRepublishable { .. }) => fail(USAGE, e),
        Err(ProduceError::UnknownJob { job }) => fail(
            USAGE,
            format!(
                "no job {job} to resume in namespace {}: nothing was registered or published (--job-id {job} creates it)",
                settings.namespace
            ),
        ),
        Err(ProduceError::Broker(e)) => broker_failure(e).context("broker"),
        // Another spec under this id: a matter of arguments, not of an unreachable store.
        Err(ProduceError::Store(StoreError::Conflict(e))) => fail(USAGE, e),
        Err(ProduceError::Store(e)) => fail(UNAVAILABLE, e),
        Err(e) => fail(INTERNAL, e),
    }
}

/// A queue declared with other arguments than these settings is a settings matter (78,
/// one line naming the setting); anything else from the broker is 69.
fn broker_failure(e: BrokerError) -> anyhow::Result<ExitCode> {
    match e {
        BrokerError::Topology(line) => fail(CONFIG, line),
        e => fail(UNAVAILABLE, e),
    }
}

/// Says on stderr whether the job was created or resumed (`--job-id` does either).
fn say_start(job: JobId) -> impl FnOnce(&JobStart) + Send {
    move |start| match start {
        JobStart::Created => say(Level::INFO, &format!("created job {job}"), Some(&job)),
        JobStart::Resuming { chunk } => say(
            Level::INFO,
            &format!("resuming job {job} at chunk {chunk}"),
            Some(&job),
        ),
        JobStart::AlreadyPublished { state } => say(
            Level::INFO,
            &format!("job {job} already fully published (state {state}); nothing to publish"),
            Some(&job),
        ),
    }
}

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
            TRY_LATER,
            format!(
                "not republishing any chunk of job {job}: {why}, so chunks without an outcome may still be processed; --missing republishes only chunks certainly lost (volley status {job} lists them)"
            ),
        )),
        Err(e) => Err(fail(UNAVAILABLE, e)),
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

#[cfg(test)]
mod tests {
    use super::EXIT_CODES;

    /// Every code this file returns (`fail(CODE, …)`, `ExitCode::from(CODE)`) is in the
    /// table `--help` shows, and none is a bare number that would escape this check.
    #[test]
    fn every_code_the_producer_returns_is_in_its_help() {
        let source: String = include_str!("main.rs")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for (name, code) in volley_core::exit::NAMES {
            let used = source.contains(&format!("fail({name},"))
                || source.contains(&format!("ExitCode::from({name})"));
            assert!(
                !used || EXIT_CODES.contains(code),
                "volley-producer can exit {name} ({code}), but EXIT_CODES does not list it"
            );
        }
        for call in ["fail(", "ExitCode::from("] {
            for (at, _) in source.match_indices(call) {
                let next = source[at + call.len()..].chars().next();
                assert!(
                    !next.is_some_and(|c| c.is_ascii_digit()),
                    "a bare exit code after {call}"
                );
            }
        }
    }
}
