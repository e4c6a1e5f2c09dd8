//! The HTTP engine against the mock API: retries, `Retry-After`, fleet-wide rate limits and
//! pauses, the circuit breaker, and the body cap. Timing checks read the mock's own arrival
//! times (`Stats::times_ms`), so they judge what the API actually saw.

use anyhow::Context as _;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use volley_tests::support::{
    assert_worker_did_records, describe, export, finish_ok, wait_for_job, wait_workers,
};
use volley_tests::{ResultsCheck, TestEnv, check_results, write_jsonl};

/// Clock slack between the mock's arrival stamps and the engine's timers.
const SLACK_MS: u64 = 50;

/// `volley run` (the embedded pipeline); returns the parsed results.
async fn run_embedded(
    env: &TestEnv,
    spec: &Path,
    input: &Path,
    ids: &BTreeSet<String>,
) -> anyhow::Result<(std::process::Output, ResultsCheck)> {
    let out_path = env.path("out.jsonl");
    let out = env
        .run_embedded(spec, input, &out_path, &["--json"])
        .await?;
    let text = std::fs::read_to_string(&out_path)
        .map_err(|e| anyhow::anyhow!("no results ({e}): {}", describe(&out)))?;
    Ok((out, check_results(&text, ids)?))
}

/// Writes records `{"id":"r000000", FIELDS...}` with `fields(i)` giving the extra JSON members.
fn write_records(
    path: &Path,
    n: u64,
    fields: impl Fn(u64) -> String,
) -> anyhow::Result<BTreeSet<String>> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let id = format!("r{i:06}");
        writeln!(file, r#"{{"id":"{id}",{}}}"#, fields(i))?;
        ids.insert(id);
    }
    file.flush()?;
    Ok(ids)
}

/// Replaces the spec's request timeout.
fn set_timeout(spec: &PathBuf, timeout: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(spec)?
        .replace("timeout = \"5s\"", &format!("timeout = \"{timeout}\""));
    std::fs::write(spec, text)?;
    Ok(())
}

/// Arrivals within `[from, to)`.
fn count_between(times: &[u64], from: u64, to: u64) -> usize {
    times.iter().filter(|t| **t >= from && **t < to).count()
}

