//! Exports as the README promises them: `--format csv` with the same eight columns as JSONL
//! and formula cells guarded, `--out FILE` that exists only whole (for `volley results` and
//! `volley run`), and results in input order even when chunks finish out of order.

use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;
use volley_core::Store as _;
use volley_tests::support::{describe, export, finish_ok, wait_for_job};
use volley_tests::{TestEnv, eventually, path_str, write_jsonl};

/// The columns of a result, in the README's order.
const COLUMNS: [&str; 8] = [
    "id",
    "line",
    "ok",
    "status",
    "attempts",
    "latency_ms",
    "error",
    "body",
];

/// Runs a fleet job with one worker until it ends; returns the job id.
async fn fleet_job(env: &TestEnv, spec: &Path, input: &Path) -> anyhow::Result<String> {
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "2s"])?;
    let job = env.produce(spec, input, &[]).await?;
    let fin = wait_for_job(env, &job).await?;
    assert!(fin.json["terminal"] == true, "{}", fin.json);
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(job)
}

#[tokio::test]
async fn csv_export_has_the_jsonl_columns_and_guards_formula_cells() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    // Ids a spreadsheet would run, one of each starting character, and plain ones; every
    // third record fails with a 404 (not retried), so error and status cells are filled.
    let ids = [
        "=1+2",
        "+41",
        "-3+cmd",
        "@SUM(A1)",
        "plain",
        "a=b",
        "x-1",
        "=HYPERLINK(\"http://evil\")",
        "u9",
    ];
    let mut file = std::fs::File::create(&input)?;
    for (i, id) in ids.iter().enumerate() {
        let fail = if i % 3 == 2 { 100 } else { 0 };
        writeln!(file, "{}", serde_json::json!({"id": id, "p": fail}))?;
    }
    drop(file);
    let spec = env.write_spec(
        "csv",
        "/users/{id}?fail_pct={p}&status=404",
        "[chunking]\nsize = 4\n[result]\ntolerated_failure_percent = 50\n",
    )?;
    let job = fleet_job(&env, &spec, &input).await?;
    let jsonl: Vec<serde_json::Value> = export(&env, &job, &[])
        .await?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(jsonl.len(), ids.len());
    let csv_path = env.path("results.csv");
    let out = env
        .run(
            "volley",
            &[
                "results",
                &job,
                "--format",
                "csv",
                "--out",
                path_str(&csv_path)?,
            ],
        )
        .await?;
    assert!(out.status.success(), "{}", describe(&out));

    let mut reader = csv::Reader::from_path(&csv_path)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    assert_eq!(header, COLUMNS, "the CSV header");
    for line in &jsonl {
        let keys: Vec<&str> = line
            .as_object()
            .expect("a JSON object per line")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = COLUMNS.to_vec();
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected, "the keys of a JSONL line: {line}");
    }
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), jsonl.len(), "one row per record");
    let mut guarded = 0;
    for (row, line) in rows.iter().zip(&jsonl) {
        assert_eq!(row.len(), 8, "{row:?}");
        let id = line["id"].as_str().expect("id is a string");
        let cell = |v: &serde_json::Value| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let expected_id = if id.starts_with(['=', '+', '-', '@']) {
            guarded += 1;
            format!("'{id}")
        } else {
            id.to_string()
        };
        assert_eq!(&row[0], expected_id, "id cell of {line}");
        for (i, key) in COLUMNS.iter().enumerate().take(7).skip(1) {
            assert_eq!(row[i], cell(&line[*key]), "{key} cell of {line}");
        }
        // The body is JSON text (it starts with `{`: no guard applies to it here).
        let body: serde_json::Value = serde_json::from_str(&row[7])?;
        assert_eq!(body, line["body"], "body cell of {line}");
    }
    assert_eq!(guarded, 5, "five ids start with = + - @");
    let failed = rows.iter().filter(|r| &r[2] == "false").count();
    assert_eq!(failed, 3, "records 3, 6 and 9 failed: {rows:?}");
    assert!(
        rows.iter()
            .filter(|r| &r[2] == "false")
            .all(|r| &r[3] == "404" && &r[6] == "status: HTTP 404 Not Found"),
        "{rows:?}"
    );
    assert_eq!(env.mock.stats().requests, ids.len() as u64);
    Ok(())
}

/// `cmd args…` with its file size capped at `blocks` × 512 bytes and SIGXFSZ ignored, so a
/// write past the cap fails with EFBIG (a full disk, as the program sees it).
fn capped(env: &TestEnv, blocks: u32, bin: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(volley_tests::bin(bin))
        .args(args)
        .envs(env.envs())
        .kill_on_drop(true);
    cmd
}

