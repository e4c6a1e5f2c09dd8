//! Streaming record readers for JSONL and CSV: constant memory whatever the file size, one
//! record at a time, with errors that name the file and the line.

mod csv_reader;
mod error;
mod id;
mod jsonl;
mod lines;

pub use error::InputError;

use std::io::BufRead;
use std::path::Path;

/// Input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// One JSON object per line.
    Jsonl,
    /// A header row, then one record per row.
    Csv,
}

impl InputFormat {
    /// The format a file name implies: `.jsonl`, `.ndjson`, `.json` → JSONL; `.csv` → CSV.
    pub fn from_path(path: &Path) -> Option<InputFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(InputFormat::Jsonl),
            "csv" => Some(InputFormat::Csv),
            _ => None,
        }
    }
}

/// Options of a reader.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// The format.
    pub format: InputFormat,
    /// The field holding the record id.
    pub id_field: String,
    /// Largest accepted record, in bytes.
    pub max_record_bytes: usize,
    /// How the source is named in errors (`records.jsonl`, `<stdin>`).
    pub source_name: String,
}

/// One record read from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// The id: the id field (a string as is, an integer in decimal), or the line number.
    pub id: String,
    /// The 1-based line the record starts on.
    pub line: u64,
    /// The record as the text of a JSON object (JSONL: the line as read).
    pub data: String,
}

/// Reads records one by one; stops after the first error.
pub struct RecordReader<R: BufRead> {
    inner: Inner<R>,
    done: bool,
}

enum Inner<R: BufRead> {
    Jsonl(jsonl::JsonlReader<R>),
    Csv(Box<csv_reader::CsvReader<R>>),
}

impl<R: BufRead> RecordReader<R> {
    /// A reader over `reader`.
    pub fn new(reader: R, options: ReaderOptions) -> Self {
        let inner = match options.format {
            InputFormat::Jsonl => Inner::Jsonl(jsonl::JsonlReader::new(reader, options)),
            InputFormat::Csv => Inner::Csv(Box::new(csv_reader::CsvReader::new(reader, options))),
        };
        Self { inner, done: false }
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<InputRecord, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Jsonl(r) => r.next_record(),
            Inner::Csv(r) => r.next_record(),
        };
        match item {
            Some(Ok(record)) => Some(Ok(record)),
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

/// Opens a file (256 KiB buffer), or stdin for `-`.
///
/// # Errors
/// When the file cannot be opened.
pub fn open_input(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::BufReader::with_capacity(
            256 * 1024,
            std::io::stdin(),
        )));
    }
    let file = std::fs::File::open(path)?;
    Ok(Box::new(std::io::BufReader::with_capacity(
        256 * 1024,
        file,
    )))
}

#[cfg(test)]
mod tests;