/// The most arrivals in any window `[t, t + w)` starting at an arrival.
fn max_in_window(times: &[u64], w: u64) -> usize {
    let mut best = 0;
    let mut end = 0;
    for (start, t) in times.iter().enumerate() {
        while end < times.len() && times[end] < t + w {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

#[tokio::test]
async fn failed_calls_are_retried_until_they_succeed_and_every_attempt_is_counted()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 400)?;
    // Half the calls fail with 503 at random; 20 attempts make a record that never gets
    // through a one-in-a-million event. The breaker would (rightly) trip at 50% failures.
    let spec = env.write_spec(
        "retry",
        "/users/{id}?fail_pct=50&status=503",
        "[retry]\nmax_attempts = 20\nbase_delay = \"2ms\"\nmax_delay = \"20ms\"\n\
         [breaker]\nenabled = false\n[result]\nbody = \"none\"\n",
    )?;
    let (out, results) = run_embedded(&env, &spec, &input, &ids).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stats = env.mock.stats();
    let mut retried = 0;
    let mut attempts_sum = 0u64;
    for line in &results.lines {
        assert!(line.ok, "{line:?}");
        assert_eq!(line.status, Some(200), "{line:?}");
        assert_eq!(line.error, None);
        assert!(line.attempts >= 1);
        retried += usize::from(line.attempts > 1);
        attempts_sum += u64::from(line.attempts);
        assert_eq!(
            stats.per_id.get(&line.id).copied(),
            Some(u64::from(line.attempts)),
            "the API saw each attempt of {}",
            line.id
        );
    }
    assert!(
        (120..=280).contains(&retried),
        "about half the records need a retry, got {retried} of 400"
    );
    assert_eq!(
        stats.requests, attempts_sum,
        "mock requests == sum of attempts"
    );

    // Deterministic: the first two calls of each id fail, so each record takes exactly three.
    env.mock.reset();
    let spec = env.write_spec(
        "first2",
        "/users/{id}?fail_first=2",
        "[retry]\nmax_attempts = 3\nbase_delay = \"2ms\"\n[breaker]\nenabled = false\n",
    )?;
    let few = env.path("few.jsonl");
    let few_ids = write_jsonl(&few, 50)?;
    let (out, results) = run_embedded(&env, &spec, &few, &few_ids).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for line in &results.lines {
        assert!(line.ok && line.attempts == 3, "{line:?}");
        assert_eq!(
            line.body.as_ref().and_then(|b| b["id"].as_str()),
            Some(line.id.as_str())
        );
    }
    assert_eq!(env.mock.stats().requests, 150);
    Ok(())
}

/// Checks that each id's second request came at least `secs` (less the clock slack) and at
/// most `max_ms` after its first, which was the only failure.
fn assert_retry_waited(stats: &volley_mockapi::Stats, n: usize, secs: u64, max_ms: u64) {
    assert_eq!(stats.failures_ms.len(), n, "one failure per record");
    assert_eq!(stats.per_id_times_ms.len(), n);
    let mut gaps = Vec::new();
    for (id, times) in &stats.per_id_times_ms {
        assert_eq!(times.len(), 2, "{id}: two requests, got {times:?}");
        assert!(
            stats.failures_ms.contains(&times[0]),
            "{id}: first was the failure"
        );
        let gap = times[1] - times[0];
        gaps.push(gap);
        assert!(
            gap + SLACK_MS >= secs * 1000,
            "{id} was retried {gap} ms after its 429, before its Retry-After of {secs}s"
        );
        assert!(gap <= max_ms, "{id} waited {gap} ms, far longer than asked");
    }
    eprintln!("retry-after {secs}s: gaps between each id's two requests (ms): {gaps:?}");
}

#[tokio::test]
async fn retry_after_seconds_and_dates_are_waited_out_despite_a_tiny_backoff() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 5)?;
    let retry = "[retry]\nmax_attempts = 3\nbase_delay = \"1ms\"\nmax_delay = \"30s\"\n";
    let spec = env.write_spec(
        "after-secs",
        "/users/{id}?fail_first=1&status=429&retry_after=2",
        retry,
    )?;
    let (out, results) = run_embedded(&env, &spec, &input, &ids).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        results
            .lines
            .iter()
            .all(|l| l.ok && l.attempts == 2 && l.status == Some(200)),
        "{:?}",
        results.lines
    );
    let stats = env.mock.stats();
    assert_retry_waited(&stats, 5, 2, 3_000);

    // The same as an HTTP-date (rounded up by the mock to a whole second, so 2 to 3 s ahead).
    env.mock.reset();
    let spec = env.write_spec(
        "after-date",
        "/users/{id}?fail_first=1&status=503&retry_after_date=2",
        retry,
    )?;
    let (out, results) = run_embedded(&env, &spec, &input, &ids).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        results.lines.iter().all(|l| l.ok && l.attempts == 2),
        "{:?}",
        results.lines
    );
    let stats = env.mock.stats();
    assert_retry_waited(&stats, 5, 2, 4_000);
    Ok(())
}

