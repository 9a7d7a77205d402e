//! The portal's transformation form (issue 21, item 3): a tenant saves a transformation in
//! its endpoint's edit form, tries it on a sample, sees a refused one's error, and the next
//! delivery carries the transformed body.

use std::time::Duration;

use serde_json::json;

use crate::common::webdriver::{Browser, DESKTOP};
use crate::common::{Receiver, TestApp};
use crate::{shots, WAIT};

#[test]
fn a_tenant_edits_tries_and_uses_a_transformation_in_the_portal() {
    let receiver = Receiver::ok();
    let app = TestApp::spawn();
    let (s, _) = app.admin("POST", "/api/v1/tenants", Some(json!({ "id": "acme" })));
    assert_eq!(s, 201);
    let (s, key) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    assert_eq!(s, 201);
    let key = key["data"]["token"].as_str().unwrap().to_owned();
    let (s, hook) = app.admin(
        "POST",
        "/api/v1/webhooks?tenant=acme",
        Some(json!({ "url": receiver.url("/hook"), "events": ["*"] })),
    );
    assert_eq!(s, 201);
    let id = hook["data"]["id"].as_i64().unwrap();

    let b = Browser::start(DESKTOP);
    b.goto(&app.url("/portal/login"));
    b.fill("#token", &key);
    b.click("#login");
    b.goto(&app.url(&format!("/portal/endpoints/{id}")));
    assert!(b.text("#endpoint-transformation").contains("none"));

    // A source that does not compile is refused with the reason, and nothing is saved.
    b.fill("#transformation", "function handler(w) { return w; ");
    b.click("#save-endpoint");
    assert!(
        b.text("#problem").contains("transformation:"),
        "{}",
        b.text("#problem")
    );
    let (_, saved) = app.admin("GET", &format!("/api/v1/webhooks/{id}?tenant=acme"), None);
    assert!(saved["data"]["transformation"].is_null());

    let source = "function handler(webhook) {\n  webhook.payload = { text: 'paid ' + webhook.payload.data.amount };\n  return webhook;\n}";
    b.goto(&app.url(&format!("/portal/endpoints/{id}")));
    b.fill("#transformation", source);
    b.click("#save-endpoint");
    assert!(
        b.text("#endpoint-transformation").contains("4 lines"),
        "{}",
        b.text("#endpoint-transformation")
    );

    // Try it on the sample the page offers: the body it would sign.
    b.click("#try-transformation");
    assert_eq!(b.text("#trial-outcome"), "send");
    assert_eq!(b.text("#trial-body"), r#"{"text":"paid 1200"}"#);
    shots(&b, "transformation-trial");
    // An unsaved variant that throws shows the error, and the saved one is untouched.
    b.fill(
        "#trial-transformation",
        "function handler(w) { throw new RangeError('too big'); }",
    );
    b.click("#try-transformation");
    assert_eq!(b.text("#trial-outcome"), "error");
    assert!(
        b.text("#trial-error").contains("RangeError: too big"),
        "{}",
        b.text("#trial-error")
    );
    // Markup in a sample comes back escaped.
    b.fill(
        "#trial-payload",
        r#"{"data": {"amount": "<b id=\"injected\">x</b>"}}"#,
    );
    b.fill("#trial-transformation", "");
    b.click("#try-transformation");
    assert!(
        b.try_find("#injected").is_none(),
        "the trial page rendered markup"
    );
    assert!(
        b.text("#trial-body").contains("<b id"),
        "{}",
        b.text("#trial-body")
    );

    let (s, _) = app.admin(
        "POST",
        "/api/v1/events?tenant=acme",
        Some(json!({ "event": "order.paid", "data": { "amount": 99 } })),
    );
    assert_eq!(s, 202);
    let got = receiver.wait_for("/hook", 1, WAIT);
    assert_eq!(got[0].body, r#"{"text":"paid 99"}"#);
    std::thread::sleep(Duration::from_millis(50));
}
