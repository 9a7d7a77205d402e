// Security review (issue 10): the one-time message store was global with 10,000 slots;
// 10,200 cheap portal actions from one tenant and the admin's next new API key was
// silently never shown. Messages are now kept per session.

use super::pages_http::Pages;
use crate::common::{TestApp, ADMIN_TOKEN};

#[test]
fn a_tenants_flood_of_actions_does_not_hide_the_admins_new_key() {
    let app = TestApp::spawn();
    let tenant = serde_json::json!({"id": "acme", "name": "Acme"});
    assert_eq!(app.admin("POST", "/api/v1/tenants", Some(tenant)).0, 201);
    let (_, key) = app.admin(
        "POST",
        "/api/v1/tenants/acme/keys",
        Some(serde_json::json!({})),
    );
    let token = key["data"]["token"].as_str().unwrap().to_owned();
    let hook = serde_json::json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});
    let (status, hook) = app.call(
        "POST",
        "/api/v1/webhooks",
        Some(&token),
        Some(&hook.to_string()),
    );
    assert_eq!(status, 201, "{hook}");
    let id = hook["data"]["id"].as_i64().unwrap();

    let pages = Pages::new(&app);
    let portal = pages.login("portal", &token);
    let csrf = pages
        .get(&format!("/portal/endpoints/{id}"), &portal)
        .csrf();
    let path = format!("/portal/endpoints/{id}/status");
    let form = format!("csrf_token={csrf}&status=paused");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..1_275 {
                    assert_eq!(pages.post(&path, &portal, &form).status, 303);
                }
            });
        }
    });

    let admin = pages.login("admin", ADMIN_TOKEN);
    let csrf = pages.get("/admin/tenants/acme", &admin).csrf();
    let made = pages.post(
        "/admin/tenants/acme/keys",
        &admin,
        &format!("csrf_token={csrf}&name=after-flood"),
    );
    assert_eq!(made.status, 303, "{}", made.body);
    let shown = pages.get(&made.location, &admin);
    assert!(
        shown.body.contains("id=\"revealed\">hk_"),
        "the new key was not shown: {}",
        made.location
    );
}
