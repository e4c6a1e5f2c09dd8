//! `volley verify`'s checks of a finished job's accounting: the counters against each other,
//! the commit marks against the chunks, the stored results rows against the counters and the
//! chunk sizes, the kept failed inputs against the failed rows, and the broker's queues.
//! Each check is a pure function of what was read, so a wrong figure is named in words.

use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use volley_core::{JobStatus, decode_chunk_results, render_list};
use volley_redis::Ledger;

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It holds.
    Pass,
    /// It does not hold.
    Fail,
    /// It cannot be told now (e.g. other jobs' chunks share the queue).
    Unsure,
}

impl Outcome {
    /// `PASS`, `FAIL`, `UNSURE`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Unsure => "UNSURE",
        }
    }
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Its name.
    pub check: &'static str,
    /// Its outcome.
    pub outcome: Outcome,
    /// The figures compared, or what is wrong.
    pub detail: String,
}

impl Check {
    fn new(check: &'static str, problems: Vec<String>, fine: String) -> Self {
        if problems.is_empty() {
            Self {
                check,
                outcome: Outcome::Pass,
                detail: fine,
            }
        } else {
            Self {
                check,
                outcome: Outcome::Fail,
                detail: problems.join("; "),
            }
        }
    }
}

/// `ok + failed = done = total`. Every outcome a record can settle with is one term.
pub fn counters(s: &JobStatus) -> Check {
    let terms = [
        ("ok", s.ok),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
    ];
    let settled: u64 = terms.iter().map(|(_, n)| n).sum();
    let names: Vec<String> = terms.iter().map(|(n, v)| format!("{n} {v}")).collect();
    let names = names.join(" + ");
    let mut problems = Vec::new();
    if settled != s.done {
        problems.push(format!("{names} = {settled}, but done is {}", s.done));
    }
    match s.total {
        Some(total) if total != s.done => {
            problems.push(format!("done is {}, but total is {total}", s.done));
        }
        None => problems.push("total is not known: the job was never fully published".into()),
        Some(_) => {}
    }
    Check::new(
        "counters",
        problems,
        format!("{names} = done {} = total {}", s.done, s.total.unwrap_or(0)),
    )
}

/// Every chunk (and redrive chunk) committed exactly once: each marked, no mark beyond
/// them, and `chunks_done` counting each mark once.
pub fn chunks(s: &JobStatus, ledger: &Ledger, unmarked: &[u64]) -> Check {
    let expected = s.total_chunks.unwrap_or(0) + s.redrive_chunks;
    let mut problems = Vec::new();
    if !unmarked.is_empty() {
        problems.push(format!(
            "chunks {} have no commit mark",
            render_list(unmarked, 10)
        ));
    }
    if ledger.marks != expected {
        problems.push(format!(
            "{} commit marks for {expected} chunks ({} + {} redrive)",
            ledger.marks,
            s.total_chunks.unwrap_or(0),
            s.redrive_chunks
        ));
    }
    if s.chunks_done != ledger.marks {
        problems.push(format!(
            "chunks_done is {}, but {} chunks are marked committed",
            s.chunks_done, ledger.marks
        ));
    }
    Check::new(
        "chunks",
        problems,
        format!(
            "{expected} chunks ({} + {} redrive) committed once each",
            s.total_chunks.unwrap_or(0),
            s.redrive_chunks
        ),
    )
}

/// What the stored results rows add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    /// Rows read.
    pub rows: u64,
    /// Of them, succeeded.
    pub ok: u64,
    /// Of them, failed.
    pub failed: u64,
    /// Of them, cancelled before they were sent.
    pub cancelled: u64,
    /// (chunk, position) of each failed or cancelled row: those whose input is kept for
    /// `volley retry`.
    pub failed_at: BTreeSet<(u64, u32)>,
    /// What is wrong with single chunks or rows.
    pub problems: Vec<String>,
    lines: HashSet<u64>,
    repeated_lines: Vec<u64>,
    absent: Vec<u64>,
}

