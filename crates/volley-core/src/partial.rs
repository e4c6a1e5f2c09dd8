//! The outcomes a chunk already has when it goes back to the queue unfinished (the hold
//! limit, a pause, a drain timeout). They are saved before the chunk is returned, and its
//! next delivery calls the API only for the other records: a user pays for every request,
//! so a finished record is never sent again because its chunk was returned.
//!
//! Stored form: one line per finished record, `{pos} {compact row}` (a row never holds a
//! raw newline).

use crate::{RecordOutcome, decode_row};

/// The stored form of a chunk's finished outcomes; `None` when none has finished.
pub fn encode(outcomes: &[Option<RecordOutcome>]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (pos, outcome) in outcomes.iter().enumerate() {
        let Some(outcome) = outcome else { continue };
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(pos.to_string().as_bytes());
        out.push(b' ');
        outcome.encode_compact(&mut out);
    }
    (!out.is_empty()).then_some(out)
}

/// Reads a stored form back for a chunk of `len` records: the saved outcomes at their
/// positions. `None` when it is not what [`encode`] wrote (the chunk then runs whole).
pub fn decode(stored: &[u8], len: usize) -> Option<Vec<Option<RecordOutcome>>> {
    let mut outcomes = vec![None; len];
    for line in stored.split(|b| *b == b'\n') {
        let space = line.iter().position(|b| *b == b' ')?;
        let pos: usize = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
        let row: serde_json::Value = serde_json::from_slice(&line[space + 1..]).ok()?;
        let outcome = RecordOutcome::from_line(decode_row(&row)?)?;
        *outcomes.get_mut(pos)? = Some(outcome);
    }
    Some(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, RecordError};

    #[test]
    fn finished_outcomes_come_back_at_their_positions() {
        let ok = RecordOutcome {
            id: "a".into(),
            line: 3,
            status: Some(200),
            attempts: 1,
            latency_ms: 7,
            error: None,
            body: Some(serde_json::json!({"n": 1})),
        };
        let failed = RecordOutcome {
            id: "c".into(),
            line: 5,
            status: Some(500),
            attempts: 3,
            latency_ms: 9,
            error: Some(RecordError {
                kind: ErrorKind::Status,
                message: "HTTP 500".into(),
            }),
            body: None,
        };
        let saved = vec![Some(ok), None, Some(failed), None];
        let stored = encode(&saved).expect("two finished");
        assert_eq!(decode(&stored, 4), Some(saved));
        assert_eq!(encode(&[None, None]), None, "nothing to keep");
        assert_eq!(
            decode(br#"9 ["x",1,200,1,1]"#, 4),
            None,
            "a position past the chunk"
        );
        assert_eq!(decode(b"garbage", 4), None);
    }
}
