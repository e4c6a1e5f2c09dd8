//! Duplicate record ids, found while reading. Ids need not be unique (results are keyed by
//! id and line, and every record is processed), but a duplicate is usually a mistake in the
//! input, so the producer reports it. Memory stays bounded: 64-bit hashes of the first
//! `LIMIT` ids and their lines are kept (a table of about 9 MB, allocated once so it never
//! doubles), and the report says how far it looked.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Ids checked at most.
const LIMIT: usize = 250_000;
/// Examples kept for the report.
const EXAMPLES: usize = 3;

/// A duplicate found: the id, the line it was first seen on, and the line of this record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The id.
    pub id: String,
    /// Where it first appeared.
    pub first_line: u64,
    /// Where it appeared again.
    pub line: u64,
}

/// What the reader found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuplicateReport {
    /// Records whose id was seen before.
    pub count: u64,
    /// A few of them.
    pub examples: Vec<Duplicate>,
    /// Whether only the first `LIMIT` ids were checked.
    pub partial: bool,
}

impl DuplicateReport {
    /// One line for the producer's output, or `None` when there were none.
    pub fn describe(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let examples: Vec<String> = self
            .examples
            .iter()
            .map(|d| format!("{:?} on lines {} and {}", d.id, d.first_line, d.line))
            .collect();
        Some(format!(
            "{} records repeat an earlier id{} (e.g. {}); each is processed and exported with its own line",
            self.count,
            if self.partial {
                format!(" among the first {LIMIT} records")
            } else {
                String::new()
            },
            examples.join(", ")
        ))
    }
}

pub(crate) struct DuplicateIds {
    seen: HashMap<u64, u32>,
    hasher: std::collections::hash_map::RandomState,
    report: DuplicateReport,
}

impl DuplicateIds {
    pub(crate) fn new() -> Self {
        Self {
            // Sized once: growing by doubling would hold the old and new tables at once.
            seen: HashMap::with_capacity(LIMIT),
            hasher: std::collections::hash_map::RandomState::new(),
            report: DuplicateReport::default(),
        }
    }

    pub(crate) fn check(&mut self, id: &str, line: u64) {
        let mut h = self.hasher.build_hasher();
        h.write(id.as_bytes());
        let key = h.finish();
        if let Some(first_line) = self.seen.get(&key) {
            self.report.count += 1;
            if self.report.examples.len() < EXAMPLES {
                self.report.examples.push(Duplicate {
                    id: id.to_string(),
                    first_line: u64::from(*first_line),
                    line,
                });
            }
        } else if self.seen.len() < LIMIT {
            self.seen
                .insert(key, u32::try_from(line).unwrap_or(u32::MAX));
        } else {
            self.report.partial = true;
        }
    }

    pub(crate) fn report(self) -> DuplicateReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_with_their_lines() {
        let mut d = DuplicateIds::new();
        for (id, line) in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5)] {
            d.check(id, line);
        }
        let r = d.report();
        assert_eq!(r.count, 2);
        assert_eq!(
            r.examples[0],
            Duplicate {
                id: "a".into(),
                first_line: 1,
                line: 3
            }
        );
        assert!(
            r.describe()
                .unwrap()
                .starts_with("2 records repeat an earlier id (e.g. \"a\" on lines 1 and 3")
        );
        assert_eq!(DuplicateIds::new().report().describe(), None);
    }
}
