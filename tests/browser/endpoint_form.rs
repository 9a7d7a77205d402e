//! The endpoint form's signature select and its Events field, as a person uses them.

use crate::common::webdriver::{Browser, DESKTOP};
use crate::common::TestApp;
use crate::login_admin;

#[test]
fn endpoint_form_chooses_signature_schemes() {
    let app = TestApp::spawn();
    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    b.goto(&app.url("/admin/tenants/default/endpoints/new"));
    // Events starts empty: typing `book.*` gives `book.*`, not `*book.*`.
    b.find("#events").send_keys("book.*");
    b.fill("#url", "http://127.0.0.1:9/hook");
    assert_eq!(b.find("#signature").property("value").as_deref(), Some(""));
    b.select("#signature", "standard,body");
    b.click("#create-endpoint");
    let (_, hooks) = app.admin("GET", "/api/v1/webhooks", None);
    let hook = &hooks["data"][0];
    assert_eq!(hook["events"], serde_json::json!(["book.*"]), "{hook}");
    assert_eq!(
        hook["signature"],
        serde_json::json!(["standard", "body"]),
        "{hook}"
    );

    // The endpoint's page shows the choice, whatever order the API stored it in, and can
    // go back to the deployment default.
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    app.admin(
        "PATCH",
        &path,
        Some(serde_json::json!({"signature": "body,standard"})),
    );
    b.goto(&app.url(&format!("/admin/tenants/default/endpoints/{}", hook["id"])));
    assert_eq!(
        b.find("#signature").property("value").as_deref(),
        Some("standard,body")
    );
    b.select("#signature", "");
    b.click("#save-endpoint");
    let (_, hook) = app.admin("GET", &path, None);
    assert!(hook["data"]["signature"].is_null(), "{hook}");
}
