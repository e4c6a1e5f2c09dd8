//! Record outcomes: what happened to one record, how it is stored compactly per chunk, and the
//! result line users export.

use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// The class of a record failure; the first word of its error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The attempt passed its deadline.
    Timeout,
    /// The connection could not be made, or was reset.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// The API answered with a non-success status.
    Status,
    /// The response body was longer than `result.max_body_bytes`.
    BodyTooLarge,
    /// The response body was not what `result.body` asked for (e.g. invalid JSON).
    Decode,
    /// The request could not be rendered from the record (missing field, bad value).
    Template,
    /// Too many redirects.
    Redirect,
    /// Any other failure to send the request or read the response.
    Request,
    /// The processor panicked on this record.
    Panic,
    /// The host's circuit breaker stayed open longer than `breaker.max_wait`.
    Breaker,
    /// The record's chunk came back so many times (its workers crashed on it) that it was
    /// settled as failed instead of being tried again.
    Poison,
    /// The job was cancelled (`volley cancel`) before this record's request was sent. Not a
    /// failure: counted apart, and sent again by `volley retry`.
    Cancelled,
}

impl ErrorKind {
    /// The kind's name, as it prefixes error texts and names counters.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Status => "status",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Decode => "decode",
            ErrorKind::Template => "template",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Request => "request",
            ErrorKind::Panic => "panic",
            ErrorKind::Breaker => "breaker",
            ErrorKind::Poison => "poison",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// Every kind, in declaration order (so `kind as usize` is its index here).
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Tls,
        ErrorKind::Status,
        ErrorKind::BodyTooLarge,
        ErrorKind::Decode,
        ErrorKind::Template,
        ErrorKind::Redirect,
        ErrorKind::Request,
        ErrorKind::Panic,
        ErrorKind::Breaker,
        ErrorKind::Poison,
        ErrorKind::Cancelled,
    ];

    /// Parses a kind's name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The class.
    pub kind: ErrorKind,
    /// Details for a person.
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOutcome {
    /// The record id.
    pub id: String,
    /// The input line the record started on.
    pub line: u64,
    /// HTTP status of the last attempt, if a response came.
    pub status: Option<u16>,
    /// Attempts made (0 when the request could not even be rendered).
    pub attempts: u32,
    /// Duration of the last attempt, in milliseconds.
    pub latency_ms: u32,
    /// The failure, if the record failed.
    pub error: Option<RecordError>,
    /// What was kept of the response body.
    pub body: Option<Value>,
}

impl RecordOutcome {
    /// The outcome of a record that was never sent: no attempt, no status, this error (a
    /// panic, a poison chunk, a cancel, a record given up).
    pub fn unsent(
        record: &crate::ChunkRecord,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            id: record.id.clone(),
            line: record.line,
            status: None,
            attempts: 0,
            latency_ms: 0,
            error: Some(RecordError {
                kind,
                message: message.into(),
            }),
            body: None,
        }
    }

    /// Whether the record succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Appends the compact stored form: `[id,line,status,attempts,latency_ms,error?,body?]`,
    /// status 0 when there was no response. No field names are repeated per record.
    pub fn encode_compact(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.id);
        out.push(b',');
        push_num(out, self.line);
        out.push(b',');
        push_num(out, u64::from(self.status.unwrap_or(0)));
        out.push(b',');
        push_num(out, u64::from(self.attempts));
        out.push(b',');
        push_num(out, u64::from(self.latency_ms));
        if self.error.is_some() || self.body.is_some() {
            out.push(b',');
            match &self.error {
                Some(e) => {
                    let _ = serde_json::to_writer(&mut *out, &e.to_string());
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        if let Some(body) = &self.body {
            out.push(b',');
            let _ = serde_json::to_writer(&mut *out, body);
        }
        out.push(b']');
    }
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Encodes a chunk's outcomes, in record order, as one stored value: one compact row per
/// line. JSON text never holds a raw newline, so the commit script can replace the row of a
/// redriven record by position without parsing JSON.
pub fn encode_chunk_results(outcomes: &[RecordOutcome]) -> Vec<u8> {
    let mut out = Vec::with_capacity(outcomes.len() * 40 + 2);
    for (i, outcome) in outcomes.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        outcome.encode_compact(&mut out);
    }
    out
}

/// One exported result line, in the format the README documents (a stable interface).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ResultLine {
    /// The record id.
    pub id: String,
    /// The input line.
    pub line: u64,
    /// Whether the record succeeded.
    pub ok: bool,
    /// HTTP status of the last attempt (absent when no response came).
    pub status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// Duration of the last attempt.
    pub latency_ms: u32,
    /// `kind: message` for failures.
    pub error: Option<String>,
    /// The kept response body; `null` when none is kept (every line has the same keys, as
    /// the README shows them).
    #[serde(default)]
    pub body: Option<Value>,
}

