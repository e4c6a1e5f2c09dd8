//! `volley run --skip-done RESULTS`: the records an earlier run of the same input already
//! has results for, read from its results files (JSONL, or CSV for a `.csv` name).

use crate::exit::{self, Failure};
use crate::export::unguard;
use std::path::{Path, PathBuf};
use volley_producer::DoneRecords;

/// What a result line says about its record; every other key is ignored.
#[derive(serde::Deserialize)]
struct Done {
    id: String,
    line: u64,
}

/// The records of every file in `paths`.
///
/// # Errors
/// 66 when a file cannot be read, 65 when a line is not a result line or two files give a
/// line different records (they are not from the same input).
pub fn load_done(paths: &[PathBuf]) -> Result<DoneRecords, Failure> {
    let mut done = DoneRecords::new();
    for path in paths {
        let file = std::fs::File::open(path).map_err(|e| {
            Failure::new(
                exit::NO_INPUT,
                format!("--skip-done: cannot open {}: {e}", path.display()),
            )
        })?;
        let reader = std::io::BufReader::new(file);
        let records = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            csv_records(reader, path)?
        } else {
            jsonl_records(reader, path)?
        };
        for record in records {
            if let Some(other) = done.insert(record.line, record.id.clone())
                && other != record.id
            {
                return Err(Failure::new(
                    exit::DATA_ERROR,
                    format!(
                        "--skip-done: input line {} is record {other:?} in one results file and {:?} in {}: they are not results of the same input",
                        record.line,
                        record.id,
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(done)
}

fn malformed(path: &Path, at: u64, e: impl std::fmt::Display) -> Failure {
    Failure::new(
        exit::DATA_ERROR,
        format!(
            "--skip-done: {}:{at}: not a volley result line: {e}",
            path.display()
        ),
    )
}

fn jsonl_records(reader: impl std::io::BufRead, path: &Path) -> Result<Vec<Done>, Failure> {
    let mut records = Vec::new();
    for (at, line) in (1..).zip(reader.lines()) {
        let line = line.map_err(|e| malformed(path, at, e))?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(serde_json::from_str(&line).map_err(|e| malformed(path, at, e))?);
    }
    Ok(records)
}

fn csv_records(reader: impl std::io::BufRead, path: &Path) -> Result<Vec<Done>, Failure> {
    let mut csv = csv::Reader::from_reader(reader);
    let mut records = Vec::new();
    for row in csv.deserialize::<Done>() {
        let at = records.len() as u64 + 2;
        let mut row = row.map_err(|e| malformed(path, at, e))?;
        row.id = unguard(&row.id).to_string();
        records.push(row);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_and_csv_results_and_refuses_two_records_on_one_line() {
        let dir = std::env::temp_dir().join(format!("volley-done-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let jsonl = dir.join("a.jsonl");
        std::fs::write(
            &jsonl,
            "{\"id\":\"a\",\"line\":1,\"ok\":true,\"status\":200,\"attempts\":1,\"latency_ms\":3,\"error\":null,\"body\":null}\n",
        )
        .expect("write");
        let csv = dir.join("b.csv");
        std::fs::write(
            &csv,
            "id,line,ok,status,attempts,latency_ms,error,body\n'-b,2,true,200,1,3,,\n",
        )
        .expect("write");
        let done = load_done(&[jsonl.clone(), csv]).expect("both read");
        assert_eq!(done.len(), 2);
        let other = dir.join("c.jsonl");
        std::fs::write(&other, "{\"id\":\"z\",\"line\":1}\n").expect("write");
        let refused = load_done(&[jsonl, other]).err().map(|f| f.code);
        assert_eq!(refused, Some(exit::DATA_ERROR));
        let _ = std::fs::remove_dir_all(dir);
    }
}
