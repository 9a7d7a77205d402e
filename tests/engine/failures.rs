//! When receivers fail: retries on the fake clock, auto-disable at its boundary, and an
//! endpoint deleted while its deliveries are in flight.

use std::time::Duration;

use herald::config::Config;
use herald::domain::EndpointStatus;
use herald::engine::Signal;
use herald::store::{StoreError, Verdict};

use crate::common::{Receiver, Reply};
use crate::{config, endpoint_to, Rig, T0, TENANT};

const MS: Duration = Duration::from_millis(1);

#[test]
fn retries_follow_the_schedule_on_the_fake_clock_then_fail() {
    let mut rig = Rig::new(config(), Receiver::start(|_, _| Reply::status(500)));
    rig.endpoint("/down", "*");
    let published = rig.publish("job.completed", 1);
    let id = rig.deliveries_of(&published[0].id)[0];
    let schedule = config().retry_schedule;
    assert_eq!(
        schedule.len(),
        3,
        "the default schedule: 1 min, 5 min, 30 min"
    );

    let mut sent_at = Vec::new();
    for (n, wait) in schedule.iter().enumerate() {
        sent_at.push(rig.now());
        assert_eq!(
            rig.harness.run_once().unwrap().len(),
            1,
            "attempt {}",
            n + 1
        );
        let due = rig.now() + wait.as_millis() as i64;
        let (delivery, _) = rig.delivery(id);
        assert_eq!(delivery.status, "pending");
        assert_eq!(delivery.attempts, n as i64 + 1);
        assert_eq!(delivery.last_status_code, Some(500));
        assert_eq!(delivery.next_attempt_at, Some(due));
        // The recorder tells the dispatcher when to look again (and wakes it, since the
        // claims it let go may unblock other work).
        let signals = rig.harness.signals();
        assert!(
            matches!(signals[..], [Signal::DueAt(at), Signal::Wake] if at == due),
            "{signals:?}"
        );

        // Not a millisecond early.
        rig.advance(*wait - MS);
        assert_eq!(rig.harness.step().unwrap(), 0, "claimed before it was due");
        rig.advance(MS);
    }

    // The schedule is used up: the fourth attempt is the last.
    sent_at.push(rig.now());
    let records = rig.harness.run_once().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].verdict, Verdict::Failed);
    let (delivery, attempts) = rig.delivery(id);
    assert_eq!(delivery.status, "failed");
    assert_eq!(delivery.attempts, 4);
    assert_eq!(delivery.next_attempt_at, None);
    let started: Vec<i64> = attempts.iter().map(|a| a.started_at).collect();
    assert_eq!(started, sent_at, "every attempt is recorded, oldest first");
    assert!(attempts.iter().all(|a| a.status_code == Some(500)));
    let got = rig.receiver.on_path("/down");
    assert_eq!(got.len(), 4);
    assert!(got
        .iter()
        .all(|r| r.headers.get("webhook-id") == Some(&published[0].id)));

    rig.advance(Duration::from_secs(86_400));
    assert_eq!(
        rig.harness.step().unwrap(),
        0,
        "a failed delivery stays failed"
    );
}

#[test]
fn an_endpoint_is_disabled_by_the_first_failure_at_the_boundary() {
    let hour = Duration::from_secs(3600);
    let config = Config {
        disable_after: hour,
        // Retries land one millisecond before the boundary, then exactly on it.
        retry_schedule: vec![hour - MS, MS, hour],
        ..config()
    };
    let mut rig = Rig::new(config, Receiver::start(|_, _| Reply::status(500)));
    let id = rig.endpoint("/flaky", "*");
    let sent = rig.publish("job.completed", 2);
    // Pending but not due before the boundary: nobody sends it, the disable cancels it.
    let later = rig.publish_at("job.completed", T0 + 2 * hour.as_millis() as i64);
    let endpoint = |rig: &Rig| {
        rig.block_on(rig.store().get_endpoint(TENANT, id))
            .expect("endpoint")
    };

    // The first failure starts the clock.
    assert_eq!(rig.harness.run_once().unwrap().len(), 2);
    let e = endpoint(&rig);
    assert_eq!(e.settings.status, EndpointStatus::Active);
    assert_eq!(e.failing_since, Some(T0));

    // Failing for 1 h - 1 ms: still active.
    rig.advance(hour - MS);
    assert_eq!(rig.harness.run_once().unwrap().len(), 2);
    let e = endpoint(&rig);
    assert_eq!(
        e.settings.status,
        EndpointStatus::Active,
        "{:?}",
        e.disabled_reason
    );

    // Failing for exactly 1 h: disabled, and nothing of it is pending any more.
    rig.advance(MS);
    assert_eq!(rig.harness.run_once().unwrap().len(), 2);
    let e = endpoint(&rig);
    assert_eq!(e.settings.status, EndpointStatus::Disabled);
    assert!(
        e.disabled_reason
            .as_deref()
            .is_some_and(|r| r.contains("disable_after")),
        "{:?}",
        e.disabled_reason
    );
    for p in &sent {
        let (delivery, attempts) = rig.delivery(rig.deliveries_of(&p.id)[0]);
        assert_eq!(delivery.status, "cancelled");
        assert_eq!(delivery.next_attempt_at, None);
        assert_eq!(attempts.len(), 3, "the last attempt is kept as history");
        assert_eq!(
            delivery.attempts, 3,
            "and counted, even after the cancellation"
        );
    }
    let (delivery, attempts) = rig.delivery(rig.deliveries_of(&later.id)[0]);
    assert_eq!(delivery.status, "cancelled");
    assert!(attempts.is_empty());

    rig.advance(3 * hour);
    assert_eq!(
        rig.harness.step().unwrap(),
        0,
        "a disabled endpoint gets nothing"
    );
    assert_eq!(rig.receiver.on_path("/flaky").len(), 6);
}

