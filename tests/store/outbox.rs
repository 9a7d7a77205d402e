//! The engine's outbox, driven through the engine's harness (the real dispatcher, board,
//! worker and recorder, one round at a time on a manual clock) against a real loopback
//! receiver: what a claim takes and never hands out twice, the per-endpoint cap, fairness
//! across endpoints, FIFO, claims given back, and what a record writes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::config::Config;
use herald::domain::{EndpointStatus, Ordering};
use herald::store::{
    AttemptRecord, AttemptWindow, Claimed, EndpointHealth, EndpointPatch, HealthChange, Judge,
    Verdict,
};

use crate::common::{Receiver, Reply};
use crate::{endpoint_to, engine_config, roomy_config, Db, T0, TENANT};

contract!(
    a_claimed_delivery_is_not_claimed_again_until_recorded,
    an_endpoint_is_given_its_depth_in_caps_and_sends_its_cap_at_once,
    a_backlog_does_not_keep_another_endpoint_waiting,
    a_fifo_endpoint_has_one_delivery_out_in_publish_order,
    claims_given_back_unsent_are_claimed_again,
    a_success_is_final_and_clears_the_endpoints_failing_state,
    a_failure_is_retried_on_schedule_then_fails_for_good,
    a_410_disables_the_endpoint_and_cancels_its_pending_deliveries,
    the_attempt_window_is_read_and_written_with_the_endpoint,
    a_mostly_failing_endpoint_opens_on_its_failure_rate,
);

fn a_claimed_delivery_is_not_claimed_again_until_recorded(db: &Db) {
    let receiver = Receiver::ok();
    db.endpoint(&receiver.url("/hook"), "*");
    let (mut engine, _clock) = db.harness(roomy_config()); // 4 in flight per endpoint
    for _ in 0..3 {
        db.publish("job.done", T0);
    }
    assert_eq!(engine.step().unwrap(), 3);
    // Below its cap, the endpoint is claimed for again: only what is new is taken.
    db.publish("job.done", T0);
    assert_eq!(engine.step().unwrap(), 1, "only the new one");
    let records = engine.send_ready();
    let sent: HashSet<i64> = records.iter().map(|r| r.delivery_id).collect();
    assert_eq!((records.len(), sent.len()), (4, 4), "each sent once");
    engine.record(records);
    assert_eq!(engine.step().unwrap(), 0, "recorded: never claimed again");
    assert_eq!(receiver.received().len(), 4);
}

/// The planner's `depth`, the one way the backends' claims differ, by name: a process's
/// own outbox (SQLite) queues 4 caps of an endpoint on its board, a shared one
/// (PostgreSQL replicas) claims one cap, since what one replica holds counts for all.
fn an_endpoint_is_given_its_depth_in_caps_and_sends_its_cap_at_once(db: &Db) {
    let receiver = Receiver::ok();
    let a = db.endpoint(&receiver.url("/a"), "*");
    for _ in 0..30 {
        db.publish("job.done", T0);
    }
    let share = if db.store.shared() { 2 } else { 8 };
    let (mut engine, _clock) = db.harness(engine_config()); // endpoint_concurrency = 2
    assert_eq!(engine.step().unwrap(), share, "in flight and queued behind");
    assert_eq!(engine.board.held().get(&a), Some(&share));
    let ready: Vec<Claimed> = std::iter::from_fn(|| engine.board.try_next()).collect();
    assert_eq!(ready.len(), 2, "its cap in flight");
    assert_eq!(engine.step().unwrap(), 0, "at its share: left alone");
}

fn a_backlog_does_not_keep_another_endpoint_waiting(db: &Db) {
    let receiver = Receiver::ok();
    let a = db.endpoint(&receiver.url("/a"), "a.*");
    let b = db.endpoint(&receiver.url("/b"), "b.*");
    for _ in 0..100 {
        db.publish("a.job", T0 - 60_000);
    }
    db.publish("b.job", T0); // due a minute after every one of A's
    let (mut engine, _clock) = db.harness(engine_config());
    engine.step().unwrap();
    let held = engine.board.held();
    assert_eq!(
        held.get(&b),
        Some(&1),
        "B is served in the same round as A: {held:?}"
    );
    assert!(held.get(&a).is_some_and(|n| *n >= 2), "{held:?}");
}

fn a_fifo_endpoint_has_one_delivery_out_in_publish_order(db: &Db) {
    let receiver = Receiver::ok();
    let mut new = endpoint_to(&receiver.url("/ordered"), "*");
    new.settings.ordering = Ordering::Fifo;
    db.on(db.store.create_endpoint(TENANT, new, T0)).unwrap();
    let published: Vec<i64> = (0..3)
        .map(|_| db.delivery_of(&db.publish("job.done", T0)))
        .collect();
    let (mut engine, _clock) = db.harness(engine_config());
    let mut order = Vec::new();
    for _ in 0..3 {
        assert_eq!(engine.step().unwrap(), 1, "only the head");
        assert_eq!(engine.step().unwrap(), 0, "nothing while the head is out");
        let records = engine.run_once_sent();
        order.extend(records);
    }
    assert_eq!(order, published, "publish order");
}

