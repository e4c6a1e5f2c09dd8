//! The API misbehaving (T35–T41): connection resets, silence, endless and oversized bodies,
//! invalid JSON, redirect loops. Each becomes a classified failed outcome; nothing hangs or
//! crashes, and the same worker goes on to finish healthy records.

use std::time::{Duration, Instant};
use volley_tests::support::describe;
use volley_tests::tiny::{self, Reply};
use volley_tests::{TestEnv, check_results, write_jsonl};

fn misbehave(target: &str, _port: u16) -> Reply {
    let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\
              connection: close\r\n\r\n{\"a\": 1}";
    let path = target.split('?').next().unwrap_or_default();
    match path.rsplit('/').next().unwrap_or_default() {
        // r000000..r000005: hang up, stall, bad JSON, redirect loop, 2 MB body, a 500 with a
        // 2 MB body.
        "r000000" => Reply::Hangup,
        "r000001" => Reply::Stall,
        "r000002" => Reply::Bytes(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\
             connection: close\r\n\r\n{not json"
                .into(),
        ),
        "r000003" => Reply::Bytes(format!(
            "HTTP/1.1 302 Found\r\nlocation: {path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )),
        "r000004" => Reply::Bytes(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{}",
            "x".repeat(2 << 20)
        )),
        "r000005" => Reply::Bytes(format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{}",
            "x".repeat(2 << 20)
        )),
        _ => Reply::Bytes(ok.into()),
    }
}

#[tokio::test]
async fn a_misbehaving_api_gives_classified_failures_and_nothing_hangs() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 50)?;
    let server = tiny::serve(misbehave).await?;
    let spec = env.path("api.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"misbehave\"\n[retry]\nmax_attempts = 2\nbase_delay = \"10ms\"\n\
             [breaker]\nenabled = false\n[result]\nbody = \"json\"\nmax_body_bytes = 65536\n\
             [request]\nurl = \"http://127.0.0.1:{}/users/{{id}}\"\ntimeout = \"1s\"\n",
            server.port
        ),
    )?;
    let out_path = env.path("out.jsonl");
    let started = Instant::now();
    let out = env.run_embedded(&spec, &input, &out_path, &[]).await?;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    // The stalled record is the slowest: two 1 s timeouts and a 10 ms backoff (measured:
    // 2.2 s for the whole run, start-up included); 5 s leaves room for a busy machine. A
    // stall the timeout did not cut would hold the run until the 60 s bound above.
    assert!(
        took < Duration::from_secs(5),
        "a stalled API is bounded by the request timeout: the run took {took:?}"
    );
    let results = check_results(&std::fs::read_to_string(&out_path)?, &ids)?;
    let error = |id: &str| {
        results
            .lines
            .iter()
            .find(|l| l.id == id)
            .and_then(|l| l.error.clone())
            .unwrap_or_default()
    };
    assert!(
        // A connection the server closes before answering: the request never got an answer
        // on it, so it counts as a connection failure (retried like one).
        error("r000000").starts_with("connect: "),
        "hang-up: {}",
        error("r000000")
    );
    assert!(
        error("r000001").starts_with("timeout: "),
        "stall: {}",
        error("r000001")
    );
    assert!(
        error("r000002").starts_with("decode: "),
        "bad JSON: {}",
        error("r000002")
    );
    assert!(
        error("r000003").starts_with("redirect: "),
        "loop: {}",
        error("r000003")
    );
    assert!(
        error("r000004").starts_with("body_too_large: "),
        "2 MB body: {}",
        error("r000004")
    );
    // An error body over the cap is not kept, and does not hide the status.
    assert_eq!(
        error("r000005"),
        "status: HTTP 500 Internal Server Error",
        "500 with a 2 MB body"
    );
    assert_eq!(results.ok(), 44, "every other record succeeded");
    // Retryable failures were tried twice, the others once.
    let attempts = |id: &str| {
        results
            .lines
            .iter()
            .find(|l| l.id == id)
            .map_or(0, |l| l.attempts)
    };
    assert_eq!((attempts("r000001"), attempts("r000002")), (2, 1));
    // The redirect loop stopped at the bound (5 hops), never looped on.
    let hops = server
        .lines()
        .iter()
        .filter(|l| l.contains("/users/r000003"))
        .count();
    // A redirect error is not retried: one attempt, the request and its 5 followed hops.
    assert_eq!(attempts("r000003"), 1, "a redirect loop is not retried");
    assert_eq!(
        hops,
        1 + 5,
        "the redirect loop was followed {hops} times, not 5"
    );
    Ok(())
}
