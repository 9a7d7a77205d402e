//! Retention: `prune` deletes old events with their deliveries and attempts, a batch at a
//! time, and nothing newer; `next_due` tells the dispatcher when to look again.

use herald::store::{EventQuery, StoreError};

use crate::{engine_config, first, Db, T0, TENANT};

contract!(
    prune_deletes_old_events_in_batches_with_their_deliveries,
    next_due_is_the_earliest_future_delivery
);

/// Nothing listens on port 9 of loopback.
const REFUSED: &str = "http://127.0.0.1:9/hook";

fn prune_deletes_old_events_in_batches_with_their_deliveries(db: &Db) {
    let s = &db.store;
    db.endpoint(REFUSED, "*");
    let old: Vec<_> = (0..5)
        .map(|i| db.publish("job.old", T0 - 10_000 + i))
        .collect();
    let kept = db.publish("job.new", T0);
    let old_delivery = db.delivery_of(&old[0]);
    // An attempt, so the delete has a row to take in every table.
    let (mut engine, _clock) = db.harness(engine_config());
    assert_eq!(crate::drain(&mut engine), 6);

    assert_eq!(s.prune(T0, 2).unwrap(), 2, "a batch of 2");
    assert_eq!(s.prune(T0, 100).unwrap(), 3, "the rest of the old ones");
    assert_eq!(s.prune(T0, 100).unwrap(), 0, "nothing newer than `before`");
    for p in &old {
        let gone = db.on(s.get_event(TENANT, &p.id));
        assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
    }
    let gone = db.on(s.delivery_with_attempts(TENANT, old_delivery));
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
    let events = db
        .on(s.list_events(TENANT, EventQuery::default(), first(10)))
        .unwrap();
    assert_eq!(events.items.len(), 1);
    let (_, attempts) = db
        .on(s.delivery_with_attempts(TENANT, db.delivery_of(&kept)))
        .unwrap();
    assert_eq!(attempts.len(), 1, "the kept event's history is whole");
}

fn next_due_is_the_earliest_future_delivery(db: &Db) {
    let s = &db.store;
    assert_eq!(s.next_due(T0).unwrap(), None, "nothing pending");
    db.endpoint(REFUSED, "*");
    db.publish("job.now", T0);
    assert_eq!(
        s.next_due(T0).unwrap(),
        None,
        "already due: not the clock's business"
    );
    db.publish("job.later", T0 + 7_000);
    db.publish("job.latest", T0 + 9_000);
    assert_eq!(s.next_due(T0).unwrap(), Some(T0 + 7_000));
    assert_eq!(s.next_due(T0 + 7_000).unwrap(), Some(T0 + 9_000));
}
