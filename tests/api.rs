//! The JSON API (issue 3), driven over HTTP against the real binary and a real SQLite file.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Receiver, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

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
fn publish_writes_event_and_deliveries_before_answering() {
    let app = TestApp::spawn_with(&[("HERALD_DURABILITY", "full")]);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/a"), &["job.completed"]);
    app.create_webhook(&receiver.url("/b"), &["job.*"]);
    app.create_webhook(&receiver.url("/c"), &["book.completed"]);
    app.create_webhook(&receiver.url("/d"), &["*"]);
    let data = app.publish(json!({ "event": "job.completed", "task_id": "task_1" }));
    assert_eq!(data["deliveries"], 3);
    let id = data["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("evt_"));
    // Read the file right after the 202: the event and its 3 rows are already there.
    let rows = app.sql_count(&format!(
        "SELECT count(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.id = '{id}'"
    ));
    assert_eq!(rows, 3);
    let data = app.publish(json!({ "event": "book.completed" }));
    assert_eq!(data["deliveries"], 2);
    let data = app.publish(json!({ "event": "other.thing" }));
    assert_eq!(data["deliveries"], 1);

    let (_, body) = app.admin("GET", &format!("/api/v1/events/{id}"), None);
    let event = &body["data"];
    assert_eq!(event["event"], "job.completed");
    assert_eq!(event["payload"]["task_id"], "task_1");
    assert!(
        event["payload"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "timestamp added"
    );
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 3);
    receiver.wait_for("/a", 1, Duration::from_secs(10));
}

#[test]
fn idempotency_key_returns_the_first_result() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/"), &["*"]);
    let body = json!({"event": "job.completed", "n": 1}).to_string();
    let key = [("Idempotency-Key", "job-42")];
    let (s1, h1, b1) = app.call_raw(
        "POST",
        "/api/v1/events",
        Some(ADMIN_TOKEN),
        &key,
        Some(&body),
    );
    let (s2, h2, b2) = app.call_raw(
        "POST",
        "/api/v1/events",
        Some(ADMIN_TOKEN),
        &key,
        Some(&body),
    );
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1, b2, "the repeat answers the first result");
    assert!(!h1.contains_key("idempotent-replayed"));
    assert_eq!(
        h2.get("idempotent-replayed").map(String::as_str),
        Some("true")
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 1);
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 1);

    // Another tenant may use the same key for its own event.
    app.admin("POST", "/api/v1/tenants", Some(json!({"id": "acme"})));
    let (s3, _, b3) = app.call_raw(
        "POST",
        "/api/v1/events?tenant=acme",
        Some(ADMIN_TOKEN),
        &key,
        Some(&body),
    );
    assert_eq!(s3, 202);
    assert_ne!(b3, b1);

    // A batch with a key replays as a whole.
    let batch = json!({"events": [{"event": "a.b"}, {"event": "a.c"}]}).to_string();
    let bkey = [("Idempotency-Key", "batch-1")];
    let (_, _, first) = app.call_raw(
        "POST",
        "/api/v1/events/batch",
        Some(ADMIN_TOKEN),
        &bkey,
        Some(&batch),
    );
    let (_, _, again) = app.call_raw(
        "POST",
        "/api/v1/events/batch",
        Some(ADMIN_TOKEN),
        &bkey,
        Some(&batch),
    );
    assert_eq!(first, again);
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 4);
}

#[test]
fn batch_is_all_or_nothing() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/"), &["*"]);
    let (status, body) = app.admin(
        "POST",
        "/api/v1/events/batch",
        Some(json!({"events": [{"event": "a.b"}, {"no_event": 1}]})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1]"),
        "{body}"
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 0);

    let events: Vec<Value> = (0..50)
        .map(|i| json!({"event": "job.completed", "i": i}))
        .collect();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/events/batch",
        Some(json!({ "events": events })),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["events"].as_array().unwrap().len(), 50);
    assert_eq!(body["data"]["deliveries"], 50);
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 50);
}

