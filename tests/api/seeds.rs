// The seeds' routes and shapes, pagination, and the OpenAPI document.

use std::collections::HashSet;

use crate::common::{TestApp, ADMIN_TOKEN};
use serde_json::json;

#[test]
fn seed_000_create_list_delete_shapes() {
    let app = TestApp::spawn();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({
            "url": "https://your-server.com/webhook",
            "events": ["job.completed", "job.failed"],
            "secret_key": "your-secret-key"
        })),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], true);
    let data = &body["data"];
    assert_eq!(data["id"], 1);
    assert_eq!(data["url"], "https://your-server.com/webhook");
    assert_eq!(data["events"], json!(["job.completed", "job.failed"]));
    assert_eq!(data["status"], "active");
    assert_eq!(data["secret"], "your-secret-key");

    let (status, body) = app.admin("GET", "/api/v1/webhooks", None);
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    let list = body["data"]
        .as_array()
        .expect("data is an array, as in the seed");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["url"], "https://your-server.com/webhook");
    assert_eq!(list[0]["events"], json!(["job.completed", "job.failed"]));
    assert_eq!(list[0]["status"], "active");
    assert!(
        list[0].get("secret").is_none(),
        "the secret is shown only on create"
    );

    let (status, body) = app.admin("DELETE", "/api/v1/webhooks/1", None);
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "success": true, "data": { "id": 1 } }));
    let (status, body) = app.admin("GET", "/api/v1/webhooks/1", None);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

/// Seed 001: `POST /api/webhooks` with a tenant's bearer key; the secret comes back generated.
#[test]
fn seed_001_alias_with_tenant_key_and_generated_secret() {
    let app = TestApp::spawn();
    let (_, key) = app.admin(
        "POST",
        "/api/v1/tenants/default/keys",
        Some(json!({"name": "sdk"})),
    );
    let key = key["data"]["token"].as_str().unwrap().to_string();
    let body = json!({
        "url": "https://tu-servidor.com/webhook",
        "events": ["book.completed", "translation.error"]
    })
    .to_string();
    let (status, created) = app.call("POST", "/api/webhooks", Some(&key), Some(&body));
    assert_eq!(status, 201, "{created}");
    let data = &created["data"];
    assert!(data["id"].is_i64());
    let secret = data["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let decoded_len = base64_len(&secret["whsec_".len()..]);
    assert_eq!(decoded_len, 32, "whsec_ + base64 of 32 random bytes");

    let (status, list) = app.call("GET", "/api/webhooks", Some(&key), None);
    assert_eq!(status, 200);
    assert_eq!(
        list["data"][0]["events"],
        json!(["book.completed", "translation.error"])
    );
    let path = format!("/api/webhooks/{}", data["id"]);
    let (status, deleted) = app.call("DELETE", &path, Some(&key), None);
    assert_eq!(status, 200);
    assert_eq!(deleted["data"]["id"], data["id"]);
    let (_, list) = app.call("GET", "/api/webhooks", Some(&key), None);
    assert_eq!(list["data"], json!([]));
}

fn base64_len(s: &str) -> usize {
    let padding = s.chars().rev().take_while(|c| *c == '=').count();
    s.len() / 4 * 3 - padding
}

#[test]
fn pagination_walks_every_row_once() {
    let app = TestApp::spawn();
    for i in 0..7 {
        app.create_webhook(&format!("http://127.0.0.1:9/{i}"), &["*"]);
    }
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/api/v1/webhooks?limit=3&cursor={cursor}");
        let (status, body) = app.admin("GET", &path, None);
        assert_eq!(status, 200, "{body}");
        for w in body["data"].as_array().unwrap() {
            assert!(
                seen.insert(w["id"].as_i64().unwrap()),
                "duplicate across pages"
            );
        }
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (7, 3));
    let (_, body) = app.admin("GET", "/api/v1/webhooks?limit=2", None);
    let ids: Vec<i64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![7, 6], "newest first");
}

/// The OpenAPI document lists every route, and every route it lists exists.
#[test]
fn openapi_document_describes_every_route() {
    let app = TestApp::spawn();
    let (status, doc) = app.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    // Every route the server has (kept in step with the handlers' configure functions).
    let expected = [
        "GET /api/v1/webhooks",
        "POST /api/v1/webhooks",
        "GET /api/v1/webhooks/{id}",
        "PATCH /api/v1/webhooks/{id}",
        "DELETE /api/v1/webhooks/{id}",
        "POST /api/v1/webhooks/{id}/rotate-secret",
        "GET /api/v1/webhooks/{id}/poll",
        "GET /api/v1/webhooks/{id}/deliveries",
        "POST /api/v1/webhooks/{id}/test",
        "POST /api/v1/webhooks/{id}/recover",
        "POST /api/v1/webhooks/{id}/transformation/test",
        "POST /api/v1/webhooks/{id}/replay",
        "GET /api/v1/deliveries",
        "GET /api/v1/deliveries/{id}",
        "POST /api/v1/deliveries/{id}/retry",
        "POST /api/v1/events",
        "POST /api/v1/events/batch",
        "GET /api/v1/events",
        "GET /api/v1/events/{id}",
        "GET /api/v1/event-types",
        "POST /api/v1/event-types",
        "GET /api/v1/event-types/{name}",
        "DELETE /api/v1/event-types/{name}",
        "GET /api/v1/tenants",
        "POST /api/v1/tenants",
        "GET /api/v1/tenants/{id}",
        "PATCH /api/v1/tenants/{id}",
        "DELETE /api/v1/tenants/{id}",
        "GET /api/v1/tenants/{id}/keys",
        "POST /api/v1/tenants/{id}/keys",
        "DELETE /api/v1/tenants/{id}/keys/{key_id}",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    ];
    for route in expected {
        assert!(
            documented.contains(&route.to_string()),
            "{route} is not in the OpenAPI document"
        );
    }
    assert_eq!(documented.len(), expected.len(), "{documented:?}");
    // And each documented route is served: never the "no such route" 404 or a 405.
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{id}", "1")
            .replace("{key_id}", "1")
            .replace("{name}", "x.y");
        let (status, body) = app.call(method, &path, Some(ADMIN_TOKEN), Some("{}"));
        let unrouted = body["error"]["message"] == "no such route" || status == 405;
        assert!(
            !unrouted,
            "{route} is documented but not served: {status} {body}"
        );
    }
}
