//! Publishing: one delivery per endpoint whose filter matches (paused ones too, disabled
//! ones and other tenants' not), idempotency keys that answer the first result (within
//! one batch as well), "send test" to one endpoint, and the event list's pages and filters.

use herald::domain::EndpointStatus;
use herald::store::{EndpointPatch, EventQuery, StoreError};

use crate::{assert_newest_first_once, endpoint_to, event, first, pages, Db, T0, TENANT};

contract!(
    a_publish_fans_out_to_the_subscribed_endpoints,
    an_idempotency_key_answers_the_first_result,
    a_test_event_goes_to_its_endpoint_whatever_its_filter,
    events_page_newest_first_and_filter_by_type_and_time,
);

const URL: &str = "http://127.0.0.1:9/hook";

fn a_publish_fans_out_to_the_subscribed_endpoints(db: &Db) {
    let s = &db.store;
    let orders = db.endpoint(URL, "order.*");
    let all = db.endpoint(URL, "*");
    let paused = db.endpoint(URL, "order.paid");
    let disabled = db.endpoint(URL, "*");
    let status = |status| EndpointPatch {
        status: Some(status),
        ..Default::default()
    };
    db.on(s.update_endpoint(TENANT, paused, status(EndpointStatus::Paused), T0))
        .unwrap();
    db.on(s.update_endpoint(TENANT, disabled, status(EndpointStatus::Disabled), T0))
        .unwrap();
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    db.on(s.create_endpoint("acme", endpoint_to(URL, "*"), T0))
        .unwrap();

    let batch = vec![event("order.paid", None), event("user.created", None)];
    let published = db.on(s.publish(TENANT, batch, T0)).unwrap();
    assert_eq!(published.len(), 2);
    assert_eq!(
        (published[0].event.as_str(), published[0].deliveries),
        ("order.paid", 3)
    );
    assert_eq!(
        (published[1].event.as_str(), published[1].deliveries),
        ("user.created", 1)
    );
    assert!(published
        .iter()
        .all(|p| p.id.starts_with("evt_") && !p.replayed));
    let to: Vec<i64> = db
        .on(s.event_deliveries(TENANT, &published[0].id))
        .unwrap()
        .iter()
        .map(|d| d.endpoint_id)
        .collect();
    assert_eq!(to, [orders, all, paused], "one each, oldest first");
    let d = &db.on(s.event_deliveries(TENANT, &published[1].id)).unwrap()[0];
    assert_eq!(
        (d.endpoint_id, d.status.as_str(), d.attempts),
        (all, "pending", 0)
    );
    assert_eq!((d.next_attempt_at, d.created_at), (Some(T0), T0));

    let nobody = db.on(s.publish("nobody", vec![event("x", None)], T0));
    assert!(nobody.is_err(), "a publish needs its tenant: {nobody:?}");
}

fn an_idempotency_key_answers_the_first_result(db: &Db) {
    let s = &db.store;
    db.endpoint(URL, "*");
    let first = db
        .on(s.publish(TENANT, vec![event("order.paid", Some("order-42"))], T0))
        .unwrap();
    // Later, with another body: the first event is the answer, and nothing new is stored.
    let mut later = event("order.refunded", Some("order-42"));
    later.body = r#"{"other":true}"#.into();
    let again = db.on(s.publish(TENANT, vec![later], T0 + 1)).unwrap();
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(
        (again[0].event.as_str(), again[0].deliveries),
        ("order.paid", 1)
    );
    assert!(again[0].replayed && !first[0].replayed);

    // Within one batch: the second use of a key answers the first's event.
    let batch = vec![
        event("a", Some("k-1")),
        event("b", Some("k-1")),
        event("c", Some("order-42")),
    ];
    let answers = db.on(s.publish(TENANT, batch, T0 + 2)).unwrap();
    assert!(!answers[0].replayed);
    assert_eq!(
        (answers[1].id.as_str(), answers[1].replayed),
        (answers[0].id.as_str(), true)
    );
    assert_eq!(answers[2].id, first[0].id);
    let events = db
        .on(s.list_events(TENANT, EventQuery::default(), crate::first(10)))
        .unwrap();
    assert_eq!(events.items.len(), 2, "order-42 and k-1, once each");

    // A key is a tenant's own: another tenant's same key is another event.
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    let theirs = db
        .on(s.publish("acme", vec![event("order.paid", Some("order-42"))], T0))
        .unwrap();
    assert!(theirs[0].id != first[0].id && !theirs[0].replayed);
}

fn a_test_event_goes_to_its_endpoint_whatever_its_filter(db: &Db) {
    let s = &db.store;
    let id = db.endpoint(URL, "order.*");
    db.endpoint(URL, "*"); // not sent to: a test is for one endpoint
    let (event_id, delivery) = db
        .on(s.publish_to_endpoint(TENANT, id, event("herald.test", None), T0))
        .unwrap();
    let deliveries = db.on(s.event_deliveries(TENANT, &event_id)).unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (deliveries[0].id, deliveries[0].endpoint_id),
        (delivery, id)
    );
    let missing = db.on(s.publish_to_endpoint(TENANT, id + 100, event("herald.test", None), T0));
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

fn events_page_newest_first_and_filter_by_type_and_time(db: &Db) {
    let s = &db.store;
    for i in 0..7 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        db.publish(kind, T0 + i * 1000);
    }
    let list = |q: EventQuery| {
        pages(3, |cursor| {
            let page = db.on(s.list_events(TENANT, q.clone(), cursor)).unwrap();
            (page.items.iter().map(|e| e.seq).collect(), page.next_cursor)
        })
    };
    assert_newest_first_once(&list(EventQuery::default()), 7);
    let odd = EventQuery {
        event_type: Some("odd".into()),
        ..Default::default()
    };
    assert_newest_first_once(&list(odd), 3);
    let window = EventQuery {
        since: Some(T0 + 2000),
        until: Some(T0 + 4000),
        ..Default::default()
    };
    let times: Vec<i64> = db
        .on(s.list_events(TENANT, window, first(10)))
        .unwrap()
        .items
        .iter()
        .map(|e| e.created_at)
        .collect();
    assert!(
        times.iter().all(|t| (T0 + 2000..=T0 + 4000).contains(t)),
        "{times:?}"
    );
    assert!(times.len() >= 2, "{times:?}");

    let newest = &db
        .on(s.list_events(TENANT, EventQuery::default(), first(1)))
        .unwrap()
        .items[0];
    let got = db.on(s.get_event(TENANT, &newest.id)).unwrap();
    assert_eq!(
        (got.event.as_str(), got.payload.get()),
        ("even", r#"{"event":"even"}"#)
    );
    let missing = db.on(s.get_event(TENANT, "evt_nothing"));
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    let elsewhere = db.on(s.get_event("acme", &newest.id));
    assert!(
        matches!(elsewhere, Err(StoreError::NotFound(_))),
        "{elsewhere:?}"
    );
}
