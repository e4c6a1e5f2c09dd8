use super::*;
use crate::SpecDuration;

fn spec() -> BreakerSpec {
    BreakerSpec {
        enabled: true,
        failure_percent: 50.0,
        min_calls: 10,
        window: SpecDuration(Duration::from_secs(10)),
        cooldown: SpecDuration(Duration::from_secs(5)),
        ramp: SpecDuration(Duration::from_secs(10)),
        max_wait: SpecDuration(Duration::from_secs(60)),
    }
}

/// A breaker opened at `at` by `min_calls` failures.
fn opened(spec: &BreakerSpec, at: u64) -> LocalBreaker {
    let mut b = LocalBreaker::new();
    for _ in 0..spec.min_calls {
        b.on_call(spec, true, at);
    }
    assert!(matches!(b.phase(), BreakerPhase::Open { .. }));
    b
}

fn never() -> f64 {
    panic!("rolled outside a ramp")
}

#[test]
fn opens_when_most_recent_calls_fail_and_not_before_min_calls() {
    let s = spec();
    let mut b = LocalBreaker::new();
    for i in 0..9 {
        assert_eq!(b.on_call(&s, true, 1_000 + i), None, "fewer than min_calls");
    }
    assert_eq!(
        b.on_call(&s, true, 1_010),
        Some(BreakerPhase::Open {
            since_ms: 1_010,
            until_ms: 6_010
        })
    );
    assert_eq!(b.on_call(&s, true, 1_020), None, "already open");
}

#[test]
fn opens_at_failure_percent_exactly() {
    let s = spec();
    let mut b = LocalBreaker::new();
    for i in 0..9 {
        assert_eq!(b.on_call(&s, i % 2 == 0, 1_000 + i), None);
    }
    // 5 failed of 10: 50%.
    assert!(b.on_call(&s, false, 1_010).is_some());
}

#[test]
fn stays_closed_below_the_threshold_and_forgets_old_calls() {
    let s = spec();
    let mut b = LocalBreaker::new();
    for i in 0..40 {
        assert_eq!(
            b.on_call(&s, i % 3 == 0, 1_000 + i * 10),
            None,
            "a third failing stays closed"
        );
    }
    let mut b = LocalBreaker::new();
    for i in 0..9 {
        b.on_call(&s, true, 1_000 + i);
    }
    // Ten seconds later the old failures have left the window.
    assert_eq!(b.on_call(&s, true, 12_000), None);
}

#[test]
fn a_disabled_job_is_neither_counted_nor_held() {
    let on = spec();
    let off = BreakerSpec {
        enabled: false,
        ..spec()
    };
    let mut b = LocalBreaker::new();
    for _ in 0..20 {
        assert_eq!(b.on_call(&off, true, 1_000), None);
    }
    assert_eq!(b.phase(), BreakerPhase::Closed);
    let mut b = opened(&on, 1_000);
    assert!(b.holds(&on) && !b.holds(&off));
    assert_eq!(b.decide(&off, 2_000, never), Decision::Go);
}

#[test]
fn each_job_judges_the_hosts_calls_by_its_own_settings() {
    let strict = BreakerSpec {
        min_calls: 3,
        cooldown: SpecDuration(Duration::from_secs(1)),
        ..spec()
    };
    let lenient = spec();
    let mut b = LocalBreaker::new();
    // Two failures of the lenient job, then one of the strict one: three calls, all
    // failed, reach the strict job's min_calls.
    assert_eq!(b.on_call(&lenient, true, 1_000), None);
    assert_eq!(b.on_call(&lenient, true, 1_001), None);
    assert_eq!(
        b.on_call(&strict, true, 1_002),
        Some(BreakerPhase::Open {
            since_ms: 1_002,
            until_ms: 2_002
        }),
        "the cool-down of the job whose call opened it"
    );
}

