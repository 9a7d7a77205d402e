//! The operator's reads: attempts counted per time bucket (a bucket where no attempt got an
//! HTTP answer included), failed deliveries, the gauges, an endpoint's recent attempts,
//! first-attempt latencies and the endpoints that need a person.

use std::time::Duration;

use herald::config::Config;
use herald::domain::EndpointStatus;
use herald::store::{latency_bucket, AttemptBucket, EndpointPatch};

use crate::common::Receiver;
use crate::{engine_config, Db, T0, TENANT};

contract!(
    attempts_are_counted_per_bucket_answered_or_not,
    gauges_count_the_queue_and_the_endpoints
);

const HOUR: i64 = 3_600_000;
/// Nothing listens on port 9 of loopback: every attempt fails without an answer.
const REFUSED: &str = "http://127.0.0.1:9/down";

/// No retries: a failure is final, so each round's attempts are the ones published for.
fn once() -> Config {
    Config {
        retry_schedule: Vec::new(),
        ..engine_config()
    }
}

fn attempts_are_counted_per_bucket_answered_or_not(db: &Db) {
    let receiver = Receiver::ok();
    db.endpoint(&receiver.url("/ok"), "ok.*");
    let down = db.endpoint(REFUSED, "*");
    let (mut engine, clock) = db.harness(once());
    // Hour one: a success and a failure without an answer, sent 5 s after their publish.
    db.publish("ok.job", T0);
    clock.advance(Duration::from_secs(5));
    assert_eq!(engine.run_once().unwrap().len(), 2);
    // Hour two: one failure without an answer, alone in its bucket.
    clock.advance(Duration::from_millis(HOUR as u64));
    db.publish("down.job", T0 + HOUR);
    assert_eq!(engine.run_once().unwrap().len(), 1);

    let bucket = |t: i64| t / HOUR * HOUR;
    let buckets = db.on(db.store.attempt_buckets(T0 - HOUR, HOUR)).unwrap();
    let expected = [
        AttemptBucket {
            start: bucket(T0 + 5_000),
            succeeded: 1,
            failed: 1,
        },
        AttemptBucket {
            start: bucket(T0 + 5_000 + HOUR),
            succeeded: 0,
            failed: 1,
        },
    ];
    assert_eq!(buckets, expected);
    assert!(db
        .on(db.store.attempt_buckets(T0 + 2 * HOUR, HOUR))
        .unwrap()
        .is_empty());
    assert_eq!(db.on(db.store.deliveries_failed_since(T0)).unwrap(), 2);
    assert_eq!(
        db.on(db.store.deliveries_failed_since(T0 + 2 * HOUR))
            .unwrap(),
        0
    );

    let recent = db
        .on(db.store.endpoint_recent_attempts(TENANT, down, 10))
        .unwrap();
    let starts: Vec<i64> = recent.iter().map(|a| a.started_at).collect();
    assert_eq!(starts, [T0 + 5_000 + HOUR, T0 + 5_000], "newest first");
    assert!(recent
        .iter()
        .all(|a| a.status_code.is_none() && a.error.is_some() && !a.succeeded()));
    // Publish → first attempt: three first attempts 5 s after their publish, in two hours.
    let latency = db.on(db.store.first_attempt_latency(T0)).unwrap();
    let five_s = latency_bucket(5_000);
    let per_hour: Vec<(i64, i32, i64)> = latency
        .iter()
        .map(|l| (l.hour, l.bucket, l.count))
        .collect();
    assert_eq!(
        per_hour,
        [
            (bucket(T0 + 5_000), five_s, 2),
            (bucket(T0 + 5_000 + HOUR), five_s, 1)
        ]
    );
    assert!(db
        .on(db.store.first_attempt_latency(T0 + 3 * HOUR))
        .unwrap()
        .is_empty());
    let troubled = db.on(db.store.troubled_endpoints(10)).unwrap();
    assert_eq!(troubled.iter().map(|e| e.id).collect::<Vec<_>>(), [down]);
}

fn gauges_count_the_queue_and_the_endpoints(db: &Db) {
    let s = &db.store;
    let status = |status| EndpointPatch {
        status: Some(status),
        ..Default::default()
    };
    db.endpoint(REFUSED, "down.*");
    let paused = db.endpoint(REFUSED, "held.*");
    let disabled = db.endpoint(REFUSED, "*");
    db.on(s.update_endpoint(TENANT, paused, status(EndpointStatus::Paused), T0))
        .unwrap();
    db.on(s.update_endpoint(TENANT, disabled, status(EndpointStatus::Disabled), T0))
        .unwrap();
    db.publish("held.job", T0);
    db.publish("held.job", T0);
    db.publish("down.job", T0);
    let g = db.on(s.gauges()).unwrap();
    assert_eq!((g.pending, g.endpoints_failing, g.circuits_open), (3, 0, 0));
    assert_eq!(
        (g.endpoints_active, g.endpoints_paused, g.endpoints_disabled),
        (1, 1, 1)
    );

    // The active endpoint fails five times in a row: failing, and its circuit opens.
    let (mut engine, _clock) = db.harness(once());
    for _ in 0..4 {
        db.publish("down.job", T0);
    }
    assert_eq!(crate::drain(&mut engine), 5);
    let g = db.on(s.gauges()).unwrap();
    assert_eq!(
        (g.pending, g.endpoints_failing, g.circuits_open),
        (2, 1, 1),
        "{g:?}"
    );
}
