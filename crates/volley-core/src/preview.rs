//! Dry runs: the requests a job would send for its first records, rendered exactly as a
//! worker renders them, with secrets redacted, and nothing sent.

use crate::governor::{Governor, MemoryFleet};
use crate::input::InputRecord;
use crate::{ChunkRecord, ClientOptions, HttpProcessor, JobId, JobSpec, SpecError, build_client};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Header names whose values are never shown, secret reference or not.
const ALWAYS_REDACTED: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// One previewed request.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestPreview {
    /// The record id.
    pub id: String,
    /// Its input line.
    pub line: u64,
    /// The method.
    pub method: String,
    /// The rendered URL.
    pub url: String,
    /// Headers as sent (secrets shown as `<redacted>`).
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Value>,
    /// Why the record cannot be sent (`template: ...`), instead of a request.
    pub error: Option<String>,
}

impl RequestPreview {
    /// The preview as a person reads it.
    pub fn text(&self) -> String {
        let mut out = format!("# record {} (line {})\n", self.id.escape_debug(), self.line);
        if let Some(e) = &self.error {
            out.push_str(&format!("  not sent: {e}\n"));
            return out;
        }
        out.push_str(&format!("{} {}\n", self.method, self.url));
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\n"));
        }
        if let Some(body) = &self.body {
            out.push('\n');
            out.push_str(&serde_json::to_string_pretty(body).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

/// The outcome of a dry run over the first records of an input.
#[derive(Debug)]
pub struct DryRun {
    /// One preview per record read.
    pub previews: Vec<RequestPreview>,
    /// The input error that stopped reading early, if any.
    pub input_error: Option<crate::input::InputError>,
}

impl DryRun {
    /// Reads up to `limit` records of `input` and renders their requests.
    ///
    /// # Errors
    /// A [`SpecError`] when the spec's templates do not compile or a secret is missing.
    pub fn run(
        spec: &JobSpec,
        reader: crate::input::ReaderOptions,
        input: impl std::io::BufRead,
        limit: usize,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SpecError> {
        let mut records = Vec::new();
        let mut input_error = None;
        for item in crate::input::RecordReader::new(input, reader).take(limit) {
            match item {
                Ok(r) => records.push(r),
                Err(e) => {
                    input_error = Some(e);
                    break;
                }
            }
        }
        // Job ids never need validation failures here: "dry-run" is a valid id.
        let job = JobId::parse("dry-run").map_err(|e| SpecError::new("name", e))?;
        Ok(Self {
            previews: preview(spec, &job, env, &records)?,
            input_error,
        })
    }

    /// Prints the previews to stdout (JSON lines with `json`) and a summary to stderr.
    ///
    /// # Errors
    /// The message to exit with (data error) when a record could not be read or rendered.
    pub fn print(&self, json: bool) -> Result<(), String> {
        for p in &self.previews {
            if json {
                crate::outln!("{}", serde_json::to_string(p).unwrap_or_default());
            } else {
                crate::outln!("{}", p.text());
            }
        }
        if let Some(e) = &self.input_error {
            return Err(e.to_string());
        }
        let unsendable = self.previews.iter().filter(|p| p.error.is_some()).count();
        if unsendable > 0 {
            return Err(format!(
                "dry run: {unsendable} of {} records cannot be sent (see 'not sent' above)",
                self.previews.len()
            ));
        }
        let text = format!(
            "dry run: {} requests rendered, none sent",
            self.previews.len()
        );
        crate::output::say(tracing::Level::INFO, "", &text, &[]);
        Ok(())
    }
}

/// Renders the requests of `records` for `spec`.
///
/// # Errors
/// A [`SpecError`] when the spec's templates do not compile or a secret is missing.
pub fn preview(
    spec: &JobSpec,
    job: &JobId,
    env: &dyn Fn(&str) -> Option<String>,
    records: &[InputRecord],
) -> Result<Vec<RequestPreview>, SpecError> {
    let client = build_client(&ClientOptions::default())
        .map_err(|e| SpecError::new("request", format!("HTTP client: {e}")))?;
    let processor = HttpProcessor::new(
        client,
        job.clone(),
        spec,
        env,
        Arc::new(Semaphore::new(1)),
        Governor::start(Arc::new(MemoryFleet::new())),
    )?;
    Ok(records
        .iter()
        .map(|input| {
            let data: Map<String, Value> = serde_json::from_str(&input.data).unwrap_or_default();
            let record = ChunkRecord {
                id: input.id.clone(),
                line: input.line,
                data,
                redo: None,
            };
            let mut preview = RequestPreview {
                id: input.id.clone(),
                line: input.line,
                method: String::new(),
                url: String::new(),
                headers: Vec::new(),
                body: None,
                error: None,
            };
            match processor.build(&record) {
                Ok(request) => {
                    preview.method = request.method().to_string();
                    preview.url = request.url().to_string();
                    preview.headers = request
                        .headers()
                        .iter()
                        .map(|(name, value)| {
                            let shown = if value.is_sensitive()
                                || ALWAYS_REDACTED.contains(&name.as_str())
                            {
                                "<redacted>".to_string()
                            } else {
                                String::from_utf8_lossy(value.as_bytes()).into_owned()
                            };
                            (name.to_string(), shown)
                        })
                        .collect();
                    preview.body = request
                        .body()
                        .and_then(|b| b.as_bytes())
                        .and_then(|b| serde_json::from_slice(b).ok());
                }
                Err(e) => preview.error = Some(e.to_string()),
            }
            preview
        })
        .collect())
}