// The mock runs on the test's runtime: give it threads of its own so its timestamps are
// arrival times, not the moments a busy single thread got round to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_one_rate_limit() -> anyhow::Result<()> {
    const RATE: u64 = 200;
    const BURST: u64 = 20;
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 3_200)?;
    let spec = env.write_spec(
        "rate",
        "/users/{id}",
        &format!(
            "[concurrency]\nper_worker = 32\nrate_limit = {RATE}\nburst = {BURST}\n\
             [result]\nbody = \"none\"\n"
        ),
    )?;
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        workers.push(env.spawn_worker(name, &["--exit-when-idle", "3s"])?);
    }
    wait_workers(&env, &["w1", "w2", "w3"]).await?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!((fin.code, fin.u64("ok")), (0, 3_200), "{}", fin.json);
    check_results(&export(&env, &job, &[]).await?, &ids)?;
    let times = env.mock.stats().times_ms;
    assert_eq!(times.len(), 3_200);
    let (first, last) = (times[0], times[times.len() - 1]);
    let mid = first + (last - first) / 2;
    let steady = count_between(&times, mid - 5_000, mid + 5_000);
    // Windows starting in the first 300 ms are judged apart: there the first requests of each
    // worker wait for new connections after taking their tokens, and land together.
    let warm = first + 300;
    let warm_from = times.partition_point(|t| *t < warm);
    let report: Vec<(u64, usize, usize)> = [50, 100, 250, 500, 1_000, 2_000, 5_000]
        .iter()
        .map(|w| {
            (
                *w,
                max_in_window(&times, *w),
                max_in_window(&times[warm_from..], *w),
            )
        })
        .collect();
    eprintln!(
        "rate: {} requests over {} ms; steady 10 s window: {steady}; \
         (window ms, max anywhere, max after the first 300 ms): {report:?}",
        times.len(),
        last - first
    );
    assert!(
        (1_900..=2_100).contains(&steady),
        "10 s in the middle saw {steady} requests, not 2000 ± 5%"
    );
    // The README's bound, burst + R·w, once the connections are open, and the 10 more it
    // states for a starved machine: a worker the OS does not schedule for 50 ms sends the
    // requests whose tokens fell in that time together when it runs again (measured: 12-20
    // of 30 in 50 ms and 202-204 of 220 in a second with the machine busy; 73 of 70 in
    // 250 ms once, with three compilers sharing its 2 cores). Without the limit, three
    // workers send thousands in these windows.
    for (w, anywhere, warmed) in report {
        let allowed = BURST + RATE * w / 1_000 + RATE / 20;
        assert!(
            warmed as u64 <= allowed,
            "{warmed} requests within {w} ms (allowed {allowed})"
        );
        // Start-up: new connections can bunch requests that took their tokens in time, a
        // few (measured: 1 over the bound), never a second burst.
        let loose = 2 * BURST + RATE * w / 1_000;
        assert!(
            anywhere as u64 <= loose,
            "{anywhere} requests within {w} ms at start-up (allowed {loose})"
        );
    }
    for mut w in workers {
        finish_ok(&mut w, Duration::from_secs(30)).await?;
    }
    // All three workers took part (a limit kept by one worker alone proves nothing).
    for name in ["w1", "w2", "w3"] {
        assert_worker_did_records(&env, name)?;
    }
    Ok(())
}

#[tokio::test]
async fn a_429_pauses_every_worker_not_just_the_one_that_got_it() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    // One record in the middle of the job gets a 429 with Retry-After: 3 on its first call.
    let ids = write_records(&input, 4_000, |i| {
        format!(r#""ff":{}"#, u64::from(i == 2_000))
    })?;
    let spec = env.write_spec(
        "pause",
        "/users/{id}?delay_ms=5&fail_first={ff}&status=429&retry_after=3",
        "[concurrency]\nper_worker = 8\n[retry]\nbase_delay = \"1ms\"\n\
         [result]\nbody = \"none\"\n",
    )?;
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "3s", "--prefetch", "2"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "3s", "--prefetch", "2"])?;
    wait_workers(&env, &["w1", "w2"]).await?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!((fin.code, fin.u64("ok")), (0, 4_000), "{}", fin.json);
    let results = check_results(&export(&env, &job, &[]).await?, &ids)?;
    let hit = results
        .lines
        .iter()
        .find(|l| l.id == "r002000")
        .expect("r002000");
    assert_eq!((hit.ok, hit.attempts), (true, 2), "{hit:?}");
    let stats = env.mock.stats();
    assert_eq!(stats.failures_ms.len(), 1, "exactly one 429");
    let t429 = stats.failures_ms[0];
    let times = &stats.times_ms;
    let last_before_pause = times
        .iter()
        .filter(|t| **t < t429 + 2_000)
        .max()
        .copied()
        .unwrap_or(t429);
    let resumed = times
        .iter()
        .find(|t| **t > t429 + 1_000)
        .copied()
        .unwrap_or(t429);
    eprintln!(
        "pause: last request {} ms after the 429, next one {} ms after it; \
         after the 429: {} within 10 ms, {} within 50 ms, {} within 100 ms",
        last_before_pause - t429,
        resumed - t429,
        count_between(times, t429 + 1, t429 + 10),
        count_between(times, t429 + 1, t429 + 50),
        count_between(times, t429 + 1, t429 + 100),
    );
    // Requests already on the wire when the 429 arrived (at most per_worker = 8 per worker)
    // still land just after it.
    let grace = 100;
    let during = count_between(times, t429 + grace, t429 + 3_000 - SLACK_MS);
    let before = count_between(times, t429.saturating_sub(1_000), t429);
    let after = count_between(times, t429 + 3_000, t429 + 4_000);
    let in_grace = count_between(times, t429 + 1, t429 + grace);
    eprintln!(
        "pause: {before} requests in the second before the 429, {in_grace} in the {grace} ms \
         grace, {during} during the pause, {after} in the second after it"
    );
    assert!(before > 50, "traffic was flowing before the 429 ({before})");
    // In flight when the 429 came (8 per worker), plus what the other worker sends in the
    // few milliseconds the pause takes to reach it through Redis (about 1.6 requests/ms at
    // 8 slots and 5 ms per call): a pause kept by one worker only would let ~160 through.
    assert!(
        in_grace <= 32,
        "{in_grace} requests reached the API in the {grace} ms after the 429: more than were \
         in flight or sent before the pause could arrive"
    );
    assert_eq!(
        during, 0,
        "requests reached the API while the host was paused"
    );
    assert!(after > 0, "traffic resumed after the pause");
    for w in [&mut w1, &mut w2] {
        finish_ok(w, Duration::from_secs(30)).await?;
    }
    // Both workers were busy around the pause, so a pause kept only by the worker that
    // received the 429 would have let the other one's requests through.
    for name in ["w1", "w2"] {
        assert_worker_did_records(&env, name)?;
    }
    Ok(())
}

