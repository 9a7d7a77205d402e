//! The endpoint page's routing parts in a real browser (issue 21, items 1 and 2): the
//! payload filter in the form (a mistake shown with its position), and the replay button
//! with its dry-run count, in the admin pages and the tenant portal.

use serde_json::json;

use crate::common::webdriver::{Browser, DESKTOP};
use crate::common::{Receiver, TestApp};
use crate::{flash, login_admin, shots, WAIT};

#[test]
fn the_filter_field_and_the_replay_button_work_in_admin_and_portal() {
    let receiver = Receiver::ok();
    let app = TestApp::spawn();
    for amount in [5, 500, 5_000] {
        app.publish(json!({"event": "order.paid", "amount": amount}));
    }
    let hook = app.create_webhook(&receiver.url("/replayed"), &["order.*"]);
    let id = hook["id"].as_i64().unwrap();
    let page = format!("/admin/tenants/default/endpoints/{id}");

    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    b.goto(&app.url(&page));
    assert!(
        b.text("#endpoint-filter").contains("none"),
        "{}",
        b.text("#endpoint-filter")
    );
    assert!(
        b.text("#replay-count").starts_with("3 events"),
        "{}",
        b.text("#replay-count")
    );

    // A mistake is shown where it goes wrong, and nothing is saved.
    b.fill("#filter", "$.amount >> 100");
    b.click("#save-endpoint");
    assert!(
        b.text("#problem").contains("filter: at character 10"),
        "{}",
        b.text("#problem")
    );
    b.fill("#filter", "$.amount > 100");
    b.click("#save-endpoint");
    assert!(flash(&b).contains("saved"), "{}", flash(&b));
    assert_eq!(b.text("#endpoint-filter"), "$.amount > 100");
    assert_eq!(
        b.find("#filter").property("value").as_deref(),
        Some("$.amount > 100")
    );
    assert!(
        b.text("#replay-count").starts_with("2 events"),
        "{}",
        b.text("#replay-count")
    );
    shots(&b, "endpoint-replay");

    b.click("#replay");
    assert!(flash(&b).contains("2 deliveries created"), "{}", flash(&b));
    receiver.wait_for("/replayed", 2, WAIT);
    assert!(
        b.text("#replay-count").starts_with("Every event"),
        "{}",
        b.text("#replay-count")
    );
    b.click("#replay");
    assert!(flash(&b).contains("Nothing to replay"), "{}", flash(&b));
    assert_eq!(receiver.on_path("/replayed").len(), 2);

    // The portal shares the page: a tenant replays its own endpoint.
    app.admin("POST", "/api/v1/tenants", Some(json!({"id": "acme"})));
    let (_, key) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    let token = key["data"]["token"].as_str().unwrap().to_owned();
    app.admin(
        "POST",
        "/api/v1/events?tenant=acme",
        Some(json!({"event": "order.paid", "amount": 7})),
    );
    let (_, theirs) = app.admin(
        "POST",
        "/api/v1/webhooks?tenant=acme",
        Some(json!({"url": receiver.url("/acme"), "events": ["*"], "status": "disabled"})),
    );
    let theirs = theirs["data"]["id"].as_i64().unwrap();
    let portal = Browser::start(DESKTOP);
    portal.goto(&app.url("/portal"));
    portal.fill("#token", &token);
    portal.click("#login");
    portal.goto(&app.url(&format!("/portal/endpoints/{theirs}")));
    assert!(
        portal.text("#replay-count").starts_with("1 event "),
        "{}",
        portal.text("#replay-count")
    );
    assert!(
        portal.find("#replay").attr("disabled").is_some(),
        "a disabled endpoint's button is off"
    );
    portal.click("#resume");
    portal.fill("#replay-since", "2020-01-01T00:00:00Z");
    portal.click("#replay");
    let message = flash(&portal);
    assert!(message.contains("1 delivery created"), "{message}");
    assert!(message.contains("are pruned (retention)"), "{message}");
    receiver.wait_for("/acme", 1, WAIT);
}
