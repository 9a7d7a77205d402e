//! Delivery controls on the stepped engine: an endpoint's rate limit holds for first
//! attempts and retries alike, and a 429 with `Retry-After` holds its deliveries back.

use std::time::Duration;

use herald::config::Config;

use super::{config, endpoint_to, Rig, TENANT};
use crate::common::{Receiver, Reply};

/// Sends whatever is ready; returns how many requests went out.
fn send(rig: &mut Rig) -> usize {
    let records = rig.harness.send_ready();
    let n = records.len();
    rig.harness.record(records);
    n
}

#[test]
fn a_rate_limited_endpoint_gets_one_request_per_interval_however_big_the_burst() {
    let mut rig = Rig::new(config(), Receiver::ok());
    let mut new = endpoint_to(&rig.receiver.url("/slow"), "job.*");
    new.rate_limit = Some(2.0); // one request every 500 ms
    let endpoint = rig
        .block_on(rig.store().create_endpoint(TENANT, new, rig.now()))
        .unwrap();
    assert_eq!(endpoint.rate_limit, Some(2.0));
    rig.publish("job.done", 5);

    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1, "a burst of 5 sends one now");
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "nothing more within the interval");
    rig.advance(Duration::from_millis(499));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "not even 1 ms early");
    rig.advance(Duration::from_millis(1));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1);
    for _ in 0..3 {
        rig.advance(Duration::from_millis(500));
        rig.harness.step().unwrap();
        assert_eq!(send(&mut rig), 1, "one per interval, queued, never dropped");
    }
    assert_eq!(
        rig.receiver
            .wait_for("/slow", 5, Duration::from_secs(5))
            .len(),
        5
    );
    // The board never kept more of it than its in-flight cap: the rest stayed pending.
    assert!(rig.harness.board.total() <= 2);
}

#[test]
fn a_429_with_retry_after_holds_the_endpoint_back_that_long() {
    let receiver = Receiver::start(|_, n| {
        if n == 0 {
            Reply::status(429).header("retry-after", "30")
        } else {
            Reply::status(200)
        }
    });
    let mut rig = Rig::new(config(), receiver);
    rig.endpoint("/busy", "job.*");
    rig.publish("job.done", 1);
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1, "the first request meets the 429");
    rig.publish("job.done", 3);
    rig.advance(Duration::from_secs(29));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "29 s later the endpoint still rests");
    rig.advance(Duration::from_secs(1));
    rig.harness.step().unwrap();
    assert!(send(&mut rig) >= 1, "after 30 s deliveries flow again");
}

/// Five failures in a row open the circuit: deliveries wait, one probe goes out after
/// 30 s, a failed probe doubles the wait, and a successful one closes the circuit and lets
/// the backlog drain.
#[test]
fn a_circuit_opens_after_five_failures_probes_with_back_off_and_closes_on_success() {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switch = healthy.clone();
    let receiver = Receiver::start(move |_, _| {
        if switch.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(500)
        }
    });
    let mut rig = Rig::new(config(), receiver);
    watch_herald_events(&rig);
    let endpoint = rig.endpoint("/down", "job.*");
    let circuit = |rig: &Rig| {
        rig.block_on(rig.store().get_endpoint(TENANT, endpoint))
            .unwrap()
            .circuit
    };
    // 5 deliveries, 2 in flight at a time: their first attempts fail one after another.
    rig.publish("job.done", 5);
    while rig.harness.step().unwrap() > 0 || rig.harness.board.total() > 0 {
        send(&mut rig);
    }
    let opened = circuit(&rig);
    // (`open` or `half_open` by the wall clock, which the manual clock is years behind.)
    assert_ne!(opened.state, "closed");
    assert_eq!(opened.since, Some(rig.now()));
    assert_eq!(opened.consecutive_failures, 5);
    assert_eq!(opened.next_probe, Some(rig.now() + 30_000));
    assert_eq!(rig.receiver.received().len(), 5);

    // More events wait; their retries come due too, but nothing goes out while it is open.
    rig.publish("job.done", 3);
    rig.advance(Duration::from_secs(29));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "open: nothing reaches the endpoint");

    // At 30 s exactly one probe goes; it fails, and the next waits 60 s.
    rig.advance(Duration::from_secs(1));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1, "one probe");
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "and only one");
    assert_eq!(circuit(&rig).next_probe, Some(rig.now() + 60_000));
    rig.advance(Duration::from_secs(59));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0);

    // The endpoint recovers: the next probe succeeds, the circuit closes, the rest drains.
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    rig.advance(Duration::from_secs(1));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1, "the probe");
    assert_eq!(circuit(&rig).state, "closed");
    assert_eq!(circuit(&rig).consecutive_failures, 0);
    // The 3 new events are due; the first 5 retry on their own schedule (1 min after their
    // first attempt, which is now past).
    let mut drained = 0;
    while rig.harness.step().unwrap() > 0 || rig.harness.board.total() > 0 {
        drained += send(&mut rig);
    }
    assert!(
        drained >= 3,
        "the backlog drains once the circuit closes ({drained})"
    );
    // Herald told the tenant, through its own events, that it opened and recovered.
    assert_eq!(herald_events(&rig, "herald.endpoint.circuit_opened"), 1);
    assert_eq!(herald_events(&rig, "herald.endpoint.recovered"), 1);
}

/// A paused endpoint subscribed to `herald.*`: Herald's own events are stored for it (and
/// wait, pending, without being sent, so they do not change what the tests count).
fn watch_herald_events(rig: &Rig) {
    let id = rig.endpoint("/watch", "herald.*");
    let patch = herald::store::EndpointPatch {
        status: Some(herald::domain::EndpointStatus::Paused),
        ..Default::default()
    };
    rig.block_on(rig.store().update_endpoint(TENANT, id, patch, rig.now()))
        .unwrap();
}

