//! Records an earlier run already has results for (`volley run --skip-done`): they are not
//! read into chunks again, so the API is called only for the records not done.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use volley_core::input::{InputError, InputRecord};

/// The records of earlier results, by input line (ids need not be unique; lines are), with
/// the id each line had, so a different input is refused instead of silently skipped.
#[derive(Debug, Default, Clone)]
pub struct DoneRecords {
    by_line: HashMap<u64, String>,
}

impl DoneRecords {
    /// No records done.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that the record on `line` with `id` is done; returns the id already noted for
    /// that line, if any.
    pub fn insert(&mut self, line: u64, id: String) -> Option<String> {
        self.by_line.insert(line, id)
    }

    /// Records noted.
    pub fn len(&self) -> usize {
        self.by_line.len()
    }

    /// Whether none are noted.
    pub fn is_empty(&self) -> bool {
        self.by_line.is_empty()
    }

    /// The records of `records` not done; a done line holding another id is an error (the
    /// input is not the one the results came from).
    pub(crate) fn filter<I>(
        self: Arc<Self>,
        records: I,
        source_name: String,
    ) -> impl Iterator<Item = I::Item>
    where
        I: Iterator<Item = Result<InputRecord, InputError>>,
    {
        records.filter_map(move |record| match record {
            Ok(r) => match self.by_line.get(&r.line) {
                None => Some(Ok(r)),
                Some(id) if *id == r.id => None,
                Some(id) => Some(Err(InputError::Record {
                    source_name: source_name.clone(),
                    line: r.line,
                    column: None,
                    reason: format!(
                        "the earlier results (--skip-done) have record {id:?} on this line, the input has {:?}: not the input those results came from",
                        r.id
                    ),
                })),
            },
            Err(e) => Some(Err(e)),
        })
    }
}

/// Counts the records that pass, for "N records were read before the bad one".
pub(crate) fn counted<I, T, E>(records: I, count: Arc<AtomicU64>) -> impl Iterator<Item = I::Item>
where
    I: Iterator<Item = Result<T, E>>,
{
    records.inspect(move |record| {
        if record.is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: u64, id: &str) -> Result<InputRecord, InputError> {
        Ok(InputRecord {
            id: id.into(),
            line,
            data: "{}".into(),
        })
    }

    #[test]
    fn skips_done_lines_and_refuses_a_different_record_on_one() {
        let mut done = DoneRecords::new();
        done.insert(2, "b".into());
        done.insert(3, "c".into());
        let done = Arc::new(done);
        let kept: Vec<_> = done
            .clone()
            .filter(
                vec![record(1, "a"), record(2, "b"), record(4, "d")].into_iter(),
                "in".into(),
            )
            .map(|r| r.map(|r| r.id).unwrap_or_default())
            .collect();
        assert_eq!(kept, ["a", "d"]);
        let mismatch: Vec<_> = done
            .filter(vec![record(3, "x")].into_iter(), "in".into())
            .collect();
        assert!(
            matches!(&mismatch[..], [Err(e)] if e.line() == Some(3) && e.to_string().contains("\"c\""))
        );
    }
}
