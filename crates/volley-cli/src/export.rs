//! Streams a job's results out of the store, chunk by chunk, into JSONL or CSV, writing to
//! `FILE.partial` and renaming at the end, so a file that looks complete is complete.

use std::io::Write;
use std::path::{Path, PathBuf};
use volley_core::{JobId, ResultLine, Store, decode_chunk_results};

/// Chunks fetched per store round trip.
const PAGE: u64 = 256;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultFormat {
    /// One JSON object per line.
    Jsonl,
    /// A header row, then one row per record; the body as JSON text.
    Csv,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Lines written.
    pub written: u64,
    /// Committed chunks read.
    pub chunks: u64,
    /// Chunks not committed yet (skipped).
    pub missing_chunks: u64,
    /// The input lines of the first and the last record written.
    pub lines: Option<(u64, u64)>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] volley_core::StoreError),
    /// Stored data could not be decoded.
    #[error(transparent)]
    Decode(#[from] volley_core::ResultDecodeError),
    /// Writing failed.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: String,
        /// The error.
        error: std::io::Error,
    },
}

/// Writes the results of chunks `0..chunks` to `out`.
///
/// # Errors
/// [`ExportError`].
pub async fn export<S: Store, W: Write>(
    store: &S,
    job: &JobId,
    chunks: u64,
    out: &mut W,
    out_name: &str,
    format: ResultFormat,
    failed_only: bool,
) -> Result<ExportSummary, ExportError> {
    let write_err = |error: std::io::Error| ExportError::Write {
        path: out_name.to_string(),
        error,
    };
    let mut summary = ExportSummary::default();
    let mut start = 0;
    let mut buf = Vec::with_capacity(256 * 1024);
    if format == ResultFormat::Csv {
        let mut w = csv::Writer::from_writer(&mut buf);
        w.write_record([
            "id",
            "line",
            "ok",
            "status",
            "attempts",
            "latency_ms",
            "error",
            "body",
        ])
        .map_err(|e| write_err(e.into()))?;
        w.flush().map_err(write_err)?;
    }
    while start < chunks {
        let end = (start + PAGE).min(chunks);
        let values = store.chunk_results(job, start..end).await?;
        let mut lines = Vec::new();
        for (offset, value) in values.into_iter().enumerate() {
            let Some(value) = value else {
                summary.missing_chunks += 1;
                continue;
            };
            summary.chunks += 1;
            lines.extend(
                decode_chunk_results(start + offset as u64, &value)?
                    .into_iter()
                    .filter(|line| !(failed_only && line.ok)),
            );
        }
        summary.written += lines.len() as u64;
        if let (Some(first), Some(last)) = (lines.first(), lines.last()) {
            let (from, to) = summary.lines.unwrap_or((first.line, last.line));
            summary.lines = Some((from.min(first.line), to.max(last.line)));
        }
        match format {
            ResultFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut buf);
                for line in &lines {
                    write_csv(&mut w, line).map_err(|e| write_err(e.into()))?;
                }
                w.flush().map_err(write_err)?;
            }
            ResultFormat::Jsonl => {
                for line in &lines {
                    serde_json::to_writer(&mut buf, line).map_err(|e| write_err(e.into()))?;
                    buf.push(b'\n');
                }
            }
        }
        out.write_all(&buf).map_err(write_err)?;
        buf.clear();
        start = end;
    }
    out.flush().map_err(write_err)?;
    Ok(summary)
}

/// The first characters that make a spreadsheet run a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell a spreadsheet would run as a formula gets a leading apostrophe.
fn guard(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The cell [`guard`] was given, from the cell it wrote.
pub fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

fn write_csv<W: Write>(w: &mut csv::Writer<W>, line: &ResultLine) -> Result<(), csv::Error> {
    let body = line
        .body
        .as_ref()
        .map(|b| b.to_string())
        .unwrap_or_default();
    w.write_record([
        guard(&line.id).as_ref(),
        &line.line.to_string(),
        if line.ok { "true" } else { "false" },
        &line.status.map(|s| s.to_string()).unwrap_or_default(),
        &line.attempts.to_string(),
        &line.latency_ms.to_string(),
        guard(line.error.as_deref().unwrap_or("")).as_ref(),
        guard(&body).as_ref(),
    ])
}

/// A file written under a temporary name and renamed into place only when complete. A
/// target that exists and is not a regular file (`/dev/stdout`, a FIFO, a device) is written
/// directly: renaming over it would replace the device with a file.
pub struct AtomicFile {
    partial: Option<PathBuf>,
    target: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl AtomicFile {
    /// Creates `target.partial` (or opens a non-regular target for writing).
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(target: &Path) -> std::io::Result<Self> {
        let special = std::fs::metadata(target).is_ok_and(|m| !m.is_file() && !m.is_dir());
        let (partial, file) = if special {
            (None, std::fs::OpenOptions::new().write(true).open(target)?)
        } else {
            let mut name = target.as_os_str().to_owned();
            name.push(".partial");
            let partial = PathBuf::from(name);
            let file = std::fs::File::create(&partial)?;
            (Some(partial), file)
        };
        Ok(Self {
            partial,
            target: target.to_path_buf(),
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
        })
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.file
    }

    /// Flushes, syncs and renames into place.
    ///
    /// # Errors
    /// When flushing or renaming fails; the partial file is removed then.
    pub fn commit(self) -> std::io::Result<()> {
        let flushed = self.file.into_inner().map_err(|e| e.into_error());
        let Some(partial) = self.partial else {
            return flushed.map(drop);
        };
        let result = flushed
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&partial, &self.target));
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Removes the partial file.
    pub fn abandon(self) {
        if let Some(partial) = &self.partial {
            let _ = std::fs::remove_file(partial);
        }
    }
}