/// How many of Herald's own events of `kind` the tenant has.
fn herald_events(rig: &Rig, kind: &str) -> usize {
    let q = herald::store::EventQuery {
        event_type: Some(kind.into()),
        ..Default::default()
    };
    let page = herald::store::Cursor {
        before: None,
        limit: 100,
    };
    rig.block_on(rig.store().list_events(TENANT, q, page))
        .unwrap()
        .items
        .len()
}

/// A FIFO endpoint: one request at a time, in publish order; a failing head holds the rest
/// back until it succeeds on its retry, then the next goes.
#[test]
fn a_fifo_endpoint_gets_one_at_a_time_in_publish_order_behind_a_failing_head() {
    let receiver = Receiver::start(|_, n| {
        if n == 0 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    let mut rig = Rig::new(config(), receiver);
    let mut new = endpoint_to(&rig.receiver.url("/ordered"), "job.*");
    new.ordering = herald::domain::Ordering::Fifo;
    let endpoint = rig
        .block_on(rig.store().create_endpoint(TENANT, new, rig.now()))
        .unwrap();
    let published = rig.publish("job.done", 4);

    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1, "only the head goes");
    let head = rig.deliveries_of(&published[0].id)[0];
    let e = rig
        .block_on(rig.store().get_endpoint(TENANT, endpoint.id))
        .unwrap();
    assert_eq!(e.fifo_head, Some(head), "the failed head is still the head");
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 0, "the others wait behind the failing head");

    rig.advance(Duration::from_secs(60)); // the head's retry comes due
    let mut order = Vec::new();
    for _ in 0..10 {
        rig.harness.step().unwrap();
        let records = rig.harness.send_ready();
        assert!(records.len() <= 1, "never two in flight");
        order.extend(records.iter().map(|r| r.delivery_id));
        rig.harness.record(records);
    }
    let expected: Vec<i64> = published
        .iter()
        .map(|p| rig.deliveries_of(&p.id)[0])
        .collect();
    assert_eq!(order, expected, "publish order, the retried head first");
    let bodies: Vec<String> = rig
        .receiver
        .received()
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(bodies.len(), 5);
    assert_eq!(
        bodies[0], bodies[1],
        "the head was sent again before anything else"
    );
}

/// An endpoint's own retry schedule replaces the deployment's: 10 s, then failed.
#[test]
fn an_endpoint_retries_on_its_own_schedule() {
    let mut rig = Rig::new(config(), Receiver::start(|_, _| Reply::status(500)));
    watch_herald_events(&rig);
    let mut new = endpoint_to(&rig.receiver.url("/own"), "job.*");
    new.retry_schedule = Some(vec![Duration::from_secs(10)]);
    let endpoint = rig
        .block_on(rig.store().create_endpoint(TENANT, new, rig.now()))
        .unwrap();
    assert_eq!(endpoint.retry_schedule, Some(vec![Duration::from_secs(10)]));
    let published = rig.publish("job.done", 1);
    let id = rig.deliveries_of(&published[0].id)[0];
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1);
    let (delivery, _) = rig.delivery(id);
    assert_eq!(
        delivery.next_attempt_at,
        Some(rig.now() + 10_000),
        "not the default 1m"
    );
    rig.advance(Duration::from_secs(10));
    rig.harness.step().unwrap();
    assert_eq!(send(&mut rig), 1);
    let (delivery, attempts) = rig.delivery(id);
    assert_eq!(delivery.status, "failed", "its one retry was the last");
    assert_eq!(attempts.len(), 2);
    assert_eq!(herald_events(&rig, "herald.delivery.failed"), 1);
}

#[test]
fn a_poll_endpoint_is_never_claimed_and_its_deliveries_wait_for_the_consumer() {
    let config = Config {
        endpoint_concurrency: 4, // so every backend's first round takes all three
        ..config()
    };
    let mut rig = Rig::new(config, Receiver::ok());
    rig.endpoint("/push", "*");
    let mut new = endpoint_to("http://127.0.0.1:9/unused", "*");
    new.kind = herald::domain::EndpointKind::Poll;
    new.url = None;
    let poll = rig
        .block_on(rig.store().create_endpoint(TENANT, new, rig.now()))
        .expect("create poll endpoint")
        .id;
    rig.publish("job.completed", 3);
    // Only the push endpoint's three are claimed, now and after any wait.
    assert_eq!(rig.harness.step().unwrap(), 3);
    assert_eq!(send(&mut rig), 3);
    rig.advance(Duration::from_secs(3600));
    assert_eq!(rig.harness.step().unwrap(), 0);
    assert_eq!(rig.store().next_due(rig.now()).unwrap(), None);
    assert_eq!(rig.receiver.received().len(), 3);

    let read = |ack| {
        rig.block_on(
            rig.store()
                .poll_deliveries(TENANT, poll, ack, 10, rig.now()),
        )
        .expect("poll")
    };
    let pending = read(None);
    assert_eq!(pending.len(), 3);
    assert!(pending
        .windows(2)
        .all(|w| w[0].delivery_id < w[1].delivery_id));
    let after = read(Some(pending[1].delivery_id));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].delivery_id, pending[2].delivery_id);
    let (first, attempts) = rig.delivery(pending[0].delivery_id);
    assert_eq!((first.status.as_str(), attempts.len()), ("succeeded", 0));
}
