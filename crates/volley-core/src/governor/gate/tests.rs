use super::*;
use crate::SpecDuration;
use crate::governor::MemoryFleet;

fn limits(max_wait: Duration) -> JobLimits {
    JobLimits {
        job: "j".into(),
        breaker: BreakerSpec {
            min_calls: 3,
            max_wait: SpecDuration(max_wait),
            ..BreakerSpec::default()
        },
        max_pause: Duration::from_secs(1),
    }
}

/// `n` ordinary calls to `h` that failed with `error` (and `status`, when one came back).
async fn fail_calls(
    governor: &Governor,
    job: &JobLimits,
    status: Option<u16>,
    error: &RecordError,
    n: usize,
) {
    let seen = Observation {
        class: AttemptClass::of(status, Some(error)),
        error: Some(error),
        retry_after: None,
    };
    for _ in 0..n {
        governor.observe("h", Admission::Normal, seen, job).await;
    }
}

#[tokio::test]
async fn records_the_breaker_fails_carry_the_hosts_last_error() {
    let fleet = Arc::new(MemoryFleet::new());
    let governor = Governor::start(fleet.clone());
    let job = limits(Duration::ZERO);
    let refused = RecordError {
        kind: ErrorKind::Connect,
        message: "tcp connect error: Connection refused (os error 111)".into(),
    };
    fail_calls(&governor, &job, None, &refused, 3).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let error = governor.admit("h", &job).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Breaker);
    assert!(
        error.message.ends_with(
            "; last error: connect: tcp connect error: Connection refused (os error 111)"
        ),
        "{}",
        error.message
    );
    // The fleet keeps the cause with the phase, for other workers and `volley status`.
    let current = fleet.current().await.unwrap();
    assert!(
        current
            .iter()
            .any(|e| matches!(e, FleetEvent::Breaker { cause: Some(c), .. }
            if c.contains("Connection refused"))),
        "{current:?}"
    );
}

#[tokio::test]
async fn a_stored_breaker_read_before_any_call_leaves_the_jobs_settings_in_charge() {
    let fleet = Arc::new(MemoryFleet::new());
    fleet
        .announce(FleetEvent::Breaker {
            host: "h".into(),
            phase: BreakerPhase::Closed,
            cause: None,
        })
        .await
        .unwrap();
    let governor = Governor::start(fleet);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(governor.breaker_phase("h"), Some(BreakerPhase::Closed));
    // The job's min_calls (3), not a default's (20), opens it.
    let job = limits(Duration::from_secs(60));
    let refused = RecordError {
        kind: ErrorKind::Connect,
        message: "Connection refused".into(),
    };
    fail_calls(&governor, &job, None, &refused, 3).await;
    assert!(
        matches!(governor.breaker_phase("h"), Some(BreakerPhase::Open { .. })),
        "{:?}",
        governor.breaker_phase("h")
    );
}

#[tokio::test]
async fn past_max_wait_records_wait_for_a_due_probe_instead_of_failing() {
    let governor = Governor::start(Arc::new(MemoryFleet::new()));
    let mut job = limits(Duration::ZERO);
    job.breaker.cooldown = SpecDuration(Duration::from_millis(20));
    job.breaker.ramp = SpecDuration(Duration::from_millis(1));
    let down = RecordError {
        kind: ErrorKind::Status,
        message: "HTTP 503 Service Unavailable".into(),
    };
    fail_calls(&governor, &job, Some(503), &down, 3).await;
    // In the cool-down of a failed verdict, past max_wait: the host is known down.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let error = governor.admit("h", &job).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Breaker);
    // The cool-down over (a redrive, later): one record probes, the others wait for it.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(matches!(
        governor.admit("h", &job).await,
        Ok(Admission::Probe)
    ));
    let governor = Arc::new(governor);
    let waiting = tokio::spawn({
        let (governor, job) = (governor.clone(), job.clone());
        async move { governor.admit("h", &job).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "a record failed while the probe was out"
    );
    let answered = Observation {
        class: AttemptClass::Success,
        error: None,
        retry_after: None,
    };
    governor
        .observe("h", Admission::Probe, answered, &job)
        .await;
    let admitted = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("admitted after the probe answered")
        .expect("task");
    assert!(matches!(admitted, Ok(Admission::Normal)), "{admitted:?}");
}
