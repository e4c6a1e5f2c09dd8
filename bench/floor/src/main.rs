//! `volley-floor --url URL --input FILE --concurrency N`: the raw floor of the benchmarks.
//!
//! The least a Rust program has to do to push a JSONL file through an HTTP API: read each
//! line, take its `id`, put it in the URL, keep N requests in flight (`buffer_unordered`),
//! read each response body and count the 2xx answers. No broker, no store, no retries, no
//! results file. It uses the same HTTP stack as Volley (reqwest with rustls, one keep-alive
//! pool), so the gap between the two is what Volley's pipeline costs.
//!
//! Prints one JSON line on stdout: `{"records":..,"ok":..,"failed":..,"elapsed_s":..}`;
//! exits 0 when every record got a 2xx, 1 otherwise, 2 on bad arguments.

use futures_util::StreamExt as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::io::BufRead as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What stays unencoded in a path segment: unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

struct Args {
    url: String,
    input: String,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut input = None;
    let mut concurrency = 256;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--input" => input = Some(value()?),
            "--concurrency" => {
                concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: volley-floor --url 'http://HOST/users/{id}?..' --input FILE.jsonl [--concurrency N]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    if !url.contains("{id}") {
        return Err("--url must contain {id}".into());
    }
    Ok(Args {
        url,
        input: input.ok_or("--input is required")?,
        concurrency: concurrency.max(1),
    })
}

/// The record's id: its `id` field (string or number), else its line number.
fn record_id(line: &str, number: u64) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => match map.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => number.to_string(),
        },
        _ => number.to_string(),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("volley-floor: {e}");
            return ExitCode::from(2);
        }
    };
    let file = match std::fs::File::open(&args.input) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("volley-floor: {}: {e}", args.input);
            return ExitCode::from(66);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("volley-floor: {e}");
            return ExitCode::from(1);
        }
    };
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1024))
        .pool_idle_timeout(Duration::from_secs(50))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("volley-floor: {e}");
            return ExitCode::from(1);
        }
    };
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let started = Instant::now();
    let mut records = 0_u64;
    let (head, tail) = args
        .url
        .split_once("{id}")
        .unwrap_or((args.url.as_str(), ""));
    let lines = std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .filter_map(|(i, line)| match line {
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some((i as u64 + 1, l)),
            Err(e) => {
                eprintln!("volley-floor: {}: {e}", args.input);
                None
            }
        });
    runtime.block_on(async {
        futures_util::stream::iter(lines)
            .map(|(number, line)| {
                records += 1;
                let id = record_id(&line, number);
                let url = format!("{head}{}{tail}", utf8_percent_encode(&id, SEGMENT));
                let client = &client;
                let (ok, failed) = (&ok, &failed);
                async move {
                    let good = match client.get(url).send().await {
                        Ok(response) => {
                            let success = response.status().is_success();
                            response.bytes().await.is_ok() && success
                        }
                        Err(_) => false,
                    };
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .buffer_unordered(args.concurrency)
            .for_each(|()| async {})
            .await;
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    println!(
        "{}",
        serde_json::json!({"records": records, "ok": ok, "failed": failed, "elapsed_s": elapsed})
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
