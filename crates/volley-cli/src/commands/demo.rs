//! `volley demo`: a mock API in this process, 10,000 generated records, the embedded pipeline,
//! and a summary. No network, no services. `--write-input DIR` instead writes the demo's
//! records and spec for a fleet (the docker-compose demo), calling the mock API at `--api-url`.

use crate::commands::results::write_results;
use crate::commands::run::progress_bar;
use crate::embedded::{EmbeddedJob, run_embedded};
use crate::exit::{self, Failure};
use crate::export::ResultFormat;
use crate::render::{StatusView, duration};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use volley_core::JobSpec;
use volley_core::input::{InputFormat, ReaderOptions};
use volley_core::time::now_ms;
use volley_mockapi::{MockConfig, MockServer};

/// Run a demo job against a built-in mock API.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Records to generate.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 200)]
    pub concurrency: u32,
    /// Where the results go.
    #[arg(long, default_value = "volley-demo-results.jsonl")]
    pub out: PathBuf,
    /// Run nothing: write `records.jsonl` and `spec.toml` into this directory, for
    /// `volley-producer --spec DIR/spec.toml --input DIR/records.jsonl` on a fleet.
    #[arg(long, value_name = "DIR", requires = "api_url")]
    pub write_input: Option<PathBuf>,
    /// With --write-input: the base URL of the mock API the fleet's workers reach
    /// (`volley-mockapi`), such as `http://mockapi:8080`.
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
}

/// The demo's spec: 20–50 ms per call, 2% transient 503s that the retries absorb.
fn demo_spec(base_url: &str, concurrency: u32) -> String {
    format!(
        r#"name = "demo"

[request]
method = "GET"
url = "{base_url}/users/{{id}}?delay_ms=20&jitter_ms=30&fail_pct=2&status=503"
timeout = "5s"

[concurrency]
per_worker = {concurrency}

[retry]
max_attempts = 4
base_delay = "50ms"
max_delay = "1s"

[result]
body = "json"
select = ["/name", "/email"]
"#
    )
}

/// The demo's records, one JSON object a line.
fn write_records(out: &mut impl std::io::Write, count: u64) -> std::io::Result<()> {
    for i in 0..count {
        writeln!(
            out,
            r#"{{"id":"u{i:06}","email":"user{i}@example.com","n":{i}}}"#
        )?;
    }
    Ok(())
}

/// `--write-input`: the demo's records and spec, for a fleet.
fn write_input(dir: &Path, api_url: &str, args: &DemoArgs) -> Result<(), Failure> {
    let cannot = |what: &Path, e: std::io::Error| {
        Failure::new(
            exit::CANT_CREATE,
            format!("cannot write {}: {e}", what.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| cannot(dir, e))?;
    let spec_path = dir.join("spec.toml");
    let spec_text = demo_spec(api_url.trim_end_matches('/'), args.concurrency);
    JobSpec::from_toml(&spec_text).map_err(|e| Failure::new(exit::USAGE, e))?;
    std::fs::write(&spec_path, spec_text).map_err(|e| cannot(&spec_path, e))?;
    let records_path = dir.join("records.jsonl");
    let file = std::fs::File::create(&records_path).map_err(|e| cannot(&records_path, e))?;
    let mut out = std::io::BufWriter::new(file);
    write_records(&mut out, args.records)
        .and_then(|()| out.flush())
        .map_err(|e| cannot(&records_path, e))?;
    volley_core::outln!(
        "wrote {} records to {} and the spec to {} (calling {api_url})",
        args.records,
        records_path.display(),
        spec_path.display()
    );
    Ok(())
}

/// Runs `demo`.
///
/// # Errors
/// A [`Failure`] with the exit code.
pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    if let (Some(dir), Some(api_url)) = (&args.write_input, &args.api_url) {
        return write_input(dir, api_url, &args);
    }
    let mock = MockServer::start("127.0.0.1:0", MockConfig::default())
        .await
        .map_err(|e| {
            Failure::new(
                exit::UNAVAILABLE,
                format!("cannot start the mock API on 127.0.0.1: {e}"),
            )
        })?;
    let spec_text = demo_spec(&mock.base_url(), args.concurrency);
    let spec = JobSpec::from_toml(&spec_text).map_err(|e| Failure::new(exit::INTERNAL, e))?;
    let mut records = Vec::with_capacity(usize::try_from(args.records).unwrap_or(0) * 64);
    // Writing into a Vec cannot fail.
    let _ = write_records(&mut records, args.records);
    volley_core::errln!(
        "volley demo: {} records against the mock API at {} ({} in flight, 20-50 ms per call, 2% transient 503s)",
        args.records,
        mock.base_url(),
        args.concurrency
    );
    let job = EmbeddedJob {
        reader: ReaderOptions {
            format: InputFormat::Jsonl,
            id_field: "id".into(),
            max_record_bytes: 1 << 20,
            source_name: "demo.jsonl".into(),
        },
        spec_text,
        spec,
        input: Box::new(std::io::Cursor::new(records)),
        input_name: "demo.jsonl".into(),
        drain_timeout: volley_worker::WorkerOptions::default().drain_timeout,
        skip_done: None,
    };
    let bar = progress_bar("records");
    // The demo is not interruptible: Ctrl-C ends it as any program (nothing to keep).
    let finished = run_embedded(job, &bar, &tokio_util::sync::CancellationToken::new())
        .await
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    bar.finish_and_clear();
    let requests = mock.stats().requests;
    mock.shutdown().await;
    write_results(
        &finished.store,
        &finished.job,
        finished.status.chunks_done,
        Some(&args.out),
        ResultFormat::Jsonl,
        false,
    )
    .await?;
    let view = StatusView::new(finished.status.clone(), now_ms());
    let wall = finished.elapsed.as_secs_f64();
    let one_by_one = finished.status.latency_sum_ms as f64 / 1000.0;
    let s = &view.status;
    volley_core::outln!(
        "records      {} done: {} ok, {} failed, {} retries ({} requests)",
        s.done,
        s.ok,
        s.failed,
        s.retries,
        requests
    );
    volley_core::outln!(
        "throughput   {:.0} records/s in {}",
        s.done as f64 / wall.max(0.001),
        duration(wall)
    );
    volley_core::outln!(
        "latency      p50 {:.0} ms, p99 {:.0} ms",
        view.p50_ms.unwrap_or(0.0),
        view.p99_ms.unwrap_or(0.0)
    );
    volley_core::outln!(
        "one by one   the same calls would take {} sequentially ({:.0}x faster)",
        duration(one_by_one),
        one_by_one / wall.max(0.001)
    );
    volley_core::outln!("results      {}", args.out.display());
    volley_core::outln!("state        {}", s.state);
    match exit::for_state(s.state) {
        exit::OK => Ok(()),
        code => Err(Failure::new(code, format!("demo job ended {}", s.state))),
    }
}
