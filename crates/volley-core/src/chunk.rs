//! Chunk messages: the unit of work on the broker.

use crate::JobId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Version of the chunk message format; a worker refuses (dead-letters) other versions.
pub const CHUNK_FORMAT_VERSION: u32 = 1;

/// A decoded chunk: a slice of one job's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkMessage {
    /// Message format version.
    pub v: u32,
    /// The job the records belong to.
    pub job: JobId,
    /// The chunk's index in the job, from 0.
    pub chunk: u64,
    /// The records, in input order.
    pub records: Vec<ChunkRecord>,
}

/// One record as carried in a chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// The record id.
    pub id: String,
    /// The input line the record starts on.
    pub line: u64,
    /// The record's fields.
    pub data: Map<String, Value>,
    /// Set on a redriven record: where its outcome lives and what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redo: Option<Redo>,
}

/// Where a redriven record's outcome is stored, and the outcome it replaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Redo {
    /// The chunk the record was first published in.
    pub chunk: u64,
    /// Its position in that chunk.
    pub pos: u32,
    /// Its stored outcome row when the redrive was planned; its counters are taken back when
    /// the new outcome is committed.
    pub was: Value,
}

impl ChunkRecord {
    /// The input as kept for a later redrive: `{"id","line","data"}`.
    pub fn input_json(&self) -> Vec<u8> {
        let kept = ChunkRecord {
            redo: None,
            ..self.clone()
        };
        // Serializing a map of JSON values into a Vec cannot fail.
        serde_json::to_vec(&kept).unwrap_or_default()
    }
}

/// Why a message could not be decoded as a chunk. Such a message is poison: it is
/// dead-lettered at once, never retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkDecodeError {
    /// Not JSON, or not the chunk shape.
    #[error("undecodable chunk message: {0}")]
    Malformed(String),
    /// A format version this worker does not know.
    #[error(
        "unsupported chunk format version {0} (this worker reads version {CHUNK_FORMAT_VERSION})"
    )]
    Version(u32),
}

impl ChunkMessage {
    /// Decodes a message body.
    ///
    /// # Errors
    /// [`ChunkDecodeError`] for anything but a well-formed chunk of the current version.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChunkDecodeError> {
        let msg: ChunkMessage = serde_json::from_slice(bytes)
            .map_err(|e| ChunkDecodeError::Malformed(e.to_string()))?;
        if msg.v != CHUNK_FORMAT_VERSION {
            return Err(ChunkDecodeError::Version(msg.v));
        }
        let redone = msg.records.iter().filter(|r| r.redo.is_some()).count();
        if redone != 0 && redone != msg.records.len() {
            return Err(ChunkDecodeError::Malformed(
                "a chunk mixes redriven and new records".into(),
            ));
        }
        Ok(msg)
    }

    /// Whether this chunk redrives records of earlier chunks.
    pub fn is_redrive(&self) -> bool {
        self.records.first().is_some_and(|r| r.redo.is_some())
    }

    /// The broker message id: `{job}:{chunk}`.
    pub fn message_id(job: &JobId, chunk: u64) -> String {
        format!("{job}:{chunk}")
    }
}

/// Builds a chunk message body record by record without re-encoding record data: the
/// producer hands over each record's JSON text as read.
#[derive(Debug)]
pub struct ChunkEncoder {
    buf: Vec<u8>,
    records: u32,
}

impl ChunkEncoder {
    /// Starts a chunk.
    pub fn new(job: &JobId, chunk: u64, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(b"{\"v\":");
        buf.extend_from_slice(CHUNK_FORMAT_VERSION.to_string().as_bytes());
        buf.extend_from_slice(b",\"job\":\"");
        // Job ids are validated to need no escaping.
        buf.extend_from_slice(job.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"chunk\":");
        buf.extend_from_slice(chunk.to_string().as_bytes());
        buf.extend_from_slice(b",\"records\":[");
        Self { buf, records: 0 }
    }

    /// Adds a record; `data` must be the text of a JSON object (the reader checked it).
    pub fn push(&mut self, id: &str, line: u64, data: &str) {
        if self.records > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(b"{\"id\":");
        // Serializing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, id);
        self.buf.extend_from_slice(b",\"line\":");
        self.buf.extend_from_slice(line.to_string().as_bytes());
        self.buf.extend_from_slice(b",\"data\":");
        self.buf.extend_from_slice(data.as_bytes());
        self.buf.push(b'}');
        self.records += 1;
    }

    /// Records added so far.
    pub fn len(&self) -> u32 {
        self.records
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Closes the message and returns its body.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(b"]}");
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_chunk_decodes_with_ids_lines_and_data() {
        let job = JobId::parse("j-1").unwrap();
        let mut enc = ChunkEncoder::new(&job, 7, 256);
        enc.push("a\"b", 3, r#"{"id":"a\"b","n":1}"#);
        enc.push("42", 4, r#"{"n":{"x":[1,2]}}"#);
        let msg = ChunkMessage::decode(&enc.finish()).unwrap();
        assert_eq!(msg.chunk, 7);
        assert_eq!(msg.job, job);
        assert_eq!(msg.records.len(), 2);
        assert_eq!(msg.records[0].id, "a\"b");
        assert_eq!(msg.records[1].line, 4);
        assert_eq!(msg.records[1].data["n"]["x"][1], 2);
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert!(matches!(
            ChunkMessage::decode(b"\xff\xfe not json"),
            Err(ChunkDecodeError::Malformed(_))
        ));
        assert!(matches!(
            ChunkMessage::decode(br#"{"v":9,"job":"j","chunk":0,"records":[]}"#),
            Err(ChunkDecodeError::Version(9))
        ));
        assert!(
            ChunkMessage::decode(br#"{"v":1,"job":"bad id!","chunk":0,"records":[]}"#).is_err()
        );
    }
}
