//! Deliveries: not found, the list's pages and filters, a poll endpoint's ack-and-read,
//! and sending again: `retry_delivery` (refused while pending) and `recover`.

use herald::config::Config;
use herald::domain::EndpointKind;
use herald::store::{Cursor, DeliveryQuery, StoreError};

use crate::{assert_newest_first_once, endpoint_to, engine_config, pages, Db, T0, TENANT};

contract!(
    deliveries_are_not_found_outside_their_tenant,
    deliveries_page_newest_first_by_status_endpoint_and_event,
    a_poll_acknowledges_up_to_its_cursor_and_reads_after_it,
    a_finished_delivery_is_retried_a_pending_one_is_refused,
    recover_requeues_an_endpoints_failed_deliveries_since_a_time,
);

/// Nothing listens on port 9 of loopback: every attempt fails without an answer.
const REFUSED: &str = "http://127.0.0.1:9/hook";

/// One attempt of everything due, with no retries left and no circuit to open: each
/// fails for good.
fn fail_all(db: &Db) -> usize {
    let config = Config {
        retry_schedule: Vec::new(),
        circuit_threshold: 0,
        ..engine_config()
    };
    let (mut harness, _clock) = db.harness(config);
    crate::drain(&mut harness)
}

fn deliveries_are_not_found_outside_their_tenant(db: &Db) {
    let s = &db.store;
    db.endpoint(REFUSED, "*");
    let id = db.delivery_of(&db.publish("job.done", T0));
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    for answer in [
        db.on(s.get_delivery("acme", id)).map(|_| ()),
        db.on(s.delivery_with_attempts("acme", id)).map(|_| ()),
        db.on(s.retry_delivery("acme", id, T0)).map(|_| ()),
        db.on(s.get_delivery(TENANT, id + 100)).map(|_| ()),
    ] {
        assert!(matches!(answer, Err(StoreError::NotFound(_))), "{answer:?}");
    }
    let (d, attempts) = db.on(s.delivery_with_attempts(TENANT, id)).unwrap();
    assert_eq!(
        (d.id, d.status.as_str(), attempts.len()),
        (id, "pending", 0)
    );
}

fn deliveries_page_newest_first_by_status_endpoint_and_event(db: &Db) {
    let s = &db.store;
    let a = db.endpoint(REFUSED, "a.*");
    let both = db.endpoint(REFUSED, "*");
    let mut events = Vec::new();
    for _ in 0..4 {
        events.push(db.publish("a.job", T0));
        db.publish("b.job", T0);
    }
    let list = |q: DeliveryQuery| {
        pages(3, |cursor| {
            let page = db.on(s.list_deliveries(TENANT, q.clone(), cursor)).unwrap();
            (page.items.iter().map(|d| d.id).collect(), page.next_cursor)
        })
    };
    assert_newest_first_once(&list(DeliveryQuery::default()), 12);
    let of_a = DeliveryQuery {
        endpoint_id: Some(a),
        ..Default::default()
    };
    assert_newest_first_once(&list(of_a), 4);
    let of_event = DeliveryQuery {
        event_id: Some(events[0].id.clone()),
        ..Default::default()
    };
    assert_newest_first_once(&list(of_event), 2);
    let pending = DeliveryQuery {
        status: Some("pending".into()),
        endpoint_id: Some(both),
        ..Default::default()
    };
    assert_newest_first_once(&list(pending.clone()), 8);

    assert_eq!(fail_all(db), 12);
    assert_newest_first_once(&list(pending), 0);
    let failed = DeliveryQuery {
        status: Some("failed".into()),
        ..Default::default()
    };
    assert_newest_first_once(&list(failed.clone()), 12);
    // Each filter alone and together, as the statement per combination writes them.
    let window = |since, until| DeliveryQuery {
        since,
        until,
        ..failed.clone()
    };
    assert_newest_first_once(&list(window(Some(T0), None)), 12);
    assert_newest_first_once(&list(window(Some(T0 + 1), None)), 0);
    assert_newest_first_once(&list(window(None, Some(T0 + 1))), 12);
    assert_newest_first_once(&list(window(Some(T0), Some(T0))), 0);
    let of_a_failed = DeliveryQuery {
        endpoint_id: Some(a),
        event_id: Some(events[1].id.clone()),
        ..failed.clone()
    };
    assert_newest_first_once(&list(of_a_failed), 1);
    let unknown = DeliveryQuery {
        status: Some("lost".into()),
        ..Default::default()
    };
    assert_newest_first_once(&list(unknown), 0);
    let other_tenant = db
        .on(s.list_deliveries(
            "acme",
            failed,
            Cursor {
                before: None,
                limit: 100,
            },
        ))
        .unwrap();
    assert!(
        other_tenant.items.is_empty(),
        "another tenant's failures listed"
    );
}