impl Rows {
    /// Reads one chunk's stored value (`None`: not stored) against the records it holds.
    pub fn add_chunk(&mut self, chunk: u64, stored: Option<&[u8]>, expected: u64) {
        let Some(stored) = stored else {
            self.absent.push(chunk);
            return;
        };
        let rows = match decode_chunk_results(chunk, stored) {
            Ok(rows) => rows,
            Err(e) => {
                self.problems.push(e.to_string());
                return;
            }
        };
        if rows.len() as u64 != expected {
            self.problems.push(format!(
                "chunk {chunk} holds {} rows for its {expected} records",
                rows.len()
            ));
        }
        for (pos, row) in rows.iter().enumerate() {
            self.rows += 1;
            if row.ok {
                self.ok += 1;
            } else {
                if row.cancelled() {
                    self.cancelled += 1;
                } else {
                    self.failed += 1;
                }
                self.failed_at
                    .insert((chunk, u32::try_from(pos).unwrap_or(u32::MAX)));
            }
            if !self.lines.insert(row.line) {
                self.repeated_lines.push(row.line);
            }
        }
    }

    /// The check: every chunk's rows stored, one row per record, each input line once, and
    /// the rows' outcomes matching the counters.
    pub fn check(&self, s: &JobStatus, result_chunks: u64) -> Check {
        let mut problems = self.problems.clone();
        if !self.absent.is_empty() {
            problems.push(format!(
                "chunks {} have no stored results",
                render_list(&self.absent, 10)
            ));
        }
        let total_chunks = s.total_chunks.unwrap_or(0);
        if result_chunks != total_chunks {
            problems.push(format!(
                "{result_chunks} chunks have stored results, for {total_chunks} chunks"
            ));
        }
        if !self.repeated_lines.is_empty() {
            problems.push(format!(
                "input lines {} have more than one row",
                render_list(&self.repeated_lines, 10)
            ));
        }
        let total = s.total.unwrap_or(0);
        if self.rows != total {
            problems.push(format!("{} rows for {total} records", self.rows));
        }
        if self.ok != s.ok {
            problems.push(format!("{} rows succeeded, but ok is {}", self.ok, s.ok));
        }
        if self.failed != s.failed {
            problems.push(format!(
                "{} rows failed, but failed is {}",
                self.failed, s.failed
            ));
        }
        if self.cancelled != s.cancelled {
            problems.push(format!(
                "{} rows were cancelled, but cancelled is {}",
                self.cancelled, s.cancelled
            ));
        }
        Check::new(
            "results",
            problems,
            format!(
                "{} rows, one per record ({} ok, {} failed, {} cancelled)",
                self.rows, self.ok, self.failed, self.cancelled
            ),
        )
    }
}

/// Records in chunk `chunk` of a job of `total` records cut `size` at a time.
pub fn records_in_chunk(chunk: u64, size: u64, total: u64) -> u64 {
    total.saturating_sub(chunk * size).min(size)
}

/// Every failed or cancelled record's input kept (for `volley retry`), and none kept for a
/// success.
pub fn failed_inputs(rows: &Rows, kept: &BTreeSet<(u64, u32)>, s: &JobStatus) -> Check {
    let without: Vec<u64> = rows
        .failed_at
        .difference(kept)
        .map(|(chunk, _)| *chunk)
        .collect();
    let extra: Vec<u64> = kept
        .difference(&rows.failed_at)
        .map(|(chunk, _)| *chunk)
        .collect();
    let mut problems = Vec::new();
    if !without.is_empty() {
        problems.push(format!(
            "{} failed or cancelled records have no kept input (chunks {})",
            without.len(),
            render_list(&without, 10)
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "{} kept inputs belong to no failed or cancelled row (chunks {})",
            extra.len(),
            render_list(&extra, 10)
        ));
    }
    Check::new(
        "failed inputs",
        problems,
        format!(
            "kept for all {} failed and {} cancelled records",
            s.failed, s.cancelled
        ),
    )
}

/// What a queue holds of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// Nothing of it.
    Nothing,
    /// These chunks.
    Chunks(Vec<u64>),
    /// It cannot be told: why.
    Unknown(String),
}

/// A queue check: `queue` names the queue for people.
pub fn queue(check: &'static str, queue: &str, left: Left) -> Check {
    match left {
        Left::Nothing => Check {
            check,
            outcome: Outcome::Pass,
            detail: format!("nothing of the job in {queue}"),
        },
        Left::Chunks(chunks) => Check {
            check,
            outcome: Outcome::Fail,
            detail: format!(
                "{} chunks of the job are in {queue}: {}",
                chunks.len(),
                render_list(&chunks, 10)
            ),
        },
        Left::Unknown(why) => Check {
            check,
            outcome: Outcome::Unsure,
            detail: why,
        },
    }
}

