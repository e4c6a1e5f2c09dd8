//! The reading side, on a blocking thread: records in, encoded chunks out through a bounded
//! channel, so reading and encoding overlap with waiting for confirms.

use crate::digest::InputDigest;
use std::collections::BTreeSet;
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
    /// The input ended; these ids were repeated.
    Duplicates(crate::duplicates::DuplicateReport),
}

pub(crate) struct ReadPlan {
    pub(crate) job: JobId,
    pub(crate) chunk_size: u32,
    pub(crate) max_chunk_bytes: usize,
    pub(crate) skip_chunks: u64,
    pub(crate) expected_digest: String,
    /// Republishing: only these chunks, sent after the whole input matched
    /// `expected_digest` (a changed input must not be published under the old job).
    pub(crate) only: Option<BTreeSet<u64>>,
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
    let mut duplicates = crate::duplicates::DuplicateIds::new();
    let mut held = Vec::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(ReadEvent::Bad(e));
                return;
            }
        };
        digest.update(&record.id, &record.data);
        duplicates.check(&record.id, record.line);
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
        if plan
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&chunk))
        {
            if chunk_done {
                chunk += 1;
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
            if plan.only.is_some() {
                held.push(event);
            } else if tx.blocking_send(event).is_err() {
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
        held.push(ReadEvent::Chunk(Prepared {
            chunk,
            records,
            payload: last.finish(),
            digest: digest.hex(),
        }));
    }
    if plan.only.is_some() && digest.hex() != plan.expected_digest {
        let total = chunk + u64::from(!index.is_multiple_of(size));
        let _ = tx.blocking_send(ReadEvent::Changed { chunks: total });
        return;
    }
    for event in held {
        if tx.blocking_send(event).is_err() {
            return;
        }
    }
    let _ = tx.blocking_send(ReadEvent::Duplicates(duplicates.report()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_core::ChunkMessage;
    use volley_core::input::InputRecord;

    fn records(n: u64) -> Vec<Result<InputRecord, InputError>> {
        (0..n)
            .map(|i| {
                Ok(InputRecord {
                    id: format!("r{i}"),
                    line: i + 1,
                    data: format!("{{\"id\":\"r{i}\"}}"),
                })
            })
            .collect()
    }

    fn plan(skip_chunks: u64, expected_digest: String) -> ReadPlan {
        ReadPlan {
            job: JobId::parse("j").unwrap(),
            chunk_size: 100,
            max_chunk_bytes: 1 << 20,
            skip_chunks,
            expected_digest,
            only: None,
        }
    }

    fn collect(input: Vec<Result<InputRecord, InputError>>, plan: &ReadPlan) -> Vec<ReadEvent> {
        let (tx, mut rx) = mpsc::channel(1024);
        read_chunks(input.into_iter(), plan, &tx);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            // The duplicate report closes every complete read; tests of it look for it.
            if !matches!(e, ReadEvent::Duplicates(_)) {
                out.push(e);
            }
        }
        out
    }

    fn chunks(events: &[ReadEvent]) -> Vec<(u64, u64)> {
        events
            .iter()
            .filter_map(|e| match e {
                ReadEvent::Chunk(p) => Some((p.chunk, p.records)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn records_split_into_full_chunks_and_a_short_last_one() {
        let events = collect(records(250), &plan(0, String::new()));
        assert_eq!(chunks(&events), vec![(0, 100), (1, 100), (2, 50)]);
        let ReadEvent::Chunk(last) = &events[2] else {
            panic!("chunk expected")
        };
        let msg = ChunkMessage::decode(&last.payload).unwrap();
        assert_eq!(
            (msg.chunk, msg.records[0].id.as_str(), msg.records[49].line),
            (2, "r200", 250)
        );
        assert!(collect(records(0), &plan(0, String::new())).is_empty());
        assert_eq!(
            chunks(&collect(records(200), &plan(0, String::new()))),
            vec![(0, 100), (1, 100)]
        );
    }

    #[test]
    fn a_resume_skips_published_chunks_and_numbers_from_there() {
        let first = collect(records(250), &plan(0, String::new()));
        let ReadEvent::Chunk(second) = &first[1] else {
            panic!("chunk expected")
        };
        let resumed = collect(records(250), &plan(2, second.digest.clone()));
        assert_eq!(chunks(&resumed), vec![(2, 50)]);
        let ReadEvent::Chunk(third) = &resumed[0] else {
            panic!("chunk expected")
        };
        assert_eq!(ChunkMessage::decode(&third.payload).unwrap().chunk, 2);
        // The whole input was published, short last chunk included: nothing to send.
        let ReadEvent::Chunk(last) = &first[2] else {
            panic!("chunk expected")
        };
        assert!(collect(records(250), &plan(3, last.digest.clone())).is_empty());
    }

    #[test]
    fn a_changed_or_shorter_input_is_reported_on_resume() {
        let first = collect(records(250), &plan(0, String::new()));
        let ReadEvent::Chunk(second) = &first[1] else {
            panic!("chunk expected")
        };
        let mut changed = records(250);
        changed[150] = Ok(InputRecord {
            id: "other".into(),
            line: 151,
            data: "{}".into(),
        });
        let events = collect(changed, &plan(2, second.digest.clone()));
        assert!(matches!(
            events.as_slice(),
            [ReadEvent::Changed { chunks: 2 }]
        ));
        let events = collect(records(120), &plan(2, second.digest.clone()));
        assert!(matches!(
            events.as_slice(),
            [ReadEvent::Changed { chunks: 2 }]
        ));
    }

    #[test]
    fn a_bad_record_ends_reading_after_the_complete_chunks() {
        let mut input = records(250);
        input[230] = Err(InputError::Record {
            source_name: "in.jsonl".into(),
            line: 231,
            column: None,
            reason: "bad".into(),
        });
        let events = collect(input, &plan(0, String::new()));
        assert_eq!(chunks(&events), vec![(0, 100), (1, 100)]);
        assert!(matches!(events.last(), Some(ReadEvent::Bad(e)) if e.line() == Some(231)));
    }

    #[test]
    fn republishing_sends_only_the_chosen_chunks_and_only_from_the_same_input() {
        let first = collect(records(250), &plan(0, String::new()));
        let ReadEvent::Chunk(last) = &first[2] else {
            panic!("chunk expected")
        };
        let mut p = plan(0, last.digest.clone());
        p.only = Some([0, 2].into());
        let again = collect(records(250), &p);
        assert_eq!(chunks(&again), vec![(0, 100), (2, 50)]);
        let ReadEvent::Chunk(zero) = &again[0] else {
            panic!("chunk expected")
        };
        let ReadEvent::Chunk(original) = &first[0] else {
            panic!("chunk expected")
        };
        assert_eq!(zero.payload, original.payload, "the same message as before");
        let mut changed = records(250);
        changed[240] = Ok(InputRecord {
            id: "other".into(),
            line: 241,
            data: "{}".into(),
        });
        assert!(matches!(
            collect(changed, &p).as_slice(),
            [ReadEvent::Changed { chunks: 3 }]
        ));
    }

    #[test]
    fn an_oversized_chunk_is_refused_before_publishing() {
        let mut p = plan(0, String::new());
        p.max_chunk_bytes = 1000;
        let events = collect(records(250), &p);
        assert!(matches!(
            events.as_slice(),
            [ReadEvent::TooLarge { chunk: 0, .. }]
        ));
    }
}