#[tokio::test]
async fn breaker_holds_records_through_an_outage_with_only_probes_reaching_the_api()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 1_000)?;
    let spec = env.write_spec(
        "breaker",
        "/users/{id}?delay_ms=2",
        "[concurrency]\nper_worker = 8\n\
         [retry]\nmax_attempts = 5\nbase_delay = \"20ms\"\nmax_delay = \"200ms\"\n\
         [breaker]\nmin_calls = 10\nfailure_percent = 50\nwindow = \"10s\"\ncooldown = \"1s\"\n\
         ramp = \"1s\"\nmax_wait = \"60s\"\n[result]\nbody = \"none\"\n",
    )?;
    // max_attempts 5: before a worker's breaker has seen min_calls failures, a record's
    // first quick retries spend attempts like any failure.
    env.mock.set_outage(Some(503));
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "3s", "--prefetch", "2"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "3s", "--prefetch", "2"])?;
    wait_workers(&env, &["w1", "w2"]).await?;
    let job = env.produce(&spec, &input, &[]).await?;
    // Wait for the first failures, then keep the outage up for 3 s.
    volley_tests::eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(10),
        || async { env.mock.stats().requests != 0 },
    )
    .await
    .context("no request reached the API")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = env.run("volley", &["status", &job, "--json"]).await?;
    let status_json: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    eprintln!("status while open: {status_json}");
    let breaker = status_json["host"]["breaker"].as_str().unwrap_or_default();
    assert!(
        breaker.starts_with("open"),
        "volley status shows the open breaker: {status_json}"
    );
    let during = env.mock.stats().times_ms;
    env.mock.set_outage(None);
    let recovering = Instant::now();
    let fin = wait_for_job(&env, &job).await?;
    let recovery = recovering.elapsed();
    let first = during[0];
    let end = first + 3_000;
    // After the first second the breaker must be open: only probes (one per cooldown,
    // fleet-wide) may reach the API.
    let late = count_between(&during, first + 1_000, end + 1);
    let probes: Vec<u64> = during
        .iter()
        .filter(|t| **t >= first + 1_000)
        .map(|t| t - first)
        .collect();
    eprintln!(
        "breaker: {} requests during the 3 s outage, {} in its first second, {late} after it \
         (at ms {probes:?}); job done {recovery:?} after the outage ended",
        during.len(),
        count_between(&during, first, first + 1_000)
    );
    assert_eq!(
        (fin.code, fin.u64("ok"), fin.u64("failed")),
        (0, 1_000, 0),
        "every record got through after the outage: {}",
        fin.json
    );
    let results = check_results(&export(&env, &job, &[]).await?, &ids)?;
    assert!(results.lines.iter().all(|l| l.ok));
    // Every request of the outage failed and is one attempt of one record, probes included
    // (how many fell before the breakers opened depends on how fast each saw min_calls,
    // which a loaded machine stretches): the results account for each exactly once.
    let failed_attempts: u64 = results
        .lines
        .iter()
        .map(|l| u64::from(l.attempts) - 1)
        .sum();
    assert_eq!(
        failed_attempts,
        during.len() as u64,
        "every failed request of the outage is one attempt of one record"
    );
    assert!(
        during.len() <= 60,
        "the outage saw a flood of {} requests, not a trickle",
        during.len()
    );
    // One probe per cooldown, fleet-wide: in the last 2 s of the outage one or two probes
    // (a cooldown is 1 s, restarted by each failed probe), never two within one cooldown,
    // so a second worker probing on its own would show as a short gap. The mock stamps a
    // probe when it arrives, a little before the worker sees it fail: 10 ms of slack.
    let gaps: Vec<u64> = probes.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(
        (1..=2).contains(&late) && gaps.iter().all(|g| *g >= 990),
        "expected one probe per 1 s cooldown in the last 2 s, saw {late} (gaps {gaps:?} ms)"
    );
    // Recovery is bounded by the next probe (1 s cooldown), the 1 s ramp and the work itself.
    assert!(
        recovery < Duration::from_secs(10),
        "the job took {recovery:?} to finish after the outage ended"
    );
    for w in [&mut w1, &mut w2] {
        finish_ok(w, Duration::from_secs(30)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn oversized_and_endless_bodies_are_cut_at_the_cap() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    // r0: fits; r1: 100 000 bytes with a Content-Length; r2: a body that never ends.
    let ids = write_records(&input, 3, |i| match i {
        0 => r#""size":1000,"endless":false"#.into(),
        1 => r#""size":100000,"endless":false"#.into(),
        _ => r#""size":10,"endless":true"#.into(),
    })?;
    let spec = env.write_spec(
        "cap",
        "/users/{id}?body_bytes={size}&endless={endless}",
        "[result]\nbody = \"text\"\nmax_body_bytes = 1024\ntolerated_failure_percent = 100\n",
    )?;
    // A generous timeout: the cap, not the clock, must end the endless body.
    set_timeout(&spec, "60s")?;
    let started = Instant::now();
    let (out, results) = tokio::time::timeout(
        Duration::from_secs(30),
        run_embedded(&env, &spec, &input, &ids),
    )
    .await??;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(took < Duration::from_secs(20), "took {took:?}");
    for line in &results.lines {
        let kept = line
            .body
            .as_ref()
            .and_then(|b| b.as_str())
            .map_or(0, str::len);
        assert!(kept <= 1024, "{} kept {kept} bytes", line.id);
        if line.id == "r000000" {
            assert!(line.ok && kept == 1000, "{line:?}");
        } else {
            assert!(!line.ok, "{line:?}");
            assert_eq!(line.status, Some(200));
            assert_eq!(line.attempts, 1, "a too-large body is not retried");
            assert!(
                line.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("body_too_large: ")),
                "{line:?}"
            );
        }
    }
    // Nobody keeps the body: the endless one is drained up to the cap and succeeds.
    let spec = env.write_spec(
        "cap-none",
        "/users/{id}?body_bytes={size}&endless={endless}",
        "[result]\nbody = \"none\"\nmax_body_bytes = 1024\n",
    )?;
    set_timeout(&spec, "60s")?;
    let (out, results) = tokio::time::timeout(
        Duration::from_secs(30),
        run_embedded(&env, &spec, &input, &ids),
    )
    .await??;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(results.lines.iter().all(|l| l.ok && l.body.is_none()));
    Ok(())
}

