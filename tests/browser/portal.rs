//! The tenant portal: one tenant's pages, logged in with its key, and nothing of any other.

use serde_json::json;

use crate::common::webdriver::{Browser, DESKTOP};
use crate::common::{Receiver, TestApp};
use crate::{shots, WAIT};

#[test]
fn portal_shows_only_its_own_tenant() {
    let receiver = Receiver::ok();
    let app = TestApp::spawn();
    let mut keys = Vec::new();
    let mut endpoint_ids = Vec::new();
    for tenant in ["alpha", "beta"] {
        let (s, _) = app.admin("POST", "/api/v1/tenants", Some(json!({ "id": tenant })));
        assert_eq!(s, 201);
        let (s, body) = app.admin(
            "POST",
            &format!("/api/v1/tenants/{tenant}/keys"),
            Some(json!({})),
        );
        assert_eq!(s, 201);
        keys.push(body["data"]["token"].as_str().unwrap().to_string());
        let url = receiver.url(&format!("/{tenant}-hook"));
        let hook = json!({ "url": url, "events": ["*"] });
        let (s, body) = app.admin(
            "POST",
            &format!("/api/v1/webhooks?tenant={tenant}"),
            Some(hook),
        );
        assert_eq!(s, 201);
        endpoint_ids.push(body["data"]["id"].as_i64().unwrap());
        let event = json!({ "event": format!("{tenant}.happened") });
        let (s, _) = app.admin(
            "POST",
            &format!("/api/v1/events?tenant={tenant}"),
            Some(event),
        );
        assert_eq!(s, 202);
    }
    receiver.wait_for("/beta-hook", 1, WAIT);
    let (_, beta) = app.admin("GET", "/api/v1/deliveries?tenant=beta", None);
    let beta_delivery = beta["data"][0]["id"].as_i64().unwrap();
    let beta_event = beta["data"][0]["event_id"].as_str().unwrap().to_string();

    let b = Browser::start(DESKTOP);
    b.goto(&app.url("/portal"));
    assert!(b.current_url().contains("/portal/login"));
    b.fill("#token", "hk_wrong");
    b.click("#login");
    assert!(b.text("#problem").contains("not valid"));
    b.fill("#token", &keys[0]);
    b.click("#login");
    let list = b.text("#endpoints");
    assert!(
        list.contains("/alpha-hook") && !list.contains("beta"),
        "{list}"
    );
    assert!(!b.source().contains("beta"));
    shots(&b, "portal-endpoints");

    // 30 more events: the log pages by 25.
    let batch: Vec<_> = (0..30)
        .map(|i| json!({ "event": "alpha.batch", "n": i }))
        .collect();
    let (s, _) = app.call(
        "POST",
        "/api/v1/events/batch",
        Some(&keys[0]),
        Some(&json!({ "events": batch }).to_string()),
    );
    assert_eq!(s, 202);
    b.goto(&app.url("/portal/events"));
    assert_eq!(b.find_all("#events tbody tr").len(), 25);
    assert!(!b.source().contains("beta"));
    b.click("a[rel=next]");
    assert_eq!(b.find_all("#events tbody tr").len(), 6);
    assert!(
        b.text("#events").contains("alpha.happened"),
        "the oldest is on the last page"
    );
    assert!(b.try_find("a[rel=next]").is_none());
    b.click(".pager a");
    assert_eq!(b.find_all("#events tbody tr").len(), 25);
    b.goto(&app.url("/portal/deliveries?status=succeeded"));
    b.reload_until(WAIT, "every alpha delivery to succeed", |b| {
        b.find_all("#deliveries tbody tr").len() == 25
    });
    assert!(!b.source().contains("beta"));

    // Another tenant's records do not exist from here, whatever id is typed.
    for path in [
        format!("/portal/endpoints/{}", endpoint_ids[1]),
        format!("/portal/deliveries/{beta_delivery}"),
        format!("/portal/events/{beta_event}"),
        "/portal/endpoints/not-a-number".to_string(),
    ] {
        b.goto(&app.url(&path));
        assert!(
            b.text("#error").contains("not found"),
            "{path}: {}",
            b.text("main")
        );
    }
    // Nor does the tenant in an admin URL mean anything to a portal session.
    b.goto(&app.url("/admin/tenants/beta/endpoints"));
    assert!(b.current_url().contains("/admin/login"));

    // An endpoint created in the portal belongs to the portal's tenant.
    b.goto(&app.url("/portal/endpoints/new"));
    b.fill("#url", &receiver.url("/alpha-second"));
    b.fill("#events", "*");
    b.click("#create-endpoint");
    assert!(b.text("#revealed").starts_with("whsec_"));
    let (_, alpha) = app.call("GET", "/api/v1/webhooks", Some(&keys[0]), None);
    assert_eq!(alpha["data"].as_array().unwrap().len(), 2);
    let (_, beta) = app.call("GET", "/api/v1/webhooks", Some(&keys[1]), None);
    assert_eq!(beta["data"].as_array().unwrap().len(), 1);
    shots(&b, "portal-endpoint");

    // Revoking the key ends its portal session.
    let (_, list) = app.admin("GET", "/api/v1/tenants/alpha/keys", None);
    let key_id = list["data"][0]["id"].as_i64().unwrap();
    let (s, _) = app.admin(
        "DELETE",
        &format!("/api/v1/tenants/alpha/keys/{key_id}"),
        None,
    );
    assert_eq!(s, 200);
    b.goto(&app.url("/portal/endpoints"));
    assert!(
        b.current_url().contains("/portal/login"),
        "{}",
        b.current_url()
    );
}