/// What a harness sends and records after a round it already stepped.
trait SendAndRecord {
    fn run_once_sent(&mut self) -> Vec<i64>;
}

impl SendAndRecord for herald::engine::harness::Harness {
    fn run_once_sent(&mut self) -> Vec<i64> {
        let records = self.send_ready();
        let ids = records.iter().map(|r| r.delivery_id).collect();
        self.record(records);
        ids
    }
}

fn claims_given_back_unsent_are_claimed_again(db: &Db) {
    let receiver = Receiver::ok();
    db.endpoint(&receiver.url("/a"), "*");
    for _ in 0..3 {
        db.publish("job.done", T0);
    }
    // As the engine shuts down: the board gives up what it holds, the store lets it go.
    let (mut engine, _clock) = db.harness(roomy_config());
    assert_eq!(engine.step().unwrap(), 3);
    let unsent = engine.board.stop();
    assert_eq!(unsent.len(), 3);
    db.store.release(&unsent).unwrap();

    // The board taken apart by hand, as workers would without recording: a released
    // claim is due again at once (no lease to wait out).
    let (mut engine, _clock) = db.harness(roomy_config());
    assert_eq!(
        engine.step().unwrap(),
        3,
        "released claims are claimed again"
    );
    let mut out: Vec<Claimed> = std::iter::from_fn(|| engine.board.try_next()).collect();
    let mut given_back = Vec::new();
    while let Some(c) = out.pop() {
        given_back.push(c.delivery_id);
        out.extend(engine.board.finish(c.endpoint_id, false, None, T0).next);
    }
    assert_eq!(
        given_back.iter().collect::<HashSet<_>>(),
        unsent.iter().collect()
    );
    db.store.release(&given_back).unwrap();
    assert_eq!(engine.step().unwrap(), 3);
    assert_eq!(engine.board.total(), 3);
    assert!(receiver.received().is_empty(), "nothing was sent");
}

fn a_success_is_final_and_clears_the_endpoints_failing_state(db: &Db) {
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 500 } else { 200 }));
    let id = db.endpoint(&receiver.url("/hook"), "*");
    let delivery = db.delivery_of(&db.publish("job.done", T0));
    let (mut engine, clock) = db.harness(engine_config());
    let failed = engine.run_once().unwrap();
    assert_eq!(failed[0].verdict, Verdict::RetryAt(T0 + 60_000));
    let e = db.on(db.store.get_endpoint(TENANT, id)).unwrap();
    assert_eq!(e.failing_since, Some(T0));

    clock.advance(Duration::from_secs(60));
    let ok = engine.run_once().unwrap();
    assert_eq!((ok.len(), ok[0].verdict), (1, Verdict::Succeeded));
    let (d, attempts) = db
        .on(db.store.delivery_with_attempts(TENANT, delivery))
        .unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.next_attempt_at),
        ("succeeded", 2, None)
    );
    assert_eq!(d.last_status_code, Some(200));
    let codes: Vec<Option<i64>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(200)], "oldest attempt first");
    let e = db.on(db.store.get_endpoint(TENANT, id)).unwrap();
    assert_eq!((e.failing_since, e.circuit.consecutive_failures), (None, 0));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(engine.step().unwrap(), 0);
}

fn a_failure_is_retried_on_schedule_then_fails_for_good(db: &Db) {
    let receiver = Receiver::start(|_, _| Reply::status(503));
    db.endpoint(&receiver.url("/down"), "*");
    let delivery = db.delivery_of(&db.publish("job.done", T0));
    let config = Config {
        retry_schedule: vec![Duration::from_secs(10)],
        ..engine_config()
    };
    let (mut engine, clock) = db.harness(config);
    engine.run_once().unwrap();
    let d = db.on(db.store.get_delivery(TENANT, delivery)).unwrap();
    assert_eq!(
        (d.status.as_str(), d.next_attempt_at),
        ("pending", Some(T0 + 10_000))
    );
    assert_eq!((d.attempts, d.last_status_code), (1, Some(503)));
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(engine.step().unwrap(), 0, "not a millisecond early");
    clock.advance(Duration::from_millis(1));
    assert_eq!(engine.run_once().unwrap()[0].verdict, Verdict::Failed);
    let d = db.on(db.store.get_delivery(TENANT, delivery)).unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.next_attempt_at),
        ("failed", 2, None)
    );
    assert_eq!(db.on(db.store.deliveries_failed_since(T0)).unwrap(), 1);
}

