//! The admin's journey through the pages, from login to logout.

use crate::common::webdriver::{Browser, DESKTOP};
use crate::common::{Receiver, Reply, TestApp, ADMIN_TOKEN};
use crate::{flash, shots, WAIT};

#[test]
fn admin_journey_from_login_to_logout() {
    // The first request to /hook fails; with no retries configured that delivery ends
    // `failed` at once, and the retry button's attempt succeeds.
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 500 } else { 200 }));
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "")]);
    let b = Browser::start(DESKTOP);

    // A wrong token is refused on the page itself.
    b.goto(&app.url("/admin"));
    assert!(
        b.current_url().contains("/admin/login"),
        "{}",
        b.current_url()
    );
    shots(&b, "login");
    b.fill("#token", "not-the-token");
    b.click("#login");
    assert!(b.text("#problem").contains("not valid"));
    b.fill("#token", ADMIN_TOKEN);
    b.click("#login");
    assert!(b.text("h1").contains("Overview"));
    shots(&b, "overview");

    // A tenant and its API key (shown once, and working against the API).
    b.click("nav.main a[href='/admin/tenants']");
    b.fill("#tenant-id", "acme");
    b.fill("#tenant-name", "Acme Inc.");
    b.click("#create-tenant");
    assert_eq!(flash(&b), "Tenant created.");
    assert!(b.try_find("#no-keys").is_some(), "empty state of the keys");
    b.fill("#key-name", "production");
    b.click("#create-key");
    let key = b.text("#revealed");
    assert!(key.starts_with("hk_"), "{key}");
    let (status, _) = app.call("GET", "/api/v1/webhooks", Some(&key), None);
    assert_eq!(status, 200, "the new key works");
    assert!(b.text("#keys").contains("production"));
    shots(&b, "tenant");
    b.goto(&app.url("/admin/tenants/acme"));
    assert!(
        b.try_find("#revealed").is_none(),
        "the key is shown only once"
    );
    b.click("#keys button.danger");
    assert!(flash(&b).contains("revoked"));
    assert!(b.text("#keys").contains("revoked"));
    assert_eq!(
        app.call("GET", "/api/v1/webhooks", Some(&key), None).0,
        401,
        "a revoked key is refused"
    );

    // The event-type catalogue, offered by the endpoint form.
    b.click("nav.main a[href='/admin/event-types']");
    assert!(b.try_find("#no-event-types").is_some());
    b.fill("#type-name", "job.completed");
    b.fill("#type-description", "A job finished");
    b.fill(
        "#type-example",
        r#"{"event":"job.completed","data":{"id":1}}"#,
    );
    b.click("#save-event-type");
    assert!(flash(&b).contains("job.completed saved"));
    assert!(b.text("main").contains("A job finished"));

    // An endpoint pointing at the receiver; its secret is shown once.
    b.goto(&app.url("/admin/tenants/acme"));
    b.click("nav.tenant a[href='/admin/tenants/acme/endpoints']");
    assert!(b.try_find("#no-endpoints").is_some());
    b.click("#new-endpoint");
    assert!(b.text("main form").contains("Known events: job.completed"));
    b.fill("#url", &receiver.url("/hook"));
    b.fill("#events", "job.completed, job.failed");
    b.fill("#description", "Production receiver");
    b.click("#create-endpoint");
    let secret = b.text("#revealed");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let endpoint_page = b.current_url();
    let endpoint_page = endpoint_page.split('?').next().unwrap().to_string();
    assert_eq!(b.text("#endpoint-url"), receiver.url("/hook"));

    // Send a test event: the first attempt gets a 500 and the delivery fails.
    b.click("#send-test");
    assert!(flash(&b).contains("Test event sent"));
    b.reload_until(WAIT, "the delivery to fail", |b| {
        b.text("#delivery-status") == "failed"
    });
    let delivery_page = b.current_url().split('?').next().unwrap().to_string();
    assert!(
        b.text("#attempts").contains("HTTP 500"),
        "{}",
        b.text("#attempts")
    );
    assert_eq!(b.text("#attempt-count"), "1");

    // The overview counts it and lists the endpoint as failing.
    b.click("nav.main a[href='/admin']");
    assert_eq!(b.text("#failed-24h"), "1");
    assert!(b.text("#troubled").contains("/hook"), "{}", b.text("main"));
    shots(&b, "overview-failing");

    // The delivery log shows it, and filters by status.
    b.goto(&app.url("/admin/tenants/acme/deliveries"));
    assert!(b.text("#deliveries").contains("webhook.test"));
    b.select("select[name=status]", "succeeded");
    b.click("form.filters button");
    assert!(
        b.try_find("#no-deliveries").is_some(),
        "nothing succeeded yet"
    );
    b.select("select[name=status]", "failed");
    b.click("form.filters button");
    assert!(b.text("#deliveries").contains("failed"));
    shots(&b, "deliveries");

    // Retry: the second request gets a 200.
    b.goto(&delivery_page);
    b.click("#retry");
    assert!(flash(&b).contains("queued again"));
    b.reload_until(WAIT, "the retry to succeed", |b| {
        b.text("#delivery-status") == "succeeded"
    });
    assert_eq!(b.text("#attempt-count"), "2");
    let attempts = b.text("#attempts");
    assert!(
        attempts.contains("HTTP 500") && attempts.contains("HTTP 200"),
        "{attempts}"
    );
    shots(&b, "delivery");
    let got = receiver.wait_for("/hook", 2, WAIT);
    assert_eq!(
        got[0].headers["webhook-id"], got[1].headers["webhook-id"],
        "a retry is the same message"
    );

    // The event log, with the payload pretty-printed.
    b.click("nav.tenant a[href='/admin/tenants/acme/events']");
    assert!(b.text("#events").contains("webhook.test"));
    shots(&b, "events");
    b.fill("input[name=event]", "job.nothing");
    b.click("form.filters button");
    assert!(b.text("#no-events").contains("No event matches"));
    b.fill("input[name=event]", "webhook.test");
    b.fill("input[name=since]", "2020-01-01 00:00");
    b.click("form.filters button");
    assert!(b.text("#events").contains("webhook.test"));
    b.fill("input[name=since]", "yesterday");
    b.click("form.filters button");
    assert!(b.text("#problem").contains("not a time"));
    b.goto(&app.url("/admin/tenants/acme/events"));
    b.click("#events a");
    let payload = b.text("#payload");
    assert!(
        payload.contains("\"event\": \"webhook.test\"") && payload.contains('\n'),
        "{payload}"
    );

    // Rotate the secret: a new one is shown; the old one signs beside it for a while.
    b.goto(&endpoint_page);
    b.click("#rotate-secret");
    let rotated = b.text("#revealed");
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert!(flash(&b).contains("previous secret keeps signing"));
    b.click("#send-test");
    let got = receiver.wait_for("/hook", 3, WAIT);
    assert_eq!(
        got[2].headers["webhook-signature"].matches("v1,").count(),
        2,
        "new and previous secret"
    );

    // Edit, pause and resume.
    b.goto(&endpoint_page);
    b.fill("#description", "Receiver of Acme's jobs");
    b.select("#status", "paused");
    b.click("#save-endpoint");
    assert_eq!(flash(&b), "Endpoint saved.");
    assert_eq!(b.text("#endpoint-status"), "paused");
    b.click("#resume");
    assert_eq!(b.text("#endpoint-status"), "active");
    b.click("#pause");
    assert_eq!(b.text("#endpoint-status"), "paused");
    b.click("#resume");

    // A second endpoint, then the list the README shows.
    b.goto(&app.url("/admin/tenants/acme/endpoints/new"));
    b.fill("#url", &receiver.url("/audit"));
    b.fill("#events", "*");
    b.click("#create-endpoint");
    b.goto(&app.url("/admin/tenants/acme/endpoints"));
    assert_eq!(b.find_all("#endpoints tbody tr").len(), 2);
    shots(&b, "endpoints");

    // Delete asks first.
    b.goto(&endpoint_page);
    b.click("#delete");
    assert!(b.text("h1").contains("Delete endpoint"));
    b.click("#confirm-delete");
    assert!(flash(&b).contains("deleted"));
    assert_eq!(b.find_all("#endpoints tbody tr").len(), 1);

    // Log out: the pages ask for the token again.
    b.click("#logout");
    assert!(b.current_url().contains("/admin/login"));
    b.goto(&app.url("/admin/tenants"));
    assert!(
        b.current_url().contains("/admin/login"),
        "{}",
        b.current_url()
    );
    assert!(b.try_find("#token").is_some());
}