#[test]
fn open_waits_out_the_cooldown_then_asks_for_one_probe() {
    let s = spec();
    let mut b = opened(&s, 1_000);
    assert_eq!(b.decide(&s, 3_000, never), Decision::Wait(6_000));
    assert_eq!(
        b.decide(&s, 6_000, never),
        Decision::Probe { period: 6_000 }
    );
}

#[test]
fn a_failed_probe_reopens_keeping_when_the_outage_began() {
    let s = spec();
    let mut b = opened(&s, 1_000);
    assert_eq!(
        b.on_probe_result(&s, true, 6_100),
        BreakerPhase::Open {
            since_ms: 1_000,
            until_ms: 11_100
        }
    );
    assert_eq!(
        b.on_probe_result(&s, true, 11_200),
        BreakerPhase::Open {
            since_ms: 1_000,
            until_ms: 16_200
        },
        "a second failed probe too"
    );
}

#[test]
fn an_answered_probe_ramps_then_closes() {
    let s = spec();
    let mut b = opened(&s, 1_000);
    let ramp = b.on_probe_result(&s, false, 6_000);
    assert_eq!(
        ramp,
        BreakerPhase::Ramping {
            since_ms: 6_000,
            ramp_ms: 10_000
        }
    );
    // A quarter through the ramp: a quarter of the calls go.
    assert_eq!(b.decide(&s, 8_500, || 0.2), Decision::Go);
    assert_eq!(b.decide(&s, 8_500, || 0.3), Decision::Wait(8_600));
    // At the start, 5% still go.
    assert_eq!(b.decide(&s, 6_000, || 0.04), Decision::Go);
    assert_eq!(b.decide(&s, 16_000, never), Decision::RampDone);
    assert_eq!(b.phase(), BreakerPhase::Closed);
    assert_eq!(b.decide(&s, 16_001, never), Decision::Go);
    // Ramping still counts calls: failing again reopens it.
    let mut b = opened(&s, 1_000);
    b.on_probe_result(&s, false, 6_000);
    for i in 0..9 {
        assert_eq!(b.on_call(&s, true, 6_000 + i), None);
    }
    assert!(matches!(
        b.on_call(&s, true, 6_010),
        Some(BreakerPhase::Open {
            since_ms: 6_010,
            ..
        })
    ));
}

#[test]
fn fails_fast_past_max_wait_only_during_a_cooldown() {
    let s = BreakerSpec {
        max_wait: SpecDuration(Duration::from_secs(8)),
        ..spec()
    };
    let mut b = opened(&s, 1_000);
    b.on_probe_result(&s, true, 6_000);
    // Open 5 s, cool-down running: within max_wait, wait.
    assert_eq!(b.decide(&s, 6_000, never), Decision::Wait(11_000));
    // Open 9 s, cool-down running: past max_wait, fail fast.
    assert_eq!(
        b.decide(&s, 10_000, never),
        Decision::FailFast {
            since_ms: 1_000,
            open_for: Duration::from_secs(9)
        }
    );
    // The cool-down over: a probe is due, and nobody fails while it is out.
    assert_eq!(
        b.decide(&s, 11_000, never),
        Decision::Probe { period: 11_000 }
    );
    assert_eq!(
        b.decide(&s, 60_000, never),
        Decision::Probe { period: 11_000 }
    );
    // Each job's own max_wait.
    let patient = BreakerSpec {
        max_wait: SpecDuration(Duration::from_secs(120)),
        ..spec()
    };
    b.on_probe_result(&s, true, 61_000);
    assert_eq!(b.decide(&patient, 62_000, never), Decision::Wait(66_000));
}

#[test]
fn remembers_the_last_failure_in_one_buffer() {
    let mut b = LocalBreaker::new();
    assert_eq!(b.cause(), None);
    b.note_failure(&"connect: tcp connect error: Connection refused (os error 111)");
    b.note_failure(&"status: HTTP 503 Service Unavailable");
    assert_eq!(b.cause(), Some("status: HTTP 503 Service Unavailable"));
}
