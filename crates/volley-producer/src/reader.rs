//! The reading side, on a blocking thread: records in, encoded chunks out through a bounded
//! channel, so reading and encoding overlap with waiting for confirms.

use crate::digest::InputDigest;
use tokio::sync::mpsc;
use volley_core::input::{InputError, InputRecord};
use volley_core::{ChunkEncoder, JobId};

/// A chunk ready to publish.
pub(crate) struct Prepared {
    pub(crate) chunk: u64,
    pub(crate) records: u64,
    pub(crate) payload: Vec<u8>,
    /// Digest of all records up to and including this chunk.
    pub(crate) digest: String,
}

/// What the reading thread reports.
pub(crate) enum ReadEvent {
    /// A full (or the final, shorter) chunk.
    Chunk(Prepared),
    /// Resuming: the skipped prefix did not match what was published before.
    Changed { chunks: u64 },
    /// A record was refused; everything before it is in the chunks already sent, except the
    /// records of the incomplete chunk in progress, which is dropped.
    Bad(InputError),
    /// A chunk would exceed the broker's message size limit.
    TooLarge { chunk: u64, bytes: usize },
}

pub(crate) struct ReadPlan {
    pub(crate) job: JobId,
    pub(crate) chunk_size: u32,
    pub(crate) max_chunk_bytes: usize,
    pub(crate) skip_chunks: u64,
    pub(crate) expected_digest: String,
}

/// Reads every record, skipping the first `skip_chunks` chunks (checking their digest), and
/// sends encoded chunks. Returns when the input ends, on the first bad record, or when the
/// receiver is gone.
pub(crate) fn read_chunks(
    records: impl Iterator<Item = Result<InputRecord, InputError>>,
    plan: &ReadPlan,
    tx: &mpsc::Sender<ReadEvent>,
) {
    let size = u64::from(plan.chunk_size);
    let mut digest = InputDigest::default();
    let mut index: u64 = 0;
    let mut chunk = 0u64;
    // Created at the first record to encode, so a resumed run numbers its chunks from the
    // resume point.
    let mut encoder: Option<ChunkEncoder> = None;
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(ReadEvent::Bad(e));
                return;
            }
        };
        digest.update(&record.id, &record.data);
        index += 1;
        let chunk_done = index.is_multiple_of(size);
        if chunk < plan.skip_chunks {
            if chunk_done {
                chunk += 1;
                if chunk == plan.skip_chunks && digest.hex() != plan.expected_digest {
                    let _ = tx.blocking_send(ReadEvent::Changed { chunks: chunk });
                    return;
                }
            }
            continue;
        }
        let current = encoder.get_or_insert_with(|| ChunkEncoder::new(&plan.job, chunk, 16 * 1024));
        current.push(&record.id, record.line, &record.data);
        if current.byte_len() > plan.max_chunk_bytes {
            let _ = tx.blocking_send(ReadEvent::TooLarge {
                chunk,
                bytes: current.byte_len(),
            });
            return;
        }
        if chunk_done {
            let Some(full) = encoder.take() else { continue };
            let event = ReadEvent::Chunk(Prepared {
                chunk,
                records: u64::from(full.len()),
                payload: full.finish(),
                digest: digest.hex(),
            });
            if tx.blocking_send(event).is_err() {
                return;
            }
            chunk += 1;
        }
    }
    if chunk < plan.skip_chunks {
        // Either the published prefix ended with the short final chunk (nothing left to
        // send), or the input is now shorter than what was already published.
        let short_final = !index.is_multiple_of(size) && chunk + 1 == plan.skip_chunks;
        if !(short_final && digest.hex() == plan.expected_digest) {
            let _ = tx.blocking_send(ReadEvent::Changed {
                chunks: plan.skip_chunks,
            });
        }
        return;
    }
    if let Some(last) = encoder.filter(|e| !e.is_empty()) {
        let records = u64::from(last.len());
        let _ = tx.blocking_send(ReadEvent::Chunk(Prepared {
            chunk,
            records,
            payload: last.finish(),
            digest: digest.hex(),
        }));
    }
}
