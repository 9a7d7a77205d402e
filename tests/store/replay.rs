//! Routing (issue 21, items 1 and 2): payload filters at publish, and replay of what an
//! endpoint missed — published while it was disabled or before it existed, inside the
//! window only, honouring the filter, idempotent, bounded with a cursor that continues.

use herald::domain::{EndpointStatus, PayloadFilter};
use herald::store::{EndpointPatch, NewEvent, ReplayQuery, Replayed, StoreError};

use crate::{endpoint_to, event, Db, T0, TENANT};

contract!(
    a_replay_creates_what_was_missed_in_its_window_once,
    payload_filters_decide_at_publish_and_at_replay,
    a_bounded_replay_hands_on_a_cursor_that_continues,
    a_disabled_endpoint_replays_only_dry_and_other_tenants_see_nothing,
);

const URL: &str = "http://127.0.0.1:9/hook";
const SECOND: i64 = 1_000;

fn window(since: i64, until: i64) -> ReplayQuery {
    ReplayQuery {
        since,
        until,
        after: None,
        limit: herald::store::replay::MAX_LIMIT,
        scan: herald::store::replay::SCAN,
        dry_run: false,
    }
}

fn dry(q: ReplayQuery) -> ReplayQuery {
    ReplayQuery { dry_run: true, ..q }
}

fn set_status(db: &Db, id: i64, status: EndpointStatus, at: i64) {
    let patch = EndpointPatch {
        status: Some(status),
        ..Default::default()
    };
    db.on(db.store.update_endpoint(TENANT, id, patch, at))
        .expect("status");
}

fn replay(db: &Db, endpoint: i64, q: ReplayQuery, now: i64) -> Replayed {
    db.on(db.store.replay(TENANT, endpoint, q, now))
        .expect("replay")
}

/// The endpoints that have a delivery of this event.
fn delivered_to(db: &Db, event_id: &str) -> Vec<(i64, String)> {
    db.on(db.store.event_deliveries(TENANT, event_id))
        .unwrap()
        .into_iter()
        .map(|d| (d.endpoint_id, d.status))
        .collect()
}

fn with_body(kind: &str, body: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: kind.into(),
        body: body.to_string(),
        idempotency_key: None,
        traceparent: None,
    }
}

fn a_replay_creates_what_was_missed_in_its_window_once(db: &Db) {
    let before_window = db.publish("order.paid", T0 - 10 * SECOND);
    let before_endpoint = db.publish("order.paid", T0);
    let a = db.endpoint(URL, "order.*");
    let other = db.endpoint(URL, "user.*");
    let delivered = db.publish("order.paid", T0 + 2 * SECOND);
    set_status(db, a, EndpointStatus::Disabled, T0 + 2 * SECOND);
    let while_disabled = db.publish("order.paid", T0 + 3 * SECOND);
    let not_subscribed = db.publish("user.created", T0 + 3 * SECOND);
    let after_window = db.publish("order.refunded", T0 + 6 * SECOND);
    set_status(db, a, EndpointStatus::Active, T0 + 7 * SECOND);

    let q = window(T0, T0 + 5 * SECOND);
    let counted = replay(db, a, dry(q.clone()), T0 + 8 * SECOND);
    assert_eq!(counted.count, 2, "{counted:?}");
    assert_eq!(
        counted.event_ids,
        [before_endpoint.id.clone(), while_disabled.id.clone()],
        "oldest first"
    );
    assert_eq!(counted.next, None);
    assert_eq!(
        counted.oldest.as_ref().map(|(id, at)| (id.as_str(), *at)),
        Some((before_window.id.as_str(), T0 - 10 * SECOND))
    );
    assert!(
        delivered_to(db, &before_endpoint.id).is_empty(),
        "a dry run creates nothing"
    );

    let done = replay(db, a, q.clone(), T0 + 8 * SECOND);
    assert_eq!((done.count, done.event_ids.clone()), (2, counted.event_ids));
    for e in [&before_endpoint, &while_disabled] {
        assert_eq!(
            delivered_to(db, &e.id),
            [(a, "pending".to_owned())],
            "{}",
            e.id
        );
        let d = &db.on(db.store.event_deliveries(TENANT, &e.id)).unwrap()[0];
        assert_eq!((d.next_attempt_at, d.attempts), (Some(T0 + 8 * SECOND), 0));
    }
    // The delivery that the disable cancelled stays the event's one delivery: a replay
    // never gives an event a second (recover and retry send those again).
    assert_eq!(
        delivered_to(db, &delivered.id),
        [(a, "cancelled".to_owned())]
    );
    assert_eq!(
        delivered_to(db, &not_subscribed.id),
        [(other, "pending".to_owned())]
    );
    for e in [&before_window, &after_window] {
        assert!(
            delivered_to(db, &e.id).is_empty(),
            "{} is outside the window",
            e.id
        );
    }

    let again = replay(db, a, q, T0 + 9 * SECOND);
    assert_eq!((again.count, again.event_ids.len()), (0, 0), "idempotent");
    let wider = replay(
        db,
        a,
        window(T0 - 60 * SECOND, T0 + 60 * SECOND),
        T0 + 9 * SECOND,
    );
    assert_eq!(
        wider.event_ids,
        [before_window.id.clone(), after_window.id.clone()]
    );
    let other_side = replay(db, other, window(T0 - 60 * SECOND, T0 + 60 * SECOND), T0);
    assert_eq!(
        other_side.count, 0,
        "user.created went to it when published"
    );
}