/// Every check of one job.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The job.
    pub job: String,
    /// Whether every check passed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report of `checks`.
    pub fn new(job: String, checks: Vec<Check>) -> Self {
        let ok = checks.iter().all(|c| c.outcome == Outcome::Pass);
        Self { job, ok, checks }
    }

    /// The worst outcome.
    pub fn outcome(&self) -> Outcome {
        let has = |o| self.checks.iter().any(|c| c.outcome == o);
        if has(Outcome::Fail) {
            Outcome::Fail
        } else if has(Outcome::Unsure) {
            Outcome::Unsure
        } else {
            Outcome::Pass
        }
    }

    /// One line per check.
    pub fn text(&self) -> String {
        self.checks
            .iter()
            .map(|c| format!("{:<7}{:<15}{}\n", c.outcome.label(), c.check, c.detail))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(ok: u64, failed: u64, total: u64) -> JobStatus {
        JobStatus {
            ok,
            failed,
            done: ok + failed,
            total: Some(total),
            total_chunks: Some(total.div_ceil(10)),
            chunks_done: total.div_ceil(10),
            ..JobStatus::default()
        }
    }

    #[test]
    fn counters_that_do_not_add_up_name_the_counter() {
        assert_eq!(counters(&finished(90, 10, 100)).outcome, Outcome::Pass);
        let mut s = finished(90, 10, 100);
        s.ok = 91;
        let check = counters(&s);
        assert_eq!(check.outcome, Outcome::Fail);
        assert_eq!(
            check.detail,
            "ok 91 + failed 10 + cancelled 0 = 101, but done is 100"
        );
        let mut s = finished(90, 10, 100);
        s.total = Some(101);
        assert_eq!(counters(&s).detail, "done is 100, but total is 101");
    }

    #[test]
    fn a_chunk_counted_twice_or_unmarked_fails() {
        let s = finished(100, 0, 100);
        let ledger = Ledger {
            marks: 10,
            result_chunks: 10,
            chunk_size: 10,
        };
        assert_eq!(chunks(&s, &ledger, &[]).outcome, Outcome::Pass);
        let twice = JobStatus {
            chunks_done: 11,
            ..s.clone()
        };
        assert!(
            chunks(&twice, &ledger, &[])
                .detail
                .contains("chunks_done is 11, but 10 chunks are marked committed")
        );
        let fewer = Ledger { marks: 9, ..ledger };
        let check = chunks(&s, &fewer, &[4]);
        assert!(
            check.detail.contains("chunks 4 have no commit mark"),
            "{check:?}"
        );
    }

    #[test]
    fn cancelled_rows_count_as_cancelled_and_keep_their_inputs() {
        use volley_core::{ErrorKind, RecordError, RecordOutcome, encode_chunk_results};
        let outcome = |line: u64, error: Option<ErrorKind>| RecordOutcome {
            id: format!("r{line}"),
            line,
            status: error.is_none().then_some(200),
            attempts: u32::from(error != Some(ErrorKind::Cancelled)),
            latency_ms: 1,
            error: error.map(|kind| RecordError {
                kind,
                message: "x".into(),
            }),
            body: None,
        };
        let stored = encode_chunk_results(&[
            outcome(1, None),
            outcome(2, Some(ErrorKind::Status)),
            outcome(3, Some(ErrorKind::Cancelled)),
        ]);
        let mut rows = Rows::default();
        rows.add_chunk(0, Some(&stored), 3);
        assert_eq!((rows.ok, rows.failed, rows.cancelled), (1, 1, 1));
        let s = JobStatus {
            cancelled: 1,
            done: 3,
            total_chunks: Some(1),
            ..finished(1, 1, 3)
        };
        assert_eq!(
            rows.check(&s, 1).outcome,
            Outcome::Pass,
            "{:?}",
            rows.check(&s, 1)
        );
        let kept = BTreeSet::from([(0, 1), (0, 2)]);
        assert_eq!(failed_inputs(&rows, &kept, &s).outcome, Outcome::Pass);
        let uncounted = JobStatus { cancelled: 0, ..s };
        assert_eq!(
            rows.check(&uncounted, 1).detail,
            "1 rows were cancelled, but cancelled is 0"
        );
    }

    #[test]
    fn chunks_hold_the_size_but_the_last() {
        assert_eq!(records_in_chunk(0, 10, 25), 10);
        assert_eq!(records_in_chunk(2, 10, 25), 5);
        assert_eq!(records_in_chunk(3, 10, 25), 0);
    }
}
