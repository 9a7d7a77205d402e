//! The JSON API of issue 3, driven over HTTP against the real binary.

mod common;

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
    let list = body["data"].as_array().expect("data is an array, as in the seed");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["url"], "https://your-server.com/webhook");
    assert_eq!(list[0]["events"], json!(["job.completed", "job.failed"]));
    assert_eq!(list[0]["status"], "active");
    assert!(list[0].get("secret").is_none(), "the secret is shown only on create");

    let (status, body) = app.admin("DELETE", "/api/v1/webhooks/1", None);
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "success": true, "data": { "id": 1 } }));
    let (status, body) = app.admin("GET", "/api/v1/webhooks/1", None);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[test]
fn publish_fans_out_in_the_same_transaction() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/a"), &["job.completed"]);
    app.create_webhook(&receiver.url("/b"), &["job.*"]);
    app.create_webhook(&receiver.url("/c"), &["book.completed"]);
    let data = app.publish(json!({ "event": "job.completed", "task_id": "task_1" }));
    assert_eq!(data["deliveries"], 2);
    let id = data["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("evt_"));
    receiver.wait_for("/a", 1, Duration::from_secs(10));
    receiver.wait_for("/b", 1, Duration::from_secs(10));
    let (_, body) = app.admin("GET", &format!("/api/v1/events/{id}"), None);
    assert_eq!(body["data"]["deliveries"].as_array().unwrap().len(), 2);
    let _ = ADMIN_TOKEN;
    let _: Value = body;
}
