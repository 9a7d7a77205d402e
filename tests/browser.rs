//! The admin pages and the tenant portal in a real browser: headless Chromium driven over
//! WebDriver against the real binary, with a real receiver on loopback. Screenshots of the
//! main pages (desktop and phone width) land in target/screenshots/.
//!
//! Needs `chromium` and `chromium-driver` (Debian); without them these tests fail, loudly.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::webdriver::{Browser, DESKTOP, PHONE};
use common::{Receiver, Reply, TestApp, ADMIN_TOKEN};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn shot(b: &Browser, name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(format!("{name}.png"));
    b.screenshot(&path);
}

/// Desktop and phone-width screenshots of the page the browser is on.
fn shots(b: &Browser, name: &str) {
    shot(b, &format!("{name}-desktop"));
    b.set_size(PHONE);
    shot(b, &format!("{name}-phone"));
    b.set_size(DESKTOP);
}

fn login_admin(b: &Browser, app: &TestApp) {
    b.goto(&app.url("/admin"));
    b.fill("#token", ADMIN_TOKEN);
    b.click("#login");
    assert!(
        b.try_find("#logout").is_some(),
        "logged in: {}",
        b.current_url()
    );
}

fn flash(b: &Browser) -> String {
    b.text("#flash")
}

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

/// A request with the admin session cookie the browser holds, outside the browser;
/// redirects are not followed. A POST without the page's token is what a forged
/// cross-site form would send.
fn with_cookie(app: &TestApp, method: &str, path: &str, cookie: &str, body: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(app.url(path))
        .header("cookie", format!("herald_admin={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .unwrap();
    let mut response = agent.run(request).expect("request to herald");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn post_form(app: &TestApp, path: &str, cookie: &str, body: &str) -> (u16, String) {
    with_cookie(app, "POST", path, cookie, body)
}

#[test]
fn forms_without_their_csrf_token_are_refused() {
    let app = TestApp::spawn();
    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    let cookie = b.cookie("herald_admin").expect("the session cookie");
    b.goto(&app.url("/admin/tenants"));
    let token = b
        .find("form.card input[name=csrf_token]")
        .attr("value")
        .unwrap();

    for body in [
        "id=evil&name=Evil",
        "id=evil&csrf_token=",
        "id=evil&csrf_token=AAAA",
    ] {
        let (status, page) = post_form(&app, "/admin/tenants", &cookie, body);
        assert_eq!(status, 403, "{body}: {page}");
        assert!(page.contains("Nothing was changed"), "{page}");
    }
    let hook = format!(
        "url=http%3A%2F%2F127.0.0.1%3A9%2F&events=*&csrf_token={}",
        "x".repeat(43)
    );
    let (status, _) = post_form(&app, "/admin/tenants/default/endpoints", &cookie, &hook);
    assert_eq!(status, 403);
    let (status, _) = post_form(&app, "/admin/logout", &cookie, "");
    assert_eq!(status, 403);
    // Without the cookie the token alone is worth nothing either.
    let (status, _) = post_form(
        &app,
        "/admin/tenants",
        "",
        &format!("id=evil&csrf_token={token}"),
    );
    assert_eq!(status, 403);

    assert_eq!(
        app.admin("GET", "/api/v1/tenants/evil", None).0,
        404,
        "no tenant was created"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) FROM endpoints"),
        0,
        "no endpoint was created"
    );
    // The same request with the page's token goes through: the token was the difference.
    let (status, _) = post_form(
        &app,
        "/admin/tenants",
        &cookie,
        &format!("id=evil&csrf_token={token}"),
    );
    assert_eq!(status, 303);
    assert_eq!(app.admin("GET", "/api/v1/tenants/evil", None).0, 200);
    b.goto(&app.url("/admin"));
    assert!(
        b.try_find("#logout").is_some(),
        "the session survived the forged logout"
    );
}

#[test]
fn user_supplied_html_is_shown_escaped() {
    let app = TestApp::spawn();
    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    let evil_url = "http://127.0.0.1:9/x?<script>alert(1)</script>";
    let evil_text = "<script>alert(2)</script><img src=x onerror=alert(3)><b>bold</b>";
    b.goto(&app.url("/admin/tenants/default/endpoints/new"));
    b.fill("#url", evil_url);
    b.fill("#events", "*");
    b.fill("#description", evil_text);
    b.click("#create-endpoint");
    // Refused (not a valid URL), and both the message and the form show it back as text.
    assert!(
        b.text("#problem").contains(evil_url),
        "{}",
        b.text("#problem")
    );
    assert_eq!(b.find("#url").attr("value").as_deref(), Some(evil_url));
    let source = b.source();
    assert!(
        source.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{source}"
    );
    assert!(b.find_all("script").is_empty() && b.find_all("main img, main b").is_empty());
    assert!(!b.alert_open());

    // A valid URL: the description is stored and shown as text on every page.
    b.fill("#url", "http://127.0.0.1:9/x?q='&a=1");
    b.click("#create-endpoint");
    assert!(b.try_find("#revealed").is_some(), "created");
    for page in [
        "/admin/tenants/default/endpoints",
        "/admin/tenants/default/endpoints/1",
    ] {
        b.goto(&app.url(page));
        assert!(b.text("main").contains(evil_text), "{page}");
        assert!(
            b.source().contains("&lt;script&gt;alert(2)&lt;/script&gt;"),
            "{page}"
        );
        assert!(
            b.find_all("script").is_empty() && b.find_all("main img, main b").is_empty(),
            "{page}"
        );
        assert!(!b.alert_open());
    }
    let cookie = b.cookie("herald_admin").expect("session cookie");
    let (status, raw) = with_cookie(&app, "GET", "/admin/tenants/default/endpoints", &cookie, "");
    assert_eq!(status, 200);
    assert!(
        raw.contains("alert(2)") && !raw.contains("<script"),
        "the server never sends a script element"
    );
}

#[test]
fn session_cookies_are_http_only_strict_and_secure_behind_https() {
    let app = TestApp::spawn();
    for (area, proto, secure) in [
        ("admin", "http", false),
        ("admin", "https", true),
        ("portal", "https", true),
    ] {
        let (status, headers, _) = app.call_raw(
            "GET",
            &format!("/{area}/login"),
            None,
            &[("x-forwarded-proto", proto)],
            None,
        );
        assert_eq!(status, 200);
        let cookie = &headers["set-cookie"];
        assert!(cookie.starts_with(&format!("herald_{area}=")), "{cookie}");
        for part in ["HttpOnly", "SameSite=Strict", &format!("Path=/{area}")] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert_eq!(cookie.contains("Secure"), secure, "{proto}: {cookie}");
    }
}