fn payload_filters_decide_at_publish_and_at_replay(db: &Db) {
    let s = &db.store;
    let mut new = endpoint_to(URL, "order.*");
    new.settings.payload_filter =
        Some(PayloadFilter::parse("$.data.amount > 100 && $.status == 'paid'").unwrap());
    let big = db.on(s.create_endpoint(TENANT, new, T0)).unwrap();
    assert_eq!(
        big.settings.payload_filter.as_ref().map(|f| f.as_str()),
        Some("$.data.amount > 100 && $.status == 'paid'")
    );
    let plain = db.endpoint(URL, "order.*");
    let order = |amount: i64, status: &str| {
        with_body(
            "order.paid",
            serde_json::json!({"event": "order.paid", "status": status, "data": {"amount": amount}}),
        )
    };
    let published = db
        .on(s.publish(
            TENANT,
            vec![order(50, "paid"), order(500, "paid"), order(500, "open")],
            T0,
        ))
        .unwrap();
    assert_eq!(
        published.iter().map(|p| p.deliveries).collect::<Vec<_>>(),
        [1, 2, 1]
    );
    assert_eq!(delivered_to(db, &published[1].id)[0].0, big.id);

    // Missed while disabled: the replay honours the filter too.
    set_status(db, big.id, EndpointStatus::Disabled, T0);
    let missed = db
        .on(s.publish(
            TENANT,
            vec![order(20, "paid"), order(2_000, "paid")],
            T0 + SECOND,
        ))
        .unwrap();
    set_status(db, big.id, EndpointStatus::Active, T0 + 2 * SECOND);
    let q = window(T0 - SECOND, T0 + 3 * SECOND);
    assert_eq!(replay(db, big.id, dry(q.clone()), T0 + 3 * SECOND).count, 1);
    let done = replay(db, big.id, q, T0 + 3 * SECOND);
    assert_eq!(done.event_ids, std::slice::from_ref(&missed[1].id));
    assert_eq!(
        delivered_to(db, &missed[0].id),
        [(plain, "pending".to_owned())]
    );

    // Changing the filter reaches the next publish (the subscription caches follow).
    let patch = EndpointPatch {
        payload_filter: Some(Some(PayloadFilter::parse("$.data.amount < 10").unwrap())),
        ..Default::default()
    };
    db.on(s.update_endpoint(TENANT, big.id, patch, T0 + 4 * SECOND))
        .unwrap();
    let later = db
        .on(s.publish(
            TENANT,
            vec![order(5, "open"), order(500, "paid")],
            T0 + 5 * SECOND,
        ))
        .unwrap();
    assert_eq!(later[0].deliveries, 2);
    assert_eq!(later[1].deliveries, 1);
    let patch = EndpointPatch {
        payload_filter: Some(None),
        ..Default::default()
    };
    let cleared = db
        .on(s.update_endpoint(TENANT, big.id, patch, T0 + 6 * SECOND))
        .unwrap();
    assert!(cleared.settings.payload_filter.is_none());
    let last = db
        .on(s.publish(TENANT, vec![order(500, "open")], T0 + 7 * SECOND))
        .unwrap();
    assert_eq!(last[0].deliveries, 2);
}

fn a_bounded_replay_hands_on_a_cursor_that_continues(db: &Db) {
    let events: Vec<String> = (0..25)
        .map(|i| db.publish("job.done", T0 + i * SECOND).id)
        .collect();
    let a = db.endpoint(URL, "job.*");
    let mut q = ReplayQuery {
        limit: 10,
        ..window(T0, T0 + 60 * SECOND)
    };
    let mut calls = Vec::new();
    let mut replayed = Vec::new();
    loop {
        let done = replay(db, a, q.clone(), T0 + 60 * SECOND);
        calls.push(done.count);
        // Ten ids at most are listed; here every call's fit.
        replayed.extend(done.event_ids);
        match done.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    assert_eq!(calls, [10, 10, 5]);
    assert_eq!(replayed, events, "every event once, oldest first");
    let again = replay(db, a, window(T0, T0 + 60 * SECOND), T0 + 61 * SECOND);
    assert_eq!((again.count, again.next), (0, None));
}

fn a_disabled_endpoint_replays_only_dry_and_other_tenants_see_nothing(db: &Db) {
    let s = &db.store;
    let missed = db.publish("job.done", T0);
    let a = db.endpoint(URL, "*");
    // A test event of another endpoint is never replayed to this one.
    let b = db.endpoint(URL, "*");
    db.on(s.publish_to_endpoint(TENANT, b, event("webhook.test", None), T0))
        .unwrap();
    set_status(db, a, EndpointStatus::Disabled, T0);
    let q = window(T0 - SECOND, T0 + SECOND);
    let refused = db.on(s.replay(TENANT, a, q.clone(), T0));
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let counted = replay(db, a, dry(q.clone()), T0);
    assert_eq!(counted.event_ids, std::slice::from_ref(&missed.id));
    set_status(db, a, EndpointStatus::Paused, T0);
    assert_eq!(
        replay(db, a, q.clone(), T0).count,
        1,
        "a paused endpoint keeps them waiting"
    );

    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    let theirs = db.on(s.replay("acme", a, q.clone(), T0));
    assert!(matches!(theirs, Err(StoreError::NotFound(_))), "{theirs:?}");
    let acme = db
        .on(s.create_endpoint("acme", endpoint_to(URL, "*"), T0))
        .unwrap();
    let none = db.on(s.replay("acme", acme.id, q, T0)).unwrap();
    assert_eq!(
        (none.count, none.oldest),
        (0, None),
        "another tenant's events are not its"
    );
}