#[test]
fn a_delivery_deleted_mid_flight_leaves_nothing_and_spoils_nothing() {
    let receiver = Receiver::start(|path, _| match path {
        "/doomed" => Reply::status(500),
        _ => Reply::status(200),
    });
    let mut rig = Rig::new(config(), receiver);
    let doomed = rig.endpoint("/doomed", "*");
    let kept = rig.endpoint("/kept", "*");
    let published = rig.publish("job.completed", 2);
    let (mut doomed_ids, mut kept_ids) = (Vec::new(), Vec::new());
    for p in &published {
        for d in rig
            .block_on(rig.store().event_deliveries(TENANT, &p.id))
            .unwrap()
        {
            match d.endpoint_id == doomed {
                true => doomed_ids.push(d.id),
                false => kept_ids.push(d.id),
            }
        }
    }
    assert_eq!((doomed_ids.len(), kept_ids.len()), (2, 2));

    assert_eq!(rig.harness.step().unwrap(), 4);
    rig.block_on(rig.store().delete_endpoint(TENANT, doomed))
        .unwrap();
    // The requests were claimed before the delete and still go out; their records share
    // one batch with the kept endpoint's.
    let records = rig.harness.send_ready();
    assert_eq!(records.len(), 4);
    rig.harness.record(records);

    for id in &kept_ids {
        let (delivery, attempts) = rig.delivery(*id);
        assert_eq!(delivery.status, "succeeded", "delivery {id}");
        assert_eq!(attempts.len(), 1);
    }
    for id in &doomed_ids {
        let gone = rig.block_on(rig.store().get_delivery(TENANT, *id));
        assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
        let sql = "SELECT count(*) FROM attempts WHERE delivery_id = ?1";
        assert_eq!(rig.sql_count(sql, *id), 0, "no orphan attempt");
    }
    let sql = "SELECT count(*) FROM deliveries WHERE endpoint_id = ?1";
    assert_eq!(rig.sql_count(sql, doomed), 0);
    assert_eq!(rig.sql_count(sql, kept), 2);

    // Every claim was let go, and the deleted deliveries' retries never come.
    assert_eq!(rig.harness.board.total(), 0);
    rig.advance(Duration::from_secs(3600));
    assert_eq!(rig.harness.step().unwrap(), 0);
    assert_eq!(rig.receiver.on_path("/doomed").len(), 2);
    assert_eq!(rig.receiver.on_path("/kept").len(), 2);
}

/// An endpoint's own `disable_after` replaces the deployment's: a shorter one disables it
/// sooner, a longer one keeps it active past the deployment's.
#[test]
fn an_endpoint_s_own_disable_after_decides_when_it_is_disabled() {
    let hour = Duration::from_secs(3600);
    let config = Config {
        disable_after: 2 * hour,
        retry_schedule: vec![hour, hour, hour],
        ..config()
    };
    let mut rig = Rig::new(config, Receiver::start(|_, _| Reply::status(500)));
    let create = |rig: &Rig, path: &str, own: Duration| {
        let mut new = endpoint_to(&rig.receiver.url(path), "*");
        new.settings.disable_after = Some(own);
        let e = rig
            .block_on(rig.store().create_endpoint(TENANT, new, rig.now()))
            .expect("create endpoint");
        assert_eq!(e.settings.disable_after, Some(own));
        e.id
    };
    let shorter = create(&rig, "/short", hour);
    let longer = create(&rig, "/long", 3 * hour);
    rig.publish("job.completed", 1);
    let status = |rig: &Rig, id| {
        rig.block_on(rig.store().get_endpoint(TENANT, id))
            .expect("endpoint")
            .settings
            .status
    };

    // The first failures start both clocks.
    assert_eq!(rig.harness.run_once().unwrap().len(), 2);
    // One hour of failing: the endpoint with 1h is disabled, the one with 3h is not.
    rig.advance(hour);
    assert_eq!(rig.harness.run_once().unwrap().len(), 2);
    assert_eq!(status(&rig, shorter), EndpointStatus::Disabled);
    assert_eq!(status(&rig, longer), EndpointStatus::Active);
    // Two hours, the deployment's limit: the longer one's own 3h still holds.
    rig.advance(hour);
    assert_eq!(rig.harness.run_once().unwrap().len(), 1);
    assert_eq!(status(&rig, longer), EndpointStatus::Active);
    // Three hours: now it is disabled too.
    rig.advance(hour);
    assert_eq!(rig.harness.run_once().unwrap().len(), 1);
    assert_eq!(status(&rig, longer), EndpointStatus::Disabled);
}
