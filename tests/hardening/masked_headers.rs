// Security review (issue 10): extra endpoint headers (e.g. `Authorization: Bearer
// receiver-secret`) came back in clear in API lists and portal pages. They are now
// write-only: listed by name with masked values, and a masked value sent back keeps the
// stored one, so deliveries still carry it.

use std::time::Duration;

use serde_json::json;

use super::pages_http::Pages;
use crate::common::{Receiver, TestApp};

const SECRET: &str = "receiver-secret";

#[test]
fn extra_header_values_are_never_shown_but_still_sent() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    assert_eq!(
        app.admin(
            "POST",
            "/api/v1/tenants",
            Some(json!({"id": "acme", "name": "Acme"}))
        )
        .0,
        201
    );
    let (_, key) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    let token = key["data"]["token"].as_str().unwrap().to_owned();
    let hook = json!({
        "url": receiver.url("/hook"), "events": ["*"],
        "headers": {"Authorization": format!("Bearer {SECRET}")},
    });
    let (status, created) = app.call(
        "POST",
        "/api/v1/webhooks",
        Some(&token),
        Some(&hook.to_string()),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(
        created["data"]["headers"],
        json!({"Authorization": "********"})
    );
    for path in [
        "/api/v1/webhooks".to_string(),
        format!("/api/v1/webhooks/{id}"),
    ] {
        let (status, _, body) = app.call_raw("GET", &path, Some(&token), &[], None);
        assert_eq!(status, 200);
        assert!(
            body.contains("Authorization") && !body.contains(SECRET),
            "{path}: {body}"
        );
    }

    // The portal's edit form shows the name only; saving it unchanged keeps the value.
    let pages = Pages::new(&app);
    let portal = pages.login("portal", &token);
    let page = pages.get(&format!("/portal/endpoints/{id}"), &portal);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Authorization: ********"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(SECRET));
    let url = receiver
        .url("/hook")
        .replace(':', "%3A")
        .replace('/', "%2F");
    let form = format!(
        "csrf_token={}&url={url}&events=*&description=&status=active&headers=Authorization%3A+********",
        page.csrf()
    );
    let saved = pages.post(&format!("/portal/endpoints/{id}"), &portal, &form);
    assert_eq!(saved.status, 303, "{}", saved.body);
    // A PATCH that sends the masked value back keeps it too.
    let patch = json!({"headers": {"Authorization": "********"}, "description": "kept"});
    let (status, body) = app.call(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(&token),
        Some(&patch.to_string()),
    );
    assert_eq!(status, 200, "{body}");

    let (status, _) = app.call(
        "POST",
        "/api/v1/events",
        Some(&token),
        Some(r#"{"event": "a.b", "data": {}}"#),
    );
    assert_eq!(status, 202);
    let got = receiver.wait_for("/hook", 1, Duration::from_secs(20));
    assert_eq!(got[0].headers["authorization"], format!("Bearer {SECRET}"));
}
