// Poll endpoints on the pages (issue 9, items 5 and 8): the form's type select creates one
// without a URL, and its page shows where the consumer polls instead of a push URL.

use serde_json::json;

use super::pages_http::Pages;
use crate::common::TestApp;

#[test]
fn the_endpoint_form_creates_a_poll_endpoint_and_its_page_shows_the_poll_url() {
    let app = TestApp::spawn();
    app.admin(
        "POST",
        "/api/v1/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    );
    let (_, key) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    let token = key["data"]["token"].as_str().unwrap().to_owned();
    let pages = Pages::new(&app);
    let portal = pages.login("portal", &token);
    let new = pages.get("/portal/endpoints/new", &portal);
    assert_eq!(new.status, 200);
    assert!(new.body.contains(r#"<option value="poll""#), "{}", new.body);

    // A poll endpoint with a URL is refused with the reason; without one it is created.
    let form = |url: &str| {
        format!(
            "csrf_token={}&type=poll&url={url}&events=*&description=&status=active&headers=",
            new.csrf()
        )
    };
    let refused = pages.post("/portal/endpoints", &portal, &form("https%3A%2F%2Fx.io%2F"));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("a poll endpoint has no URL"),
        "{}",
        refused.body
    );
    let created = pages.post("/portal/endpoints", &portal, &form(""));
    assert!(
        created.status == 303 || created.status == 200,
        "{}",
        created.body
    );

    let (_, list) = app.call("GET", "/api/v1/webhooks", Some(&token), None);
    let hook = &list["data"][0];
    assert_eq!(hook["type"], "poll", "{list}");
    assert!(hook["url"].is_null());
    let id = hook["id"].as_i64().unwrap();
    let page = pages.get(&format!("/portal/endpoints/{id}"), &portal);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Poll URL"), "{}", page.body);
    assert!(
        page.body.contains(&format!("/api/v1/webhooks/{id}/poll")),
        "{}",
        page.body
    );
    assert!(!page.body.contains(r#"id="endpoint-url""#));
    // Saving the edit form keeps it a poll endpoint with no URL.
    let form = format!(
        "csrf_token={}&type=push&url=&events=a.b&description=&status=active&headers=",
        page.csrf()
    );
    let saved = pages.post(&format!("/portal/endpoints/{id}"), &portal, &form);
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (_, shown) = app.call("GET", &format!("/api/v1/webhooks/{id}"), Some(&token), None);
    assert_eq!(
        (
            shown["data"]["type"].as_str(),
            shown["data"]["events"][0].as_str()
        ),
        (Some("poll"), Some("a.b"))
    );
}
