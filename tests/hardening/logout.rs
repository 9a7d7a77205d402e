// Security review (issue 10): after `POST /admin/logout` the old cookie still created a
// tenant. Logging out now ends the session on the server; a replayed cookie is refused.

use super::pages_http::Pages;
use crate::common::{TestApp, ADMIN_TOKEN};

#[test]
fn admin_cookie_replayed_after_logout_is_refused() {
    let app = TestApp::spawn();
    let pages = Pages::new(&app);
    let cookie = pages.login("admin", ADMIN_TOKEN);
    let home = pages.get("/admin/tenants", &cookie);
    assert_eq!(home.status, 200);
    let csrf = home.csrf();
    let made = pages.post(
        "/admin/tenants",
        &cookie,
        &format!("csrf_token={csrf}&id=before"),
    );
    assert_eq!(made.status, 303, "the session works: {}", made.body);

    let out = pages.post("/admin/logout", &cookie, &format!("csrf_token={csrf}"));
    assert_eq!(out.status, 303);

    let replay = pages.get("/admin/tenants", &cookie);
    assert_eq!(replay.status, 303, "a page opened with the old cookie");
    assert!(
        replay.location.starts_with("/admin/login"),
        "{}",
        replay.location
    );
    let forged = pages.post(
        "/admin/tenants",
        &cookie,
        &format!("csrf_token={csrf}&id=after"),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(app.admin("GET", "/api/v1/tenants/after", None).0, 404);

    // Logging in again works, and the new session is not the ended one.
    let again = pages.login("admin", ADMIN_TOKEN);
    assert_eq!(pages.get("/admin/tenants", &again).status, 200);
}

#[test]
fn portal_cookie_replayed_after_logout_is_refused() {
    let app = TestApp::spawn();
    let (status, key) = app.admin(
        "POST",
        "/api/v1/tenants",
        Some(serde_json::json!({"id": "acme", "name": "Acme"})),
    );
    assert_eq!(status, 201, "{key}");
    let (status, key) = app.admin(
        "POST",
        "/api/v1/tenants/acme/keys",
        Some(serde_json::json!({})),
    );
    assert_eq!(status, 201, "{key}");
    let token = key["data"]["token"].as_str().expect("key").to_owned();
    let pages = Pages::new(&app);
    let cookie = pages.login("portal", &token);
    let home = pages.get("/portal/endpoints", &cookie);
    assert_eq!(home.status, 200, "{}", home.body);
    let out = pages.post(
        "/portal/logout",
        &cookie,
        &format!("csrf_token={}", home.csrf()),
    );
    assert_eq!(out.status, 303);
    assert_eq!(pages.get("/portal/endpoints", &cookie).status, 303);
}
