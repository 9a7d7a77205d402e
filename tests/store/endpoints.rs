//! Endpoints: not found (also across tenants), pages filtered by status, a patch that
//! changes only what it names, disabling that cancels what is pending, secret rotation
//! with its grace period, and a delete that takes the deliveries and keeps the id unused.

use herald::domain::{EndpointStatus, EndpointUrl};
use herald::store::{EndpointPatch, StoreError};

use crate::{assert_newest_first_once, endpoint_to, first, pages, Db, T0, TENANT};

contract!(
    endpoints_are_not_found_outside_their_tenant,
    endpoints_page_newest_first_by_status,
    a_patch_changes_what_it_names_and_disabling_cancels_the_pending,
    a_rotated_secret_keeps_the_old_one_until_its_grace_ends,
    a_deleted_endpoint_takes_its_deliveries_and_its_id_is_not_reused,
);

const URL: &str = "http://127.0.0.1:9/hook";

fn not_found<T: std::fmt::Debug>(answer: Result<T, StoreError>) {
    assert!(matches!(answer, Err(StoreError::NotFound(_))), "{answer:?}");
}

fn endpoints_are_not_found_outside_their_tenant(db: &Db) {
    let s = &db.store;
    db.on(s.create_tenant("acme", "Acme", T0)).unwrap();
    let id = db.endpoint(URL, "*");
    let e = db.on(s.get_endpoint(TENANT, id)).unwrap();
    assert_eq!(
        (e.url.as_str(), e.status, e.tenant_id.as_str()),
        (URL, EndpointStatus::Active, TENANT)
    );
    assert!(e.circuit.is_closed());
    not_found(db.on(s.get_endpoint("acme", id)));
    not_found(db.on(s.delete_endpoint("acme", id)));
    not_found(db.on(s.update_endpoint("acme", id, EndpointPatch::default(), T0)));
    not_found(db.on(s.rotate_secret("acme", id, "whsec_x".into(), T0, T0)));
    not_found(db.on(s.get_endpoint(TENANT, id + 1000)));
    let nobody = db.on(s.create_endpoint("nobody", endpoint_to(URL, "*"), T0));
    assert!(
        nobody.is_err(),
        "an endpoint needs its tenant: {:?}",
        nobody.map(|e| e.id)
    );
}

fn endpoints_page_newest_first_by_status(db: &Db) {
    let s = &db.store;
    let ids: Vec<i64> = (0..7).map(|_| db.endpoint(URL, "*")).collect();
    for id in ids.iter().step_by(2) {
        let paused = EndpointPatch {
            status: Some(EndpointStatus::Paused),
            ..Default::default()
        };
        db.on(s.update_endpoint(TENANT, *id, paused, T0)).unwrap();
    }
    let list = |status| {
        pages(2, |cursor| {
            let page = db.on(s.list_endpoints(TENANT, status, cursor)).unwrap();
            (page.items.iter().map(|e| e.id).collect(), page.next_cursor)
        })
    };
    assert_newest_first_once(&list(None), 7);
    assert_newest_first_once(&list(Some(EndpointStatus::Paused)), 4);
    assert_newest_first_once(&list(Some(EndpointStatus::Active)), 3);
    assert!(
        db.on(s.list_endpoints("nobody", None, first(5)))
            .map(|p| p.items.len())
            .unwrap_or(0)
            == 0
    );
}

fn a_patch_changes_what_it_names_and_disabling_cancels_the_pending(db: &Db) {
    let s = &db.store;
    let id = db.endpoint(URL, "order.*");
    let moved = EndpointPatch {
        url: Some(EndpointUrl::parse("http://127.0.0.1:9/moved", true).unwrap()),
        description: Some("Orders".into()),
        rate_limit: Some(Some(5.0)),
        ..Default::default()
    };
    let e = db.on(s.update_endpoint(TENANT, id, moved, T0 + 1)).unwrap();
    assert_eq!(
        (e.url.as_str(), e.description.as_str()),
        ("http://127.0.0.1:9/moved", "Orders")
    );
    assert_eq!(
        (e.rate_limit, e.events.clone(), e.updated_at),
        (Some(5.0), vec!["order.*".to_string()], T0 + 1)
    );
    let back = EndpointPatch {
        rate_limit: Some(None),
        ..Default::default()
    };
    assert_eq!(
        db.on(s.update_endpoint(TENANT, id, back, T0))
            .unwrap()
            .rate_limit,
        None
    );

    let pending = db.delivery_of(&db.publish("order.paid", T0));
    let disable = EndpointPatch {
        status: Some(EndpointStatus::Disabled),
        ..Default::default()
    };
    let e = db
        .on(s.update_endpoint(TENANT, id, disable, T0 + 2))
        .unwrap();
    assert_eq!(e.status, EndpointStatus::Disabled);
    let d = db.on(s.get_delivery(TENANT, pending)).unwrap();
    assert_eq!((d.status.as_str(), d.next_attempt_at), ("cancelled", None));
    assert_eq!(db.on(s.gauges()).unwrap().pending, 0);
}

fn a_rotated_secret_keeps_the_old_one_until_its_grace_ends(db: &Db) {
    let s = &db.store;
    let id = db.endpoint(URL, "*");
    let old = db.on(s.get_endpoint(TENANT, id)).unwrap().secret;
    assert!(
        old.starts_with("whsec_"),
        "answered opened, whatever is stored"
    );
    let new = herald::wire::signing::generate_secret();
    let e = db
        .on(s.rotate_secret(TENANT, id, new.clone(), T0 + 60_000, T0))
        .unwrap();
    assert_eq!(e.secret, new);
    assert_eq!(e.previous_secret.as_deref(), Some(old.as_str()));
    assert_eq!(e.previous_secret_until, Some(T0 + 60_000));
    let again = db.on(s.get_endpoint(TENANT, id)).unwrap();
    assert_eq!((again.secret, again.previous_secret), (new, Some(old)));
}

fn a_deleted_endpoint_takes_its_deliveries_and_its_id_is_not_reused(db: &Db) {
    let s = &db.store;
    let first_id = db.endpoint(URL, "*");
    let published = db.publish("job.done", T0);
    let delivery = db.delivery_of(&published);
    db.on(s.delete_endpoint(TENANT, first_id)).unwrap();
    not_found(db.on(s.get_endpoint(TENANT, first_id)));
    not_found(db.on(s.get_delivery(TENANT, delivery)));
    not_found(db.on(s.delete_endpoint(TENANT, first_id)));
    // The event stays, without deliveries.
    db.on(s.get_event(TENANT, &published.id)).unwrap();
    assert!(db
        .on(s.event_deliveries(TENANT, &published.id))
        .unwrap()
        .is_empty());

    let second = db.endpoint(URL, "*");
    assert!(second > first_id, "endpoint {second} after {first_id}");
    let next = db.delivery_of(&db.publish("job.done", T0));
    assert!(next > delivery, "delivery {next} after {delivery}");
}
