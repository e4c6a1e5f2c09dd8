//! A chunk held longer than RabbitMQ's consumer_timeout (T21, slow): a long Retry-After
//! pauses the host past the broker's limit. The worker returns the chunk before the broker
//! acts (`--max-hold`), so its channel and its other chunks survive, and the job completes.
//! Ignored in a default run (reported as skipped); runs with VOLLEY_SLOW=1.

use crate::oracle::{ApiBound, oracle};
use std::time::Duration;
use volley_tests::TestEnv;
use volley_tests::private::PrivateBroker;
use volley_tests::support::wait_exit;

#[tokio::test]
#[ignore = "slow: runs with VOLLEY_SLOW=1"]
async fn a_chunk_held_past_the_consumer_timeout_is_returned_before_the_broker_acts()
-> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let pb = PrivateBroker::start("consumer_timeout = 30000\n")?;
    let env = TestEnv::new().await?.with_servers(Some(pb.url()), None);
    let input = env.path("records.jsonl");
    let mut text = String::new();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..200 {
        let id = format!("r{i:06}");
        text.push_str(&format!(
            "{{\"id\":\"{id}\",\"ff\":{}}}\n",
            u8::from(i == 150)
        ));
        ids.insert(id);
    }
    std::fs::write(&input, text)?;
    let spec = env.write_spec(
        "hold",
        "/users/{id}?fail_first={ff}&status=429&retry_after=70",
        "[chunking]\nsize = 20\n[retry]\nmax_delay = \"120s\"\n[result]\nbody = \"none\"\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker(
        "w",
        &[
            "--max-hold",
            "20s",
            "--prefetch",
            "4",
            "--exit-when-idle",
            "5s",
        ],
    )?;
    // The 70 s pause outlasts `--max-hold 20s` up to 4 times; each time the worker returns
    // the chunks it holds (prefetch 4 × 20 records), whose records already called are
    // called again on the next delivery.
    let returned = ApiBound::AtMost(4 * 4 * 20, "chunks returned by --max-hold");
    let verdict = oracle(&env, &job, &ids, 0, returned, Duration::from_secs(240)).await?;
    assert_eq!(verdict.u64("ok"), 200);
    assert!(
        wait_exit(&mut worker, Duration::from_secs(60))
            .await?
            .success()
    );
    let log = std::fs::read_to_string(env.path("w.log"))?;
    assert!(
        log.contains("chunk held too long"),
        "the worker returned a held chunk: {log}"
    );
    assert!(
        !log.contains("consumer lost its channel"),
        "the channel survived: {log}"
    );
    let broker_log = crate::kit::served_broker_log(&pb);
    assert!(
        !broker_log.contains("timed out waiting for delivery acknowledgement")
            && !broker_log.contains("PRECONDITION_FAILED"),
        "the broker never timed the consumer out"
    );
    Ok(())
}