#[test]
fn tenant_keys_see_only_their_tenant() {
    let app = TestApp::spawn();
    for id in ["acme", "globex"] {
        let (status, body) = app.admin(
            "POST",
            "/api/v1/tenants",
            Some(json!({"id": id, "name": id.to_uppercase()})),
        );
        assert_eq!(status, 201, "{body}");
    }
    let key = |tenant: &str| {
        let (status, body) = app.admin(
            "POST",
            &format!("/api/v1/tenants/{tenant}/keys"),
            Some(json!({})),
        );
        assert_eq!(status, 201, "{body}");
        assert!(body["data"]["token"].as_str().unwrap().starts_with("hk_"));
        (
            body["data"]["id"].as_i64().unwrap(),
            body["data"]["token"].as_str().unwrap().to_string(),
        )
    };
    let (acme_key_id, acme) = key("acme");
    let (_, globex) = key("globex");
    let create = |token: &str, url: &str| {
        let body = json!({"url": url, "events": ["*"]}).to_string();
        let (status, b) = app.call("POST", "/api/v1/webhooks", Some(token), Some(&body));
        assert_eq!(status, 201, "{b}");
        b["data"]["id"].as_i64().unwrap()
    };
    // Port 9 on loopback refuses connections: deliveries fail fast and stay on this machine.
    let acme_hook = create(&acme, "http://127.0.0.1:9/acme");
    let globex_hook = create(&globex, "http://127.0.0.1:9/globex");

    let (_, list) = app.call("GET", "/api/v1/webhooks", Some(&acme), None);
    let urls: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, vec!["http://127.0.0.1:9/acme"]);
    let (status, _) = app.call(
        "GET",
        &format!("/api/v1/webhooks/{globex_hook}"),
        Some(&acme),
        None,
    );
    assert_eq!(
        status, 404,
        "another tenant's webhook does not exist for this key"
    );
    let (status, _) = app.call(
        "DELETE",
        &format!("/api/v1/webhooks/{globex_hook}"),
        Some(&acme),
        None,
    );
    assert_eq!(status, 404);
    let (status, body) = app.call("GET", "/api/v1/webhooks?tenant=globex", Some(&acme), None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = app.call("GET", "/api/v1/tenants", Some(&acme), None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // The admin acts on `default` unless it names a tenant.
    let (_, list) = app.admin("GET", "/api/v1/webhooks", None);
    assert_eq!(list["data"], json!([]));
    let (_, list) = app.admin("GET", "/api/v1/webhooks?tenant=acme", None);
    assert_eq!(list["data"][0]["id"], acme_hook);
    let (_, _, text) = app.call_raw(
        "GET",
        "/api/v1/webhooks",
        Some(ADMIN_TOKEN),
        &[("X-Herald-Tenant", "globex")],
        None,
    );
    assert!(text.contains("/globex"), "{text}");
    let (status, _) = app.admin("GET", "/api/v1/webhooks?tenant=nobody", None);
    assert_eq!(status, 404);

    // Events published with one key are invisible to the other.
    let (status, _) = app.call(
        "POST",
        "/api/v1/events",
        Some(&acme),
        Some(r#"{"event":"x.y"}"#),
    );
    assert_eq!(status, 202);
    let (_, events) = app.call("GET", "/api/v1/events", Some(&globex), None);
    assert_eq!(events["data"], json!([]));

    // Revoked keys stop working; keys are stored only as hashes.
    let (status, body) = app.admin(
        "DELETE",
        &format!("/api/v1/tenants/acme/keys/{acme_key_id}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["revoked_at"].is_string());
    let (status, body) = app.call("GET", "/api/v1/webhooks", Some(&acme), None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) FROM api_keys WHERE key_hash = '{acme}'"
        )),
        0
    );
}

#[test]
fn tenants_and_event_types_crud() {
    let app = TestApp::spawn();
    let (status, _) = app.admin(
        "POST",
        "/api/v1/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    );
    assert_eq!(status, 201);
    let (status, body) = app.admin("POST", "/api/v1/tenants", Some(json!({"id": "acme"})));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, body) = app.admin(
        "PATCH",
        "/api/v1/tenants/acme",
        Some(json!({"name": "Acme Inc"})),
    );
    assert_eq!(
        (status, body["data"]["name"].as_str()),
        (200, Some("Acme Inc"))
    );
    let (_, list) = app.admin("GET", "/api/v1/tenants", None);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["acme", "default"]);
    let (status, _) = app.admin("DELETE", "/api/v1/tenants/default", None);
    assert_eq!(status, 409, "the default tenant always exists");
    let (status, _) = app.admin("DELETE", "/api/v1/tenants/acme", None);
    assert_eq!(status, 200);
    let (status, _) = app.admin("GET", "/api/v1/tenants/acme", None);
    assert_eq!(status, 404);

    let (status, body) = app.admin(
        "POST",
        "/api/v1/event-types",
        Some(json!({"name": "job.completed", "description": "A task finished", "example": {"event": "job.completed", "task_id": "t"}})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["example"]["task_id"], "t");
    let (_, list) = app.admin("GET", "/api/v1/event-types", None);
    assert_eq!(list["data"][0]["name"], "job.completed");
    assert!(list["next_cursor"].is_null());
    let (status, _) = app.admin("DELETE", "/api/v1/event-types/job.completed", None);
    assert_eq!(status, 200);
    let (status, _) = app.admin("DELETE", "/api/v1/event-types/job.completed", None);
    assert_eq!(status, 404);
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

#[test]
fn restart_on_the_same_file_keeps_everything() {
    let mut app = TestApp::spawn_with(&[("HERALD_DURABILITY", "full")]);
    app.admin("POST", "/api/v1/tenants", Some(json!({"id": "acme"})));
    let (_, key) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    let key = key["data"]["token"].as_str().unwrap().to_string();
    let hook = app.create_webhook("http://127.0.0.1:9/hook", &["job.*"]);
    let event = app.publish(json!({"event": "job.completed"}));
    app.kill9();
    app.start();
    let (_, got) = app.admin("GET", &format!("/api/v1/webhooks/{}", hook["id"]), None);
    assert_eq!(got["data"]["url"], "http://127.0.0.1:9/hook");
    let (status, got) = app.admin(
        "GET",
        &format!("/api/v1/events/{}", event["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(got["data"]["deliveries"].as_array().unwrap().len(), 1);
    let (status, _) = app.call("GET", "/api/v1/webhooks", Some(&key), None);
    assert_eq!(status, 200, "tenant keys survive a restart");
}

/// method, path, token, body, expected status, expected error code.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    u16,
    &'a str,
);

/// One row per bad input: method, path, token, body, expected status and error code.
/// After the whole table, nothing in the database has changed.
#[test]
fn bad_inputs_get_a_4xx_envelope_and_change_nothing() {
    let app = TestApp::spawn_with(&[
        ("HERALD_MAX_PAYLOAD", "2KiB"),
        ("HERALD_ALLOW_PRIVATE_TARGETS", "false"),
    ]);
    // Paused and never published to: no traffic leaves this machine.
    let (status, _) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": "https://example.com/hook", "events": ["*"], "status": "paused"})),
    );
    assert_eq!(status, 201);
    let big = format!(r#"{{"event":"a.b","pad":"{}"}}"#, "x".repeat(3000));
    let admin = Some(ADMIN_TOKEN);
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/webhooks", None, None, 401, "unauthorized"),
        (
            "GET",
            "/api/v1/webhooks",
            Some("wrong-token"),
            None,
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some("{not json"),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(""),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": 5, "events": ["a"]}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io", "evnts": ["a"]}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io"}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io", "events": []}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io", "events": ["a b"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "ftp://x.io", "events": ["a"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "not a url", "events": ["a"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "http://127.0.0.1:9/x", "events": ["a"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "http://169.254.169.254/latest", "events": ["a"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "http://10.0.0.8/x", "events": ["a"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "http://[::1]/x", "events": ["a"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "http://localhost/x", "events": ["a"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io", "events": ["a"], "secret_key": ""}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io", "events": ["a"], "status": "sleeping"}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io", "events": ["a"], "signature": ["md5"]}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(r#"{"url": "https://x.io", "events": ["a"], "headers": {"Content-Type": "x"}}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/webhooks",
            admin,
            Some(&big),
            413,
            "payload_too_large",
        ),
        (
            "GET",
            "/api/v1/webhooks/abc",
            admin,
            None,
            400,
            "invalid_id",
        ),
        (
            "GET",
            "/api/v1/webhooks/99999999999999999999",
            admin,
            None,
            400,
            "invalid_id",
        ),
        ("GET", "/api/v1/webhooks/42", admin, None, 404, "not_found"),
        (
            "PATCH",
            "/api/v1/webhooks/1",
            admin,
            Some(r#"{"status": "gone"}"#),
            400,
            "validation_error",
        ),
        (
            "PATCH",
            "/api/v1/webhooks/1",
            admin,
            Some(r#"{"url": "http://127.0.0.1/"}"#),
            400,
            "validation_error",
        ),
        (
            "PATCH",
            "/api/v1/webhooks/1",
            admin,
            Some(r#"{"secret": "x"}"#),
            400,
            "invalid_request",
        ),
        (
            "DELETE",
            "/api/v1/webhooks/-1",
            admin,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/webhooks?limit=0",
            admin,
            None,
            400,
            "invalid_pagination",
        ),
        (
            "GET",
            "/api/v1/webhooks?limit=1000",
            admin,
            None,
            400,
            "invalid_pagination",
        ),
        (
            "GET",
            "/api/v1/webhooks?limit=ten",
            admin,
            None,
            400,
            "invalid_pagination",
        ),
        (
            "GET",
            "/api/v1/webhooks?cursor=zzz",
            admin,
            None,
            400,
            "invalid_pagination",
        ),
        (
            "GET",
            "/api/v1/webhooks?limt=5",
            admin,
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/api/v1/events?since=yesterday",
            admin,
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/api/v1/deliveries?status=lost",
            admin,
            None,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/events",
            admin,
            Some("[1, 2]"),
            400,
            "invalid_payload",
        ),
        (
            "POST",
            "/api/v1/events",
            admin,
            Some(r#"{"data": 1}"#),
            400,
            "invalid_payload",
        ),
        (
            "POST",
            "/api/v1/events",
            admin,
            Some(r#"{"event": 5}"#),
            400,
            "invalid_payload",
        ),
        (
            "POST",
            "/api/v1/events",
            admin,
            Some(r#"{"event": ""}"#),
            400,
            "invalid_payload",
        ),
        (
            "POST",
            "/api/v1/events",
            admin,
            Some(r#"{"event": "a.b""#),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/events",
            admin,
            Some(&big),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/events/batch",
            admin,
            Some(r#"{"events": []}"#),
            400,
            "invalid_batch",
        ),
        (
            "POST",
            "/api/v1/events/batch",
            admin,
            Some(r#"{"events": {}}"#),
            400,
            "invalid_batch",
        ),
        (
            "POST",
            "/api/v1/events/batch",
            admin,
            Some(r#"{"evts": []}"#),
            400,
            "invalid_batch",
        ),
        (
            "GET",
            "/api/v1/events/evt_nope",
            admin,
            None,
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/tenants",
            admin,
            Some(r#"{"id": "Bad Id"}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tenants",
            admin,
            Some(r#"{"id": "default"}"#),
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/tenants/nobody/keys",
            admin,
            Some("{}"),
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/api/v1/tenants/default/keys/abc",
            admin,
            None,
            400,
            "invalid_id",
        ),
        (
            "POST",
            "/api/v1/event-types",
            admin,
            Some(r#"{"name": "a b"}"#),
            400,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/event-types",
            admin,
            Some(r#"{"name": "a.b", "example": [1]}"#),
            400,
            "validation_error",
        ),
        (
            "PUT",
            "/api/v1/webhooks",
            admin,
            None,
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            "/api/v1/event-types?limit=0",
            admin,
            None,
            400,
            "invalid_pagination",
        ),
        ("GET", "/api/v2/nothing", admin, None, 404, "not_found"),
    ];
    let snapshot = |app: &TestApp| {
        [
            "endpoints",
            "events",
            "deliveries",
            "tenants",
            "api_keys",
            "event_types",
        ]
        .map(|t| app.sql_count(&format!("SELECT count(*) FROM {t}")))
    };
    let before = snapshot(&app);
    for (method, path, token, body, status, code) in &cases {
        let (got, json) = app.call(method, path, *token, *body);
        assert_eq!(got, *status, "{method} {path} {body:?} -> {json}");
        assert_eq!(json["success"], false, "{method} {path}: {json}");
        assert_eq!(
            json["error"]["code"], *code,
            "{method} {path} {body:?} -> {json}"
        );
        let message = json["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.len() > 5,
            "{method} {path}: the message says what is wrong: {json}"
        );
    }
    assert_eq!(snapshot(&app), before, "a rejected request changes nothing");
    // Idempotency-Key that is not visible ASCII.
    let (status, _, text) = app.call_raw(
        "POST",
        "/api/v1/events",
        Some(ADMIN_TOKEN),
        &[("Idempotency-Key", "has space")],
        Some(r#"{"event":"a.b"}"#),
    );
    assert_eq!(status, 400, "{text}");
    assert_eq!(snapshot(&app), before);
}

/// Many concurrent publishes share commits: the writer batches them into fewer
/// transactions than requests (durability = full, so each commit is an fsync).
#[test]
fn concurrent_publishes_are_group_committed() {
    let app = TestApp::spawn_with(&[("HERALD_DURABILITY", "full")]);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/"), &["*"]);
    let commits = |app: &TestApp| -> u64 {
        let (_, _, text) = app.call_raw("GET", "/metrics", None, &[], None);
        text.lines()
            .find_map(|l| l.strip_prefix("herald_store_commits_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("commit counter in /metrics")
    };
    let before = commits(&app);
    let threads = 32;
    let per_thread = 20;
    std::thread::scope(|s| {
        for t in 0..threads {
            let app = &app;
            s.spawn(move || {
                for i in 0..per_thread {
                    app.publish(json!({"event": "load.test", "t": t, "i": i}));
                }
            });
        }
    });
    let publishes = (threads * per_thread) as u64;
    // The engine's claims and results also commit; count only what the publishes could need.
    let used = commits(&app) - before;
    assert_eq!(
        app.sql_count("SELECT count(*) FROM events"),
        publishes as i64
    );
    println!("{publishes} concurrent publishes used {used} commits (including engine writes)");
    assert!(
        used < publishes,
        "{publishes} publishes should share commits, but {used} commits were made"
    );
}

#[test]
fn first_start_generates_and_prints_the_admin_token_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("h.db"))
            .env_remove("HERALD_ADMIN_TOKEN")
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut token = None;
        let mut addr = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(t) = line.trim().strip_prefix("hadm_") {
                token = Some(format!("hadm_{t}"));
            }
            if let Some(a) = line.strip_prefix("Herald listening on http://") {
                addr = a.to_string();
                break;
            }
        }
        (child, token, addr)
    };
    let (mut child, token, addr) = start();
    let token = token.expect("the first start prints a token");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let status = |token: &str| {
        agent
            .get(format!("http://{addr}/api/v1/webhooks"))
            .header("authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&token), 200);
    assert_eq!(status("hadm_wrong"), 401);
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, again, addr2) = start();
    assert!(
        again.is_none(),
        "the token is printed only on the first start"
    );
    let agent2: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let code = agent2
        .get(format!("http://{addr2}/api/v1/webhooks"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 200, "the stored hash still accepts the token");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cli_creates_tenants_keys_and_publishes() {
    use std::process::Command;
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let herald = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .arg("--db")
            .arg(app.db_path())
            .env("HERALD_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    herald(&["tenant", "create", "acme", "--name", "Acme Inc"]);
    let key = herald(&["key", "create", "acme"]).trim().to_string();
    let hook = json!({"url": receiver.url("/acme"), "events": ["book.*"]}).to_string();
    let (status, created) = app.call("POST", "/api/v1/webhooks", Some(&key), Some(&hook));
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    assert_eq!(status, 201);
    let out = herald(&[
        "publish",
        "--tenant",
        "acme",
        r#"{"event":"book.completed","data":{"bookId":"b1"}}"#,
    ]);
    let published: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(published["deliveries"], 1);
    // The server notices the CLI's publish on its next poll and delivers it.
    let got = receiver.wait_for("/acme", 1, Duration::from_secs(10));
    assert!(got[0].body.contains(r#""bookId":"b1""#));
    // `herald verify` checks the delivery's signature the way a receiver would.
    let h = |name: &str| got[0].headers[name].clone();
    let verify = |body: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "verify",
                "--scheme",
                "standard",
                "--secret",
                &secret,
                "--id",
                &h("webhook-id"),
            ])
            .args([
                "--timestamp",
                &h("webhook-timestamp"),
                "--signature",
                &h("webhook-signature"),
                body,
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify(&got[0].body), "the real delivery verifies");
    assert!(
        !verify(&got[0].body.replace("b1", "b2")),
        "a changed body does not"
    );
    let backup = app.dir.path().join("backup.db");
    herald(&["backup", backup.to_str().unwrap()]);
    assert!(backup.exists());
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
        "GET /api/v1/webhooks/{id}/deliveries",
        "POST /api/v1/webhooks/{id}/test",
        "POST /api/v1/webhooks/{id}/recover",
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
