use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use volley_core::ResultLine;

/// Writes `n` records `{"id":"r000000","email":...,"n":i}`.
pub fn write_jsonl(path: &Path, n: u64) -> anyhow::Result<BTreeSet<String>> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let id = format!("r{i:06}");
        writeln!(
            file,
            r#"{{"id":"{id}","email":"user{i}@example.com","n":{i}}}"#
        )?;
        ids.insert(id);
    }
    file.flush()?;
    Ok(ids)
}

/// What an export says about a job, checked the way a user would.
#[derive(Debug)]
pub struct ResultsCheck {
    pub lines: Vec<ResultLine>,
    pub per_id: BTreeMap<String, u64>,
}

impl ResultsCheck {
    pub fn ok(&self) -> usize {
        self.lines.iter().filter(|l| l.ok).count()
    }
}

/// Parses exported JSONL and asserts every expected id appears exactly once and no other.
pub fn check_results(jsonl: &str, expected: &BTreeSet<String>) -> anyhow::Result<ResultsCheck> {
    let mut lines = Vec::new();
    let mut per_id: BTreeMap<String, u64> = BTreeMap::new();
    for (i, line) in jsonl.lines().enumerate() {
        let parsed: ResultLine = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("result line {}: {e}: {line}", i + 1))?;
        *per_id.entry(parsed.id.clone()).or_default() += 1;
        lines.push(parsed);
    }
    let duplicated: Vec<_> = per_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    anyhow::ensure!(
        duplicated.is_empty(),
        "duplicated ids in results: {:?}",
        &duplicated[..duplicated.len().min(10)]
    );
    let got: BTreeSet<String> = per_id.keys().cloned().collect();
    let lost: Vec<_> = expected.difference(&got).collect();
    anyhow::ensure!(
        lost.is_empty(),
        "{} ids lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let unexpected: Vec<_> = got.difference(expected).collect();
    anyhow::ensure!(
        unexpected.is_empty(),
        "unexpected ids: {:?}",
        &unexpected[..unexpected.len().min(10)]
    );
    Ok(ResultsCheck { lines, per_id })
}
