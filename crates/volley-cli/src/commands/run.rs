//! `volley run --spec JOB.toml --input FILE --out FILE`: a whole job in this process.

use crate::commands::results::write_results;
use crate::done::load_done;
use crate::embedded::{EmbeddedJob, EmbeddedRun, Interruption, run_embedded, with_per_worker};
use crate::exit::{self, Failure};
use crate::export::{ExportSummary, ResultFormat};
use crate::render::{StatusView, duration, print_json};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use volley_core::JobSpec;
use volley_core::input::{InputFormat, ReaderOptions, open_input};
use volley_core::preview::DryRun;
use volley_core::template::process_env;
use volley_core::time::now_ms;
use volley_producer::ProduceError;

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
    /// Requests in flight: sets the spec's concurrency.per_worker for this run (above it
    /// too).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// After Ctrl-C or SIGTERM, how long the records in flight may take to finish (a second
    /// signal exits at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Results of an earlier, interrupted run of the same input: the records they hold are
    /// not run again (repeat for several files).
    #[arg(long, value_name = "RESULTS")]
    pub skip_done: Vec<PathBuf>,
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
    let (spec_text, spec) = match args.concurrency {
        Some(n) => with_per_worker(&spec_text, n)
            .map_err(|e| Failure::new(exit::USAGE, format!("--concurrency {n}: {e}")))?,
        None => (spec_text, spec),
    };
    let skip_done = skipped_records(&args.skip_done, &out)?;
    let job = EmbeddedJob {
        reader,
        spec_text,
        spec,
        input,
        input_name,
        drain_timeout: args.drain_timeout,
        skip_done,
    };
    let bar = progress_bar("records");
    let interrupt = CancellationToken::new();
    watch_signals(&interrupt, &bar, args.drain_timeout)?;
    let finished = run_embedded(job, &bar, &interrupt)
        .await
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    bar.finish_and_clear();
    // Every chunk published: an interrupted run leaves some uncommitted, and the export
    // skips those (their records are not in the results).
    let exported = write_results(
        &finished.store,
        &finished.job,
        finished.status.published_chunks,
        Some(&out),
        args.format,
        false,
    )
    .await?;
    report(&finished, &args, &out, &exported)
}

/// `--skip-done`: the records of the earlier results, refusing to overwrite one of them.
///
/// # Errors
/// 2 when `out` is one of the files, 65/66 when one cannot be read.
fn skipped_records(
    files: &[PathBuf],
    out: &Path,
) -> Result<Option<Arc<volley_producer::DoneRecords>>, Failure> {
    if files.is_empty() {
        return Ok(None);
    }
    let same = |a: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .zip(std::fs::canonicalize(out).ok())
            .is_some_and(|(a, b)| a == b)
    };
    if let Some(file) = files.iter().find(|f| same(f)) {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "--out {} is also --skip-done: it would replace the earlier results; write the rest to another file",
                file.display()
            ),
        ));
    }
    let done = load_done(files)?;
    volley_core::errln!(
        "volley: skipping the {} records already in {}",
        done.len(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Some(Arc::new(done)))
}