/// Why a stored chunk value could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("stored results of chunk {chunk} are corrupt: {reason}")]
pub struct ResultDecodeError {
    /// The chunk.
    pub chunk: u64,
    /// What was wrong.
    pub reason: String,
}

/// Decodes a stored chunk value into result lines.
///
/// # Errors
/// [`ResultDecodeError`] when the value is not in the compact form.
pub fn decode_chunk_results(
    chunk: u64,
    stored: &[u8],
) -> Result<Vec<ResultLine>, ResultDecodeError> {
    chunk_rows(chunk, stored)?
        .into_iter()
        .map(|row| {
            decode_row(&row).ok_or_else(|| ResultDecodeError {
                chunk,
                reason: format!("bad row {row}"),
            })
        })
        .collect()
}

/// The rows of a stored chunk value, as JSON values.
///
/// # Errors
/// [`ResultDecodeError`] when a row is not JSON.
pub(crate) fn chunk_rows(chunk: u64, stored: &[u8]) -> Result<Vec<Value>, ResultDecodeError> {
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    stored
        .split(|b| *b == b'\n')
        .map(|row| {
            serde_json::from_slice(row).map_err(|e| ResultDecodeError {
                chunk,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Reads one compact row (`[id,line,status,attempts,latency_ms,error?,body?]`).
pub fn decode_row(row: &Value) -> Option<ResultLine> {
    let row = row.as_array()?;
    let num = |i: usize| row.get(i).and_then(Value::as_u64);
    let (Some(Value::String(id)), Some(line), Some(status), Some(attempts), Some(latency)) =
        (row.first(), num(1), num(2), num(3), num(4))
    else {
        return None;
    };
    let error = row.get(5).and_then(Value::as_str).map(str::to_string);
    Some(ResultLine {
        id: id.clone(),
        line,
        ok: error.is_none(),
        status: u16::try_from(status).ok().filter(|s| *s != 0),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        latency_ms: u32::try_from(latency).unwrap_or(u32::MAX),
        error,
        body: row.get(6).cloned(),
    })
}

impl RecordOutcome {
    /// The outcome a stored row holds (the inverse of [`RecordOutcome::encode_compact`]),
    /// for a chunk that finishes what an earlier delivery left. `None` for an error text
    /// that names no kind.
    pub fn from_line(line: ResultLine) -> Option<Self> {
        let error = match line.error.as_deref() {
            None => None,
            Some(text) => {
                let (kind, message) = text.split_once(": ").unwrap_or((text, ""));
                Some(RecordError {
                    kind: ErrorKind::parse(kind)?,
                    message: message.to_string(),
                })
            }
        };
        Some(Self {
            id: line.id,
            line: line.line,
            status: line.status,
            attempts: line.attempts,
            latency_ms: line.latency_ms,
            error,
            body: line.body,
        })
    }
}

impl ResultLine {
    /// Whether the record was cancelled before it was sent.
    pub fn cancelled(&self) -> bool {
        self.error_kind() == Some(ErrorKind::Cancelled)
    }

    /// The error kind of a failed line.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        let text = self.error.as_deref()?;
        ErrorKind::parse(text.split(':').next().unwrap_or(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_form_round_trips() {
        let ok = RecordOutcome {
            id: "r1".into(),
            line: 1,
            status: Some(200),
            attempts: 1,
            latency_ms: 12,
            error: None,
            body: Some(serde_json::json!({"a": 1})),
        };
        let failed = RecordOutcome {
            id: "r\"2".into(),
            line: 2,
            status: None,
            attempts: 0,
            latency_ms: 0,
            error: Some(RecordError {
                kind: ErrorKind::Template,
                message: "missing field 'email'".into(),
            }),
            body: None,
        };
        let plain = RecordOutcome {
            body: None,
            ..ok.clone()
        };
        let bytes = encode_chunk_results(&[ok, failed, plain]);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "[\"r1\",1,200,1,12,null,{\"a\":1}]\n[\"r\\\"2\",2,0,0,0,\"template: missing field 'email'\"]\n[\"r1\",1,200,1,12]"
        );
        let lines = decode_chunk_results(0, &bytes).unwrap();
        assert!(lines[0].ok);
        assert_eq!(lines[0].body, Some(serde_json::json!({"a": 1})));
        assert!(!lines[1].ok);
        assert_eq!(lines[1].status, None);
        assert_eq!(
            lines[1].error.as_deref(),
            Some("template: missing field 'email'")
        );
        assert_eq!(lines[2].body, None);
        for line in lines {
            let again = RecordOutcome::from_line(line.clone()).expect("a known kind");
            let back = decode_chunk_results(0, &encode_chunk_results(&[again])).unwrap();
            assert_eq!(
                back,
                vec![line],
                "a stored row reads back as the same outcome"
            );
        }
    }
}