#[tokio::test]
async fn a_fleet_level_host_limit_caps_a_job_that_sets_none() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 300)?;
    let base = env.mock.base_url();
    let out = env
        .run(
            "volley",
            &["hosts", "limit", &base, "--rate", "100", "--burst", "5"],
        )
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    let listed = env.run("volley", &["hosts", "--json"]).await?;
    let hosts: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
    assert_eq!(hosts[0]["limit"]["rate"], 100.0, "{hosts}");
    // The job itself sets no rate limit, and two workers would go far faster without one.
    let spec = env.write_spec("hostlimit", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "2s"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "2s"])?;
    wait_workers(&env, &["w1", "w2"]).await?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!((fin.code, fin.u64("ok")), (0, 300), "{}", fin.json);
    check_results(&export(&env, &job, &[]).await?, &ids)?;
    let times = env.mock.stats().times_ms;
    let span = times.last().copied().unwrap_or(0) - times.first().copied().unwrap_or(0);
    eprintln!("host limit: 300 requests over {span} ms");
    // 300 requests at 100/s with a burst of 5 take (300 - 5) / 100 = 2.95 s; without the
    // limit they take well under half a second. The margin covers a first request that
    // waited for its connection.
    assert!(
        span >= 2_700,
        "300 requests in {span} ms: faster than the host limit"
    );
    for w in [&mut w1, &mut w2] {
        finish_ok(w, Duration::from_secs(30)).await?;
    }
    let out = env.run("volley", &["hosts", "unlimit", &base]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    Ok(())
}
