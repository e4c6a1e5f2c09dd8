//! The mock's knobs over real HTTP.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};
use volley_mockapi::{MockConfig, MockServer};

async fn mock(track_times: bool) -> MockServer {
    MockServer::start(
        "127.0.0.1:0",
        MockConfig {
            track_ids: false,
            track_times,
        },
    )
    .await
    .unwrap()
}

async fn status(client: &reqwest::Client, url: &str) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn fail_first_counts_per_id_without_track_ids() {
    let m = mock(false).await;
    let c = reqwest::Client::new();
    let base = m.base_url();
    let a = format!("{base}/users/a?fail_first=2");
    assert_eq!(status(&c, &a).await, 503);
    assert_eq!(status(&c, &a).await, 503);
    assert_eq!(status(&c, &a).await, 200);
    let b = format!("{base}/users/b?fail_first=1&status=429&retry_after=2");
    let r = c.get(&b).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(status(&c, &b).await, 200);
    m.reset();
    assert_eq!(status(&c, &a).await, 503, "reset clears the counts");
    assert_eq!(m.stats().requests, 1);
    let with_times = mock(true).await;
    let url = format!("{}/users/z?fail_first=1", with_times.base_url());
    assert_eq!(status(&c, &url).await, 503);
    assert_eq!(status(&c, &url).await, 200);
    let stats = with_times.stats();
    assert_eq!(stats.failures_ms, stats.times_ms[..1].to_vec());
}

#[tokio::test]
async fn retry_after_date_is_an_http_date_at_least_secs_ahead() {
    let m = mock(false).await;
    let r = reqwest::get(format!(
        "{}/users/x?status=503&retry_after_date=5",
        m.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let value = r.headers()["retry-after"].to_str().unwrap().to_string();
    assert!(value.ends_with(" GMT"), "{value}");
    let at = httpdate::parse_http_date(&value).unwrap();
    let ahead = at.duration_since(SystemTime::now()).unwrap();
    assert!(
        ahead > Duration::from_millis(4_500) && ahead <= Duration::from_secs(6),
        "{ahead:?}"
    );
}

#[tokio::test]
async fn outage_answers_every_user_route_until_switched_off() {
    let m = mock(true).await;
    let c = reqwest::Client::new();
    let base = m.base_url();
    let on = c
        .post(format!("{base}/admin/outage?status=502"))
        .send()
        .await
        .unwrap();
    assert_eq!(on.status().as_u16(), 204);
    let r = c
        .get(format!("{base}/users/1?retry_after=9"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert!(r.headers().get("retry-after").is_none());
    let post = c
        .post(format!("{base}/users"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 502);
    let off = c
        .delete(format!("{base}/admin/outage"))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status().as_u16(), 204);
    assert_eq!(status(&c, &format!("{base}/users/1")).await, 200);
    m.set_outage(Some(503));
    assert_eq!(status(&c, &format!("{base}/users/1")).await, 503);
    m.set_outage(None);
    assert_eq!(status(&c, &format!("{base}/users/1")).await, 200);
    let bad = c
        .post(format!("{base}/admin/outage?status=42"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let stats = m.stats();
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.times_ms.len(), 5);
    assert!(
        stats.failures_ms.is_empty(),
        "outage answers are not knob failures"
    );
    assert!(stats.times_ms.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn times_are_recorded_only_when_asked() {
    let m = mock(false).await;
    reqwest::get(format!("{}/users/1", m.base_url()))
        .await
        .unwrap();
    let stats = m.stats();
    assert_eq!((stats.requests, stats.times_ms.len()), (1, 0));
    let text = reqwest::get(format!("{}/stats", m.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let back: volley_mockapi::Stats = serde_json::from_str(&text).unwrap();
    assert_eq!(back, stats);
    let old: volley_mockapi::Stats = serde_json::from_str(r#"{"requests":3,"per_id":{}}"#).unwrap();
    assert!(old.times_ms.is_empty(), "times_ms defaults when absent");
}

#[tokio::test]
async fn endless_body_keeps_coming() {
    let m = mock(false).await;
    let mut r = reqwest::get(format!("{}/users/1?endless=true", m.base_url()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.content_length(), None, "chunked, no length");
    let mut read = 0usize;
    while read < 4 << 20 {
        read += r.chunk().await.unwrap().expect("the body never ends").len();
    }
    drop(r);
    // The server is still healthy after the client hung up.
    let ok = reqwest::get(format!("{}/users/1", m.base_url()))
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn in_flight_gauge_sees_concurrent_requests_and_restarts_its_maximum_on_reset() {
    let m = mock(false).await;
    let c = reqwest::Client::new();
    let url = format!("{}/users/a?delay_ms=300", m.base_url());
    let calls: Vec<_> = (0..5)
        .map(|_| tokio::spawn(status_owned(c.clone(), url.clone())))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while m.stats().in_flight < 5 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", m.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let stats = m.stats();
    assert_eq!((stats.in_flight, stats.in_flight_max), (0, 5));
    let text = c
        .get(format!("{}/stats", m.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (json["in_flight"].as_u64(), json["in_flight_max"].as_u64()),
        (Some(0), Some(5))
    );
    m.reset();
    assert_eq!(m.stats().in_flight_max, 0);
    assert_eq!(status(&c, &url).await, 200);
    assert_eq!(m.stats().in_flight_max, 1);
}

async fn status_owned(client: reqwest::Client, url: String) -> u16 {
    status(&client, &url).await
}