fn a_410_disables_the_endpoint_and_cancels_its_pending_deliveries(db: &Db) {
    let receiver = Receiver::start(|_, _| Reply::status(410));
    let id = db.endpoint(&receiver.url("/gone"), "*");
    let first = db.delivery_of(&db.publish("job.done", T0));
    let later = db.delivery_of(&db.publish("job.done", T0 + 3_600_000)); // not due yet
    let (mut engine, _clock) = db.harness(engine_config());
    let records = engine.run_once().unwrap();
    assert!(records[0].gone);
    let e = db.on(db.store.get_endpoint(TENANT, id)).unwrap();
    assert_eq!(e.settings.status, EndpointStatus::Disabled);
    assert!(
        e.disabled_reason
            .as_deref()
            .is_some_and(|r| r.contains("410")),
        "{:?}",
        e.disabled_reason
    );
    let status = |id| db.on(db.store.get_delivery(TENANT, id)).unwrap().status;
    assert_eq!(status(first), "failed");
    assert_eq!(status(later), "cancelled");
    assert_eq!(engine.step().unwrap(), 0);
    assert_eq!(receiver.received().len(), 1);
}

/// A judge that writes the window it is given and remembers the one it was shown.
struct WindowJudge {
    write: AttemptWindow,
    seen: Mutex<Vec<AttemptWindow>>,
}

impl Judge for WindowJudge {
    fn judge(&self, _: &AttemptRecord, health: &EndpointHealth, _: i64) -> HealthChange {
        self.seen.lock().unwrap().push(health.window);
        HealthChange {
            window: Some(self.write),
            ..HealthChange::default()
        }
    }
}

fn the_attempt_window_is_read_and_written_with_the_endpoint(db: &Db) {
    let id = db.endpoint("http://127.0.0.1:9/hook", "*");
    let delivery = db.delivery_of(&db.publish("job.done", T0));
    let attempt = |at: i64| AttemptRecord {
        delivery_id: delivery,
        endpoint_id: id,
        started_at: at,
        duration_ms: 1,
        status_code: Some(500),
        error: None,
        response_headers: None,
        response_body: None,
        verdict: Verdict::RetryAt(at + 1_000),
        gone: false,
        backoff_until: None,
        operational: false,
    };
    // Each record shows the judge what the one before wrote.
    let windows = [
        AttemptWindow {
            start: Some(T0),
            succeeded: 3,
            failed: 4,
            prev_succeeded: 5,
            prev_failed: 6,
        },
        AttemptWindow {
            start: Some(T0 + 60_000),
            succeeded: 0,
            failed: 1,
            prev_succeeded: 3,
            prev_failed: 2_000_000_000,
        },
    ];
    let mut seen = Vec::new();
    for (i, write) in windows.iter().enumerate() {
        let judge = Arc::new(WindowJudge {
            write: *write,
            seen: Mutex::default(),
        });
        let at = T0 + i as i64;
        db.store
            .record(Arc::from(vec![attempt(at)]), judge.clone(), at)
            .expect("record");
        seen.extend(judge.seen.lock().unwrap().iter().copied());
    }
    assert_eq!(seen, [AttemptWindow::default(), windows[0]]);
    // Resuming an endpoint forgets its failures, the window with them.
    let pause = |status| EndpointPatch {
        status: Some(status),
        ..EndpointPatch::default()
    };
    db.on(db
        .store
        .update_endpoint(TENANT, id, pause(EndpointStatus::Paused), T0))
        .unwrap();
    let judge = Arc::new(WindowJudge {
        write: windows[0],
        seen: Mutex::default(),
    });
    db.store
        .record(Arc::from(vec![attempt(T0 + 5)]), judge.clone(), T0 + 5)
        .unwrap();
    assert_eq!(
        judge.seen.lock().unwrap()[..],
        [windows[1]],
        "kept while paused"
    );
    db.on(db
        .store
        .update_endpoint(TENANT, id, pause(EndpointStatus::Active), T0))
        .unwrap();
    let judge = Arc::new(WindowJudge {
        write: windows[0],
        seen: Mutex::default(),
    });
    db.store
        .record(Arc::from(vec![attempt(T0 + 6)]), judge.clone(), T0 + 6)
        .unwrap();
    assert_eq!(
        judge.seen.lock().unwrap()[..],
        [AttemptWindow::default()],
        "cleared on resume"
    );
}

fn a_mostly_failing_endpoint_opens_on_its_failure_rate(db: &Db) {
    // One answer in ten succeeds: no run of failures is long enough for the run rule
    // (threshold 50 here), but 90 % of 20 attempts is.
    let receiver = Receiver::start(|_, n| Reply::status(if n % 10 == 9 { 200 } else { 500 }));
    let id = db.endpoint(&receiver.url("/mostly"), "job.*");
    for i in 0..40 {
        db.publish("job.done", T0 + i);
    }
    let config = Config {
        circuit_threshold: 50,
        retry_schedule: vec![Duration::from_secs(1); 5],
        ..engine_config()
    };
    let (mut engine, clock) = db.harness(config);
    let circuit = || db.on(db.store.get_endpoint(TENANT, id)).unwrap().circuit;
    while circuit().since.is_none() {
        if engine.run_once().unwrap().is_empty() {
            clock.advance(Duration::from_secs(1));
        }
        assert!(receiver.received().len() <= 40, "never opened");
    }
    let sent = receiver.received().len();
    assert!((20..=30).contains(&sent), "opened after {sent} attempts");
    assert!(circuit().consecutive_failures < 50);
}
