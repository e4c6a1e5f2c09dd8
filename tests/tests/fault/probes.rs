//! A worker's probes through a broker outage on a private RabbitMQ: `/livez` stays 200 (a
//! broker outage must not restart healthy pods), `/readyz` turns 503 naming RabbitMQ, with
//! its password hidden, and back to 200 once the worker has reconnected.

use anyhow::Context as _;
use std::time::Duration;
use volley_tests::private::PrivateBroker;
use volley_tests::support::{finish_ok, http_get, send_signal};
use volley_tests::{TestEnv, eventually_every};

/// Waits until `/readyz` on `addr` answers `status`; returns its body.
async fn readyz_becomes(addr: &str, status: u16, within: Duration) -> anyhow::Result<String> {
    eventually_every(within, Duration::from_millis(100), || async {
        let (code, body) = http_get(addr, "/readyz").await?;
        anyhow::ensure!(code == status, "/readyz answered {code} {body:?}");
        anyhow::Ok(body)
    })
    .await
}

#[tokio::test]
async fn probes_through_a_broker_outage_keep_live_and_name_rabbitmq_while_not_ready()
-> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let pb = PrivateBroker::start("")?;
    let env = TestEnv::new().await?.with_servers(Some(pb.url()), None);
    let http = format!("127.0.0.1:{}", volley_tests::private::free_port()?);
    let mut worker = env.spawn_worker("w1", &["--http-addr", &http])?;
    readyz_becomes(&http, 200, Duration::from_secs(30))
        .await
        .context("the worker never became ready")?;
    pb.stop_app()?;
    let reason = readyz_becomes(&http, 503, Duration::from_secs(30))
        .await
        .context("/readyz stayed 200 with the broker down")?;
    let name = format!(
        "RabbitMQ at amqp://guest:***@127.0.0.1:{}/%2f: not connected",
        pb.port
    );
    assert!(
        reason.starts_with(&name),
        "{reason:?} does not start with {name:?}"
    );
    assert!(
        !reason.contains("guest:guest"),
        "the password shows: {reason}"
    );
    assert!(!reason.contains('\n'), "not one line: {reason:?}");
    // Live throughout the outage: asked a few times, a second apart.
    for _ in 0..3 {
        assert_eq!(http_get(&http, "/livez").await?, (200, "ok".to_string()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        http_get(&http, "/readyz").await?.0,
        503,
        "ready again with the broker down"
    );
    pb.start_app()?;
    let body = readyz_becomes(&http, 200, Duration::from_secs(60))
        .await
        .context("/readyz did not come back after the broker did")?;
    assert_eq!(body, "ok");
    send_signal("-TERM", worker.id().expect("worker pid"))?;
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    let log = std::fs::read_to_string(env.path("w1.log"))?;
    assert!(log.contains("consumer reconnected"), "{log}");
    Ok(())
}
