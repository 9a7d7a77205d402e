//! The dispatcher's due-time index (`engine::due`): a round looks only at the endpoints
//! the index lists, so what it could get wrong is an endpoint left out. These rounds run
//! as the running dispatcher's do (`Harness::round`: the signals it would hear, no full
//! scan of the store but its own first one), among a thousand endpoints with nothing to do.

use std::time::Duration;

use crate::common::{Receiver, Reply};
use crate::{config, endpoint_to, Rig, TENANT};

const IDLE: usize = 1_000;

/// A rig with `IDLE` endpoints subscribed to an event nobody publishes.
fn among_idle(receiver: Receiver) -> Rig {
    let rig = Rig::new(config(), receiver);
    for i in 0..IDLE {
        rig.endpoint(&format!("/idle/{i}"), "never.published");
    }
    rig
}

#[test]
fn a_retry_due_after_a_long_idle_stretch_among_idle_endpoints_goes_on_time() {
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 500 } else { 200 }));
    let mut rig = among_idle(receiver);
    rig.endpoint("/flaky", "job.*");
    assert_eq!(
        rig.harness.round().unwrap(),
        0,
        "the first round: a full scan"
    );
    assert_eq!(
        rig.harness.due_len(),
        0,
        "idle endpoints are not in the index"
    );

    rig.publish("job.done", 1);
    rig.harness.wake();
    assert_eq!(rig.harness.round().unwrap(), 1);
    let records = rig.harness.send_ready();
    assert!(rig.harness.record(records));
    assert_eq!(rig.harness.due_len(), 1, "the retry's endpoint, alone");

    // A minute of idle rounds, about one a second, none finding anything before the
    // retry's time; then it is claimed exactly when it comes due.
    let due = rig.now() + 60_000;
    for _ in 0..59 {
        rig.advance(Duration::from_millis(999));
        assert_eq!(rig.harness.round().unwrap(), 0, "nothing is due yet");
    }
    rig.advance(Duration::from_millis((due - rig.now() - 1) as u64));
    assert_eq!(rig.harness.round().unwrap(), 0, "not a millisecond early");
    rig.advance(Duration::from_millis(1));
    assert_eq!(rig.harness.round().unwrap(), 1, "claimed when it came due");
    let records = rig.harness.send_ready();
    assert_eq!(records.len(), 1);
    assert!(rig.harness.record(records));
    assert_eq!(rig.receiver.received().len(), 2, "sent, failed, sent again");
    assert_eq!(rig.harness.round().unwrap(), 0);
    assert_eq!(
        rig.harness.due_len(),
        0,
        "nothing pending: out of the index"
    );
}

#[test]
fn a_publish_to_a_cold_endpoint_among_a_thousand_is_claimed_in_the_next_round() {
    let mut rig = among_idle(Receiver::ok());
    let cold = rig.endpoint("/cold", "job.*");
    assert_eq!(rig.harness.round().unwrap(), 0);
    // Long after the index's first scan, with nothing due anywhere.
    rig.advance(Duration::from_secs(3_600));
    assert_eq!(rig.harness.round().unwrap(), 0);

    rig.publish("job.done", 3);
    rig.harness.wake();
    // As much as a round gives one endpoint (a cap of 2, times the backend's depth).
    let first = 3.min(2 * rig.depth());
    assert_eq!(rig.harness.round().unwrap(), first, "the wake-up is enough");
    let records = rig.harness.send_ready();
    assert!(records.iter().all(|r| r.endpoint_id == cold));
    assert!(rig.harness.record(records));
    // The rest follows the records, still without a scan.
    assert_eq!(rig.harness.round().unwrap(), 3 - first);
    let records = rig.harness.send_ready();
    assert!(rig.harness.record(records));
    assert_eq!(rig.receiver.received().len(), 3);
}

#[test]
fn a_fifo_endpoints_next_head_follows_its_record_without_a_scan() {
    let mut rig = among_idle(Receiver::ok());
    let mut new = endpoint_to(&rig.receiver.url("/ordered"), "job.*");
    new.settings.ordering = herald::domain::Ordering::Fifo;
    rig.block_on(rig.store().create_endpoint(TENANT, new, rig.now()))
        .unwrap();
    assert_eq!(rig.harness.round().unwrap(), 0);
    rig.publish("job.done", 3);
    rig.harness.wake();
    for n in 1..=3 {
        assert_eq!(rig.harness.round().unwrap(), 1, "head {n}");
        assert_eq!(rig.harness.round().unwrap(), 0, "nothing beside the head");
        let records = rig.harness.send_ready();
        assert!(rig.harness.record(records));
    }
    assert_eq!(rig.receiver.received().len(), 3);
    assert_eq!(rig.harness.round().unwrap(), 0);
}

#[test]
fn an_endpoint_resumed_through_the_api_is_found_by_the_rescan_it_asks_for() {
    let mut rig = among_idle(Receiver::ok());
    let id = rig.endpoint("/paused", "job.*");
    assert_eq!(rig.harness.round().unwrap(), 0);
    let paused = herald::store::EndpointPatch {
        status: Some(herald::domain::EndpointStatus::Paused),
        ..Default::default()
    };
    rig.block_on(rig.store().update_endpoint(TENANT, id, paused, rig.now()))
        .unwrap();
    rig.publish("job.done", 2);
    rig.harness.wake();
    assert_eq!(rig.harness.round().unwrap(), 0, "paused: nothing goes");
    assert_eq!(rig.harness.due_len(), 0, "and it left the index");
    let active = herald::store::EndpointPatch {
        status: Some(herald::domain::EndpointStatus::Active),
        ..Default::default()
    };
    rig.block_on(rig.store().update_endpoint(TENANT, id, active, rig.now()))
        .unwrap();
    // What `AppState::update_endpoint` does after the write (`EngineHandle::rescan`).
    rig.harness.rescan();
    assert_eq!(rig.harness.round().unwrap(), 2);
}
