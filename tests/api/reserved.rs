// Security review (issue 23, item 10): a tenant could publish `herald.*` events, which its
// endpoints received signed like Herald's own operational events; and the admin could mint
// API keys for the reserved `_herald` tenant, which then read every tenant's operational
// events and could re-point the operator endpoint.

use serde_json::json;

use crate::common::{Receiver, TestApp};
use crate::pages_http::Pages;

#[test]
fn tenants_cannot_publish_events_named_like_herald_s_own() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/hook"), &["herald.*", "*"]);
    for body in [
        json!({"event": "herald.endpoint.disabled", "data": {}}),
        json!({"event": "herald.delivery.failed"}),
    ] {
        let (status, answer) = app.admin("POST", "/api/v1/events", Some(body));
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["success"], false);
        assert_eq!(answer["error"]["code"], "reserved_event", "{answer}");
    }
    let batch = json!({"events": [{"event": "a.b"}, {"event": "herald.x"}]});
    let (status, answer) = app.admin("POST", "/api/v1/events/batch", Some(batch));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1]"),
        "{answer}"
    );
    // Names that merely resemble it are a tenant's own.
    app.publish(json!({"event": "heraldry.shield"}));
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 1);
}

#[test]
fn no_api_keys_for_the_operator_tenant() {
    let app = TestApp::spawn_with(&[("HERALD_OPERATOR_WEBHOOK", "http://127.0.0.1:9/ops")]);
    let (status, answer) = app.admin("POST", "/api/v1/tenants/_herald/keys", Some(json!({})));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["success"], false);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("_herald"),
        "{answer}"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) FROM api_keys WHERE tenant_id = '_herald'"),
        0
    );
    // The admin still manages the operator endpoint itself.
    let (status, hooks) = app.admin("GET", "/api/v1/webhooks?tenant=_herald", None);
    assert_eq!(status, 200, "{hooks}");
    assert_eq!(hooks["data"].as_array().unwrap().len(), 1);
}

/// A key for `_herald` minted before this release (written straight into the database)
/// opens neither the API nor the portal.
#[test]
fn an_old_operator_tenant_key_is_refused() {
    let app = TestApp::spawn_with(&[("HERALD_OPERATOR_WEBHOOK", "http://127.0.0.1:9/ops")]);
    let token = "hk_old_operator_key_0123456789abcdef0123456789";
    app.sql_exec(&[format!(
        "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, created_at)
         VALUES ('_herald', 'old', 'hk_old', '{}', 0)",
        herald::secrets::keys::hash_token(token)
    )]);
    let (status, answer) = app.call("GET", "/api/v1/webhooks", Some(token), None);
    assert_eq!(status, 401, "{answer}");
    let pages = Pages::new(&app);
    let form = pages.get("/portal/login", "");
    let anon = form.cookie.clone().expect("anonymous session");
    let answer = pages.post(
        "/portal/login",
        &anon,
        &format!("csrf_token={}&token={token}", form.csrf()),
    );
    assert_eq!(answer.status, 401, "the portal let the key in");
}