/// The export that fails half way leaves the earlier complete file as it was and no
/// `FILE.partial`; the one that succeeds leaves FILE whole and no `FILE.partial`.
fn assert_whole_or_untouched(
    out: &std::process::Output,
    target: &Path,
    before: &str,
) -> anyhow::Result<()> {
    assert_eq!(out.status.code(), Some(73), "{}", describe(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot write {}", target.display())),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(target).ok().as_deref() == Some(before),
        "a failed export removed or changed {}",
        target.display()
    );
    let partial = format!("{}.partial", target.display());
    assert!(
        !Path::new(&partial).exists(),
        "a failed export left {partial}"
    );
    Ok(())
}

#[tokio::test]
async fn out_file_exists_only_whole_for_results_and_run() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 300)?;
    let spec = env.write_spec("atomic", "/users/{id}", "[chunking]\nsize = 50\n")?;
    let job = fleet_job(&env, &spec, &input).await?;

    // `volley results --out`: complete, it is FILE (no FILE.partial) and the whole export.
    let target = env.path("res.jsonl");
    let target_s = path_str(&target)?;
    let out = env
        .run("volley", &["results", &job, "--out", target_s])
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = env.run("volley", &["results", &job]).await?;
    let whole = std::fs::read_to_string(&target)?;
    assert_eq!(whole.lines().count(), 300);
    assert_eq!(whole.as_bytes(), stdout.stdout, "FILE is the whole export");
    assert!(!env.path("res.jsonl.partial").exists());
    // 300 result lines with bodies are well over 16 × 512 bytes: the export fails when
    // written, after FILE.partial was created and partly written.
    assert!(whole.len() > 4 * 16 * 512, "{} bytes", whole.len());
    let out = capped(&env, 16, "volley", &["results", &job, "--out", target_s])
        .output()
        .await?;
    assert_whole_or_untouched(&out, &target, &whole)?;

    // `volley run --out`: the same.
    let run_target = env.path("run.jsonl");
    let run_s = path_str(&run_target)?;
    let (spec_s, input_s) = (path_str(&spec)?, path_str(&input)?);
    let args = ["run", "--spec", spec_s, "--input", input_s, "--out", run_s];
    let out = env.run("volley", &args).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run_whole = std::fs::read_to_string(&run_target)?;
    assert_eq!(run_whole.lines().count(), 300);
    assert!(!env.path("run.jsonl.partial").exists());
    let out = capped(&env, 16, "volley", &args).output().await?;
    assert_whole_or_untouched(&out, &run_target, &run_whole)?;
    Ok(())
}

#[tokio::test]
async fn results_come_out_in_input_order_when_chunks_finish_out_of_order() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    // 20 chunks of 10; the records of chunk 0 take 3 s, those of chunk 7 1.5 s, the rest
    // answer at once: chunk 0 is committed last.
    let mut file = std::fs::File::create(&input)?;
    for i in 0..200u64 {
        let delay = match i / 10 {
            0 => 3_000,
            7 => 1_500,
            _ => 0,
        };
        writeln!(file, r#"{{"id":"r{i:06}","d":{delay}}}"#)?;
    }
    drop(file);
    let spec = env.write_spec(
        "order",
        "/users/{id}?delay_ms={d}",
        "[chunking]\nsize = 10\n[concurrency]\nper_worker = 64\n[result]\nbody = \"none\"\n",
    )?;
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "2s", "--prefetch", "4"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "2s", "--prefetch", "4"])?;
    let job = env.produce(&spec, &input, &[]).await?;

    // Chunks finish out of order: an export while chunk 0 is still running holds the
    // other chunks and says one is not committed.
    let store = env.store()?;
    let id = volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?;
    eventually(Duration::from_secs(30), || async {
        let status = store.job_status(&id).await?;
        let done = status.as_ref().map_or(0, |s| s.chunks_done);
        anyhow::ensure!(done >= 19, "{status:?}");
        anyhow::Ok(())
    })
    .await
    .context("19 of 20 chunks never done")?;
    let early = env.run("volley", &["results", &job]).await?;
    assert!(early.status.success(), "{}", describe(&early));
    let early_lines = line_numbers(&String::from_utf8(early.stdout.clone())?)?;
    // Chunk 0 (lines 1-10, 3 s per record against 0 ms elsewhere) is the one missing:
    // later chunks committed before it.
    assert_eq!(early_lines.len(), 190, "{early_lines:?}");
    assert_eq!(early_lines.first(), Some(&11), "{early_lines:?}");
    let stderr = String::from_utf8_lossy(&early.stderr);
    assert!(
        stderr.contains("1 of 20 chunks are not committed yet"),
        "{stderr}"
    );
    assert_strictly_increasing(&early_lines);

    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.state(), "completed", "{}", fin.json);
    let lines = line_numbers(&export(&env, &job, &[]).await?)?;
    assert_eq!(lines, (1..=200).collect::<Vec<u64>>(), "input order");
    let csv = env
        .run("volley", &["results", &job, "--format", "csv"])
        .await?;
    let mut reader = csv::Reader::from_reader(csv.stdout.as_slice());
    let csv_lines: Vec<u64> = reader
        .records()
        .map(|r| Ok(r?[1].parse()?))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(csv_lines, lines, "CSV in input order too");
    assert_eq!(env.mock.stats().requests, 200);
    for w in [&mut w1, &mut w2] {
        finish_ok(w, Duration::from_secs(30)).await?;
    }
    Ok(())
}

fn line_numbers(jsonl: &str) -> anyhow::Result<Vec<u64>> {
    jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            v["line"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no line in {l}"))
        })
        .collect()
}

fn assert_strictly_increasing(lines: &[u64]) {
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "lines out of order: {lines:?}"
    );
}