/// First SIGINT or SIGTERM: `interrupt` fires (no new chunk starts, the ones in flight
/// finish). A second: exit at once, as the signal would, writing nothing.
///
/// # Errors
/// 1 when the handlers cannot be installed.
fn watch_signals(
    interrupt: &CancellationToken,
    bar: &ProgressBar,
    drain_timeout: Duration,
) -> Result<(), Failure> {
    let cannot = |e: std::io::Error| Failure::new(exit::INTERNAL, format!("signal handler: {e}"));
    let mut int = signal(SignalKind::interrupt()).map_err(cannot)?;
    let mut term = signal(SignalKind::terminate()).map_err(cannot)?;
    let (interrupt, bar) = (interrupt.clone(), bar.clone());
    tokio::spawn(async move {
        let next = async |int: &mut tokio::signal::unix::Signal,
                          term: &mut tokio::signal::unix::Signal| {
            tokio::select! {
                _ = int.recv() => ("SIGINT", 2),
                _ = term.recv() => ("SIGTERM", 15),
            }
        };
        let (name, _) = next(&mut int, &mut term).await;
        bar.suspend(|| {
            volley_core::errln!(
                "volley: interrupted ({name}): no new records start; the chunks in flight finish (up to --drain-timeout {}), then their results are written; a second signal exits at once",
                humantime::format_duration(drain_timeout)
            );
        });
        interrupt.cancel();
        let (name, number) = next(&mut int, &mut term).await;
        bar.suspend(|| {
            volley_core::errln!("volley: second signal ({name}): exiting now; nothing written")
        });
        std::process::exit(128 + number);
    });
    Ok(())
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

fn report(
    finished: &EmbeddedRun,
    args: &RunArgs,
    out: &Path,
    exported: &ExportSummary,
) -> Result<(), Failure> {
    let view = StatusView::new(finished.status.clone(), now_ms());
    if args.json {
        print_json(&view)?;
    } else {
        volley_core::err!("{}", view.text());
        volley_core::errln!("wall      {}", duration(finished.elapsed.as_secs_f64()));
        volley_core::errln!("results   {}", out.display());
    }
    if let Some(interruption) = finished.interrupted {
        return Err(Failure::new(
            exit::INTERRUPTED,
            interrupted_summary(finished, interruption, args, out, exported),
        ));
    }
    if let Some(error) = &finished.input_error {
        return Err(Failure::new(
            exit::DATA_ERROR,
            bad_input_summary(finished, error, args, out, exported),
        ));
    }
    match exit::for_state(view.status.state) {
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

/// "N records ran (lines a-b) and are in OUT", or that none did.
fn what_ran(exported: &ExportSummary, out: &Path) -> String {
    match exported.lines {
        Some((from, to)) => format!(
            "{} records ran (lines {from}-{to}) and are in {}",
            exported.written,
            out.display()
        ),
        None => format!("no records ran ({} is empty)", out.display()),
    }
}

/// What an interrupted run did, what it did not, and the command that runs the rest.
fn interrupted_summary(
    finished: &EmbeddedRun,
    interruption: Interruption,
    args: &RunArgs,
    out: &Path,
    exported: &ExportSummary,
) -> String {
    let not_run = match finished.status.total {
        Some(total) => format!("{} did not run", total.saturating_sub(exported.written)),
        None => "the rest of the input did not run (it was not read to its end)".into(),
    };
    let mut text = format!("interrupted: {}; {not_run}", what_ran(exported, out));
    if !interruption.drained {
        text.push_str(&format!(
            "\nthe chunks still in flight when the drain timeout ({}) passed were stopped: their records are not in the results, though some of their requests were sent (running the rest sends them again)",
            humantime::format_duration(args.drain_timeout)
        ));
    }
    if let Some(error) = &finished.input_error {
        text.push_str(&format!("\nthe input also has a bad record: {error}"));
    }
    text.push_str(&format!("\nto run the rest: {}", rest_command(args, out)));
    text
}

/// After a malformed record: exactly which records ran and which before it did not (the
/// records of the chunk it interrupted are not published), and how to go on.
fn bad_input_summary(
    finished: &EmbeddedRun,
    error: &ProduceError,
    args: &RunArgs,
    out: &Path,
    exported: &ExportSummary,
) -> String {
    let mut text = format!("{error}\n{}", what_ran(exported, out));
    if let ProduceError::Input {
        error,
        records_before,
        ..
    } = error
    {
        let not_run = records_before.saturating_sub(finished.status.published_records);
        let bad = error.line().unwrap_or_default();
        match exported.lines {
            Some((_, last)) if not_run > 0 && args.skip_done.is_empty() => text.push_str(&format!(
                "; the {not_run} records on lines {}-{} did not run (a chunk runs only once complete, and theirs was not)",
                last + 1,
                bad.saturating_sub(1)
            )),
            _ if not_run > 0 => text.push_str(&format!(
                "; the other {not_run} records before line {bad} did not run (a chunk runs only once complete, and theirs was not)"
            )),
            _ => {}
        }
    }
    text.push_str(&format!(
        "\nfix the input and run the rest: {}",
        rest_command(args, out)
    ));
    text
}

/// The `volley run` that runs the records neither `out` nor the earlier results hold.
fn rest_command(args: &RunArgs, out: &Path) -> String {
    let mut words = vec![
        "volley run --spec".to_string(),
        shell_word(&args.spec),
        "--input".into(),
        shell_word(&args.input),
    ];
    if let Some(n) = args.concurrency {
        words.push(format!("--concurrency {n}"));
    }
    if args.format == ResultFormat::Csv {
        words.push("--format csv".into());
    }
    for done in args.skip_done.iter().map(PathBuf::as_path).chain([out]) {
        words.push("--skip-done".into());
        words.push(shell_word(done));
    }
    words.push("--out".into());
    words.push(shell_word(&rest_path(out)));
    words.join(" ")
}

/// `res.jsonl` → `res.rest.jsonl`.
fn rest_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let name = match out.extension() {
        Some(ext) => format!("{stem}.rest.{}", ext.to_string_lossy()),
        None => format!("{stem}.rest"),
    };
    out.with_file_name(name)
}

/// A path as one shell word (quoted when it holds anything but plain characters).
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
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
