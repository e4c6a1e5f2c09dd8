//! `volley run --spec JOB.toml --input FILE --out FILE`: a whole job in this process.

use crate::commands::results::write_results;
use crate::embedded::{EmbeddedJob, EmbeddedRun, run_embedded};
use crate::exit::{self, Failure};
use crate::export::ResultFormat;
use crate::render::{StatusView, duration};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use volley_core::JobSpec;
use volley_core::input::{InputFormat, ReaderOptions, open_input};
use volley_core::preview::DryRun;
use volley_core::template::process_env;
use volley_core::time::now_ms;

/// Run a job embedded: no RabbitMQ, no Redis.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job spec (TOML).
    #[arg(long)]
    pub spec: PathBuf,
    /// The records: a .jsonl or .csv file, or - for stdin.
    #[arg(long)]
    pub input: PathBuf,
    /// Where the results go (written atomically).
    #[arg(long, required_unless_present = "dry_run")]
    pub out: Option<PathBuf>,
    /// Print the requests the first records would send (secrets redacted); send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Records a dry run renders.
    #[arg(long, default_value_t = 5, requires = "dry_run")]
    pub limit: usize,
    /// Results format.
    #[arg(long, value_enum, default_value_t = ResultFormat::Jsonl)]
    pub format: ResultFormat,
    /// Requests in flight (default: the spec's concurrency.per_worker).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Print the final status as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `run`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: RunArgs) -> Result<(), Failure> {
    let spec_text = std::fs::read_to_string(&args.spec).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("cannot read spec {}: {e}", args.spec.display()),
        )
    })?;
    let spec = JobSpec::from_toml(&spec_text)
        .and_then(|s| s.check_secrets(&process_env).map(|()| s))
        .map_err(|e| Failure::new(exit::USAGE, format!("{}: {e}", args.spec.display())))?;
    let format = spec
        .input
        .format
        .or_else(|| InputFormat::from_path(&args.input))
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!(
                    "input.format: cannot tell the format of {}; set input.format",
                    args.input.display()
                ),
            )
        })?;
    let input = open_input(&args.input).map_err(|e| {
        Failure::new(
            exit::NO_INPUT,
            format!("cannot open {}: {e}", args.input.display()),
        )
    })?;
    let input_name = if args.input.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        args.input.display().to_string()
    };
    let reader = ReaderOptions {
        format,
        id_field: spec.input.id_field.clone(),
        max_record_bytes: spec.input.max_record_bytes,
        source_name: input_name.clone(),
    };
    let Some(out) = args.out.clone() else {
        return dry_run(&spec, reader, input, args.limit, args.json);
    };
    let job = EmbeddedJob {
        reader,
        spec_text,
        spec,
        input,
        input_name,
        concurrency: args.concurrency,
    };
    let bar = progress_bar("records");
    let finished = run_embedded(job, &bar)
        .await
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    bar.finish_and_clear();
    let chunks = finished.status.chunks_done;
    write_results(
        &finished.store,
        &finished.job,
        chunks,
        Some(&out),
        args.format,
        false,
    )
    .await?;
    report(&finished, &args, &out)
}

/// `--dry-run`: renders the first `limit` records' requests and prints them.
///
/// # Errors
/// Exit 65 when a record cannot be read or rendered, 2 for a bad spec.
fn dry_run(
    spec: &JobSpec,
    reader: ReaderOptions,
    input: Box<dyn std::io::BufRead + Send>,
    limit: usize,
    json: bool,
) -> Result<(), Failure> {
    DryRun::run(spec, reader, input, limit, &process_env)
        .map_err(|e| Failure::new(exit::USAGE, e))?
        .print(json)
        .map_err(|e| Failure::new(exit::DATA_ERROR, e))
}

fn report(finished: &EmbeddedRun, args: &RunArgs, out: &std::path::Path) -> Result<(), Failure> {
    let view = StatusView::new(finished.status.clone(), now_ms());
    if args.json {
        volley_core::outln!(
            "{}",
            serde_json::to_string(&view).map_err(anyhow::Error::from)?
        );
    } else {
        eprint!("{}", view.text());
        eprintln!("wall      {}", duration(finished.elapsed.as_secs_f64()));
        eprintln!("results   {}", out.display());
    }
    if let Some(error) = &finished.input_error {
        return Err(Failure::new(
            exit::DATA_ERROR,
            format!(
                "{error}\nthe records before it ran and are in {}; fix the input and run again",
                out.display()
            ),
        ));
    }
    match exit::for_state(&view.status.state) {
        exit::OK => Ok(()),
        code => Err(Failure::new(
            code,
            format!(
                "job {}: {} records failed (tolerated: {}%)",
                view.status.state, view.status.failed, view.status.tolerated_failure_percent
            ),
        )),
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress_bar(unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::no_length();
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}
