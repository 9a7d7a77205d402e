//! Security review, second round (issue 23, item 6): one tenant filled the deployment's
//! one-time-message store (10,000 messages, kept 10 minutes) from 1,260 portal sessions of
//! its own, 8 actions each; then the admin's "create key" answered 503 for every tenant.
//! Messages are now bounded per principal (a tenant, the admin) as well as per session.
//! Plain HTTP (no browser): this suite runs on both backends.

use crate::common::{TestApp, ADMIN_TOKEN};
use crate::pages_http::Pages;

fn tenant_key(app: &TestApp, tenant: &str) -> String {
    let body = serde_json::json!({"id": tenant, "name": tenant});
    assert_eq!(app.admin("POST", "/api/v1/tenants", Some(body)).0, 201);
    let (_, key) = app.admin(
        "POST",
        &format!("/api/v1/tenants/{tenant}/keys"),
        Some(serde_json::json!({})),
    );
    key["data"]["token"].as_str().unwrap().to_owned()
}

#[test]
fn one_tenant_s_sessions_cannot_fill_the_one_time_message_store() {
    let app = TestApp::spawn();
    let flooder = tenant_key(&app, "flooder");
    let victim = tenant_key(&app, "victim");
    let hook = serde_json::json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});
    let (status, hook) = app.call(
        "POST",
        "/api/v1/webhooks",
        Some(&flooder),
        Some(&hook.to_string()),
    );
    assert_eq!(status, 201, "{hook}");
    let id = hook["data"]["id"].as_i64().unwrap();

    // 1,260 sessions of one tenant, each leaving its 8 messages unread: 10,080 in all.
    let pages = Pages::new(&app);
    let path = format!("/portal/endpoints/{id}/status");
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                for _ in 0..210 {
                    let session = pages.login("portal", &flooder);
                    let csrf = pages
                        .get(&format!("/portal/endpoints/{id}"), &session)
                        .csrf();
                    let form = format!("csrf_token={csrf}&status=paused");
                    for _ in 0..8 {
                        assert_eq!(pages.post(&path, &session, &form).status, 303);
                    }
                }
            });
        }
    });

    // The admin's new key is shown …
    let admin = pages.login("admin", ADMIN_TOKEN);
    let csrf = pages.get("/admin/tenants/victim", &admin).csrf();
    let made = pages.post(
        "/admin/tenants/victim/keys",
        &admin,
        &format!("csrf_token={csrf}&name=after-flood"),
    );
    assert_eq!(made.status, 303, "{}", made.body);
    let shown = pages.get(&made.location, &admin);
    assert!(
        shown.body.contains("id=\"revealed\">hk_"),
        "the admin's new key was not shown: {}",
        made.location
    );
    // … and so is another tenant's new endpoint secret.
    let portal = pages.login("portal", &victim);
    let csrf = pages.get("/portal/endpoints/new", &portal).csrf();
    let made = pages.post(
        "/portal/endpoints",
        &portal,
        &format!("csrf_token={csrf}&url=http%3A%2F%2F127.0.0.1%3A9%2Fv&events=*"),
    );
    assert_eq!(made.status, 303, "{}", made.body);
    let shown = pages.get(&made.location, &portal);
    assert!(
        shown.body.contains("id=\"revealed\">whsec_"),
        "the tenant's new secret was not shown: {}",
        made.location
    );
}
