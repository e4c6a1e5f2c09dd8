//! `volley results JOB [--out FILE] [--format jsonl|csv] [--failed]`.

use super::{Connection, job_id, lookup};
use crate::exit::{self, Failure};
use crate::export::{AtomicFile, ResultFormat, export};
use std::path::PathBuf;
use volley_core::{JobId, Store};

/// Export a job's results, one line per record.
#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// The job id.
    pub job: String,
    /// Write here (atomically: FILE.partial, renamed when complete) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ResultFormat::Jsonl)]
    pub format: ResultFormat,
    /// Only records that failed, with their reasons.
    #[arg(long)]
    pub failed: bool,
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
}

/// Runs `results`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: ResultsArgs) -> Result<(), Failure> {
    let job = job_id(&args.job)?;
    let (settings, store) = args.connection.store()?;
    let status = lookup::job_status(&settings, &store, &job).await?;
    let chunks = status.total_chunks.unwrap_or(status.published_chunks);
    let summary = write_results(
        &store,
        &job,
        chunks,
        args.out.as_deref(),
        args.format,
        args.failed,
    )
    .await?;
    if summary.missing_chunks > 0 {
        volley_core::errln!(
            "volley: {} of {} chunks are not committed yet; their records are not in this export",
            summary.missing_chunks,
            chunks
        );
    }
    Ok(())
}

/// Exports to a file (atomically) or to stdout (a closed pipe ends quietly).
///
/// # Errors
/// A [`Failure`]: 73 when the output cannot be written.
pub async fn write_results<S: Store>(
    store: &S,
    job: &JobId,
    chunks: u64,
    out: Option<&std::path::Path>,
    format: ResultFormat,
    failed_only: bool,
) -> Result<crate::export::ExportSummary, Failure> {
    let summary = match out {
        Some(path) => {
            let mut file = AtomicFile::create(path).map_err(|e| {
                Failure::new(
                    exit::CANT_CREATE,
                    format!("cannot create {}: {e}", path.display()),
                )
            })?;
            let name = path.display().to_string();
            match export(
                store,
                job,
                chunks,
                file.writer(),
                &name,
                format,
                failed_only,
            )
            .await
            {
                Ok(summary) => {
                    file.commit().map_err(|e| {
                        Failure::new(
                            exit::CANT_CREATE,
                            format!("cannot write {}: {e}", path.display()),
                        )
                    })?;
                    summary
                }
                Err(e) => {
                    file.abandon();
                    return Err(Failure::new(exit::CANT_CREATE, e));
                }
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            match export(
                store,
                job,
                chunks,
                &mut lock,
                "<stdout>",
                format,
                failed_only,
            )
            .await
            {
                Ok(summary) => summary,
                Err(crate::export::ExportError::Write { error, .. })
                    if error.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return Err(Failure::new(exit::OK, ""));
                }
                Err(e) => return Err(Failure::new(exit::CANT_CREATE, e)),
            }
        }
    };
    Ok(summary)
}