fn a_poll_acknowledges_up_to_its_cursor_and_reads_after_it(db: &Db) {
    let s = &db.store;
    let push = db.endpoint(REFUSED, "*");
    let mut new = endpoint_to(REFUSED, "*");
    new.kind = EndpointKind::Poll;
    new.settings.url = None;
    let poll = db.on(s.create_endpoint(TENANT, new, T0)).unwrap().id;
    for i in 0..5 {
        db.publish("job.done", T0 + i);
    }
    let read = |ack, limit| {
        db.on(s.poll_deliveries(TENANT, poll, ack, limit, T0 + 10))
            .unwrap()
    };

    let page = read(None, 2);
    assert_eq!(page.len(), 2, "a page of its limit");
    assert_eq!(page[0].body, r#"{"event":"job.done"}"#);
    assert_eq!(
        read(None, 2)[0].delivery_id,
        page[0].delivery_id,
        "nothing acknowledged yet"
    );
    let rest = read(Some(page[1].delivery_id), 10);
    assert_eq!(rest.len(), 3, "the two acknowledged are not read again");
    assert!(rest.iter().all(|p| p.delivery_id > page[1].delivery_id));
    assert!(
        rest.windows(2).all(|w| w[0].delivery_id < w[1].delivery_id),
        "oldest first"
    );
    let (acked, attempts) = db
        .on(s.delivery_with_attempts(TENANT, page[0].delivery_id))
        .unwrap();
    assert_eq!((acked.status.as_str(), attempts.len()), ("succeeded", 0));
    assert!(read(Some(rest[2].delivery_id), 10).is_empty());
    assert!(read(None, 10).is_empty(), "all five acknowledged");

    let pushed = db.on(s.poll_deliveries(TENANT, push, None, 10, T0));
    assert!(matches!(pushed, Err(StoreError::Conflict(_))), "{pushed:?}");
    let missing = db.on(s.poll_deliveries(TENANT, poll + 100, None, 10, T0));
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

fn a_finished_delivery_is_retried_a_pending_one_is_refused(db: &Db) {
    let s = &db.store;
    db.endpoint(REFUSED, "*");
    let id = db.delivery_of(&db.publish("job.done", T0));
    let early = db.on(s.retry_delivery(TENANT, id, T0));
    assert!(matches!(early, Err(StoreError::Conflict(_))), "{early:?}");

    assert_eq!(fail_all(db), 1);
    let failed = db.on(s.get_delivery(TENANT, id)).unwrap();
    assert_eq!((failed.status.as_str(), failed.attempts), ("failed", 1));
    assert_eq!(
        failed.last_status_code, None,
        "no answer from a closed port"
    );
    assert!(failed.last_error.is_some());

    let again = db.on(s.retry_delivery(TENANT, id, T0)).unwrap();
    assert_eq!(
        (again.status.as_str(), again.next_attempt_at),
        ("pending", Some(T0))
    );
    assert_eq!(again.attempts, 1, "the attempts so far are kept");
    // A fresh round: with no retries configured, its one attempt fails it again.
    assert_eq!(fail_all(db), 1);
    let (d, attempts) = db.on(s.delivery_with_attempts(TENANT, id)).unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, attempts.len()),
        ("failed", 2, 2)
    );
}

fn recover_requeues_an_endpoints_failed_deliveries_since_a_time(db: &Db) {
    let s = &db.store;
    let a = db.endpoint(REFUSED, "*");
    let old = db.delivery_of(&db.publish("job.done", T0 - 60_000));
    let recent = db.delivery_of(&db.publish("job.done", T0));
    assert_eq!(fail_all(db), 2);

    assert_eq!(
        db.on(s.recover(TENANT, a, T0, T0 + 1)).unwrap(),
        1,
        "only since T0"
    );
    let status = |id| db.on(s.get_delivery(TENANT, id)).unwrap().status;
    assert_eq!(
        (status(recent).as_str(), status(old).as_str()),
        ("pending", "failed")
    );
    assert_eq!(
        db.on(s.recover(TENANT, a, T0, T0 + 1)).unwrap(),
        0,
        "a pending one is left alone"
    );
    let missing = db.on(s.recover(TENANT, a + 100, T0, T0));
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}
