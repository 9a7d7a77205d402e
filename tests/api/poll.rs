// Poll endpoints (issue 9, item 5): the consumer pulls its events with its tenant key; the
// cursor acknowledges; nothing is ever sent.

use std::time::Duration;

use crate::common::TestApp;
use serde_json::{json, Value};

fn tenant_with_key(app: &TestApp, tenant: &str) -> String {
    let (status, body) = app.admin(
        "POST",
        "/api/v1/tenants",
        Some(json!({"id": tenant, "name": tenant})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.admin(
        "POST",
        &format!("/api/v1/tenants/{tenant}/keys"),
        Some(json!({})),
    );
    assert_eq!(status, 201, "{body}");
    body["data"]["token"].as_str().unwrap().to_string()
}

/// Checks an item's `standard` signature over its exact `body` with the endpoint's secret.
fn assert_signed(item: &Value, secret: &str) {
    let headers = &item["headers"];
    let id = headers["webhook-id"].as_str().expect("webhook-id");
    assert_eq!(id, item["event_id"].as_str().unwrap());
    let timestamp: i64 = headers["webhook-timestamp"]
        .as_str()
        .expect("webhook-timestamp")
        .parse()
        .unwrap();
    let signature = headers["webhook-signature"]
        .as_str()
        .expect("webhook-signature");
    let body = item["body"].as_str().expect("body");
    assert!(
        herald::wire::signing::verify_standard(secret, id, timestamp, body.as_bytes(), signature),
        "signature does not verify: {item}"
    );
}

#[test]
fn a_poll_endpoint_hands_out_signed_events_in_order_and_the_cursor_acknowledges_them() {
    let app = TestApp::spawn();
    let acme = tenant_with_key(&app, "acme");
    let globex = tenant_with_key(&app, "globex");

    let create = json!({"type": "poll", "events": ["order.*"]}).to_string();
    let (status, created) = app.call("POST", "/api/v1/webhooks", Some(&acme), Some(&create));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["type"], "poll");
    assert!(created["data"]["url"].is_null(), "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    let poll = |token: &str, query: &str| {
        app.call(
            "GET",
            &format!("/api/v1/webhooks/{id}/poll{query}"),
            Some(token),
            None,
        )
    };

    let mut published = Vec::new();
    for i in 0..5 {
        let body = json!({"event": "order.created", "n": i, "note": "é ✓"}).to_string();
        let (status, b) = app.call("POST", "/api/v1/events", Some(&acme), Some(&body));
        assert_eq!(status, 202, "{b}");
        published.push(b["data"]["id"].as_str().unwrap().to_string());
    }
    // The dispatcher leaves them alone: still pending, never attempted.
    std::thread::sleep(Duration::from_millis(1500));
    let pending =
        format!("SELECT count(*) FROM deliveries WHERE endpoint_id = {id} AND status = 'pending'");
    assert_eq!(app.sql_count(&pending), 5);
    assert_eq!(app.sql_count("SELECT count(*) FROM attempts"), 0);

    let (status, first) = poll(&acme, "?limit=3");
    assert_eq!(status, 200, "{first}");
    let items = first["data"].as_array().unwrap();
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        published[..3]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    for (n, item) in items.iter().enumerate() {
        assert_signed(item, &secret);
        assert_eq!(item["event"], "order.created");
        let payload: Value = serde_json::from_str(item["body"].as_str().unwrap()).unwrap();
        assert_eq!(payload["n"], n);
        assert_eq!(payload["note"], "é ✓");
    }
    // Reading without a cursor acknowledges nothing: the same page again.
    let (_, again) = poll(&acme, "?limit=3");
    assert_eq!(again["data"].as_array().unwrap().len(), 3);
    assert_eq!(again["data"][0]["event_id"], published[0].as_str());

    let cursor = first["next_cursor"]
        .as_str()
        .expect("next_cursor")
        .to_string();
    let (status, second) = poll(&acme, &format!("?cursor={cursor}&limit=10"));
    assert_eq!(status, 200, "{second}");
    let ids: Vec<&str> = second["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        published[3..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    for item in second["data"].as_array().unwrap() {
        assert_signed(item, &secret);
    }
    for item in items {
        let delivery = item["delivery_id"].as_i64().unwrap();
        let (status, d) = app.call(
            "GET",
            &format!("/api/v1/deliveries/{delivery}"),
            Some(&acme),
            None,
        );
        assert_eq!(status, 200, "{d}");
        assert_eq!(d["data"]["status"], "succeeded", "{d}");
    }

    // Acknowledging the rest leaves nothing; the cursor stays where it was.
    let last = second["next_cursor"].as_str().unwrap().to_string();
    let (_, empty) = poll(&acme, &format!("?cursor={last}"));
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["next_cursor"], last.as_str());
    assert_eq!(app.sql_count(&pending), 0);
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = {id} AND status = 'succeeded'"
        )),
        5
    );
    // Nothing was ever sent for it.
    assert_eq!(app.sql_count("SELECT count(*) FROM attempts"), 0);

    // Another tenant's key does not see it.
    let (status, other) = poll(&globex, "");
    assert_eq!(status, 404, "{other}");
    // The admin token reads it through ?tenant=.
    let (status, admin) = app.admin(
        "GET",
        &format!("/api/v1/webhooks/{id}/poll?tenant=acme"),
        None,
    );
    assert_eq!(status, 200, "{admin}");
    let (_, shown) = app.call("GET", &format!("/api/v1/webhooks/{id}"), Some(&acme), None);
    assert_eq!(shown["data"]["type"], "poll");
}

#[test]
fn a_push_endpoint_cannot_be_polled_and_shows_its_type() {
    let app = TestApp::spawn();
    let (status, created) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "status": "paused"})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["type"], "push");
    let id = created["data"]["id"].as_i64().unwrap();
    let (status, body) = app.admin("GET", &format!("/api/v1/webhooks/{id}/poll"), None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("poll endpoints"),
        "{body}"
    );
    // A poll endpoint takes no URL, now or later.
    let (status, poll) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"type": "poll", "events": ["*"]})),
    );
    assert_eq!(status, 201, "{poll}");
    let poll_id = poll["data"]["id"].as_i64().unwrap();
    let (status, body) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{poll_id}"),
        Some(json!({"url": "https://example.com/x"})),
    );
    assert_eq!(status, 400, "{body}");
}

/// A poll endpoint of tenant `acme` with an extra header; returns (token, endpoint id).
fn poll_endpoint(app: &TestApp, headers: Value) -> (String, i64) {
    let acme = tenant_with_key(app, "acme");
    let create = json!({"type": "poll", "events": ["*"], "headers": headers}).to_string();
    let (status, created) = app.call("POST", "/api/v1/webhooks", Some(&acme), Some(&create));
    assert_eq!(status, 201, "{created}");
    (acme, created["data"]["id"].as_i64().unwrap())
}

fn publish_as(app: &TestApp, token: &str, n: usize) {
    let body = json!({"event": "order.created", "n": n}).to_string();
    let (status, b) = app.call("POST", "/api/v1/events", Some(token), Some(&body));
    assert_eq!(status, 202, "{b}");
}

fn delivery_ids(page: &Value) -> Vec<i64> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["delivery_id"].as_i64().unwrap())
        .collect()
}

/// Security review (issue 23, item 8): poll items carried the endpoint's extra header
/// values in clear, while the API and the pages mask them.
#[test]
fn poll_items_carry_no_extra_headers() {
    let app = TestApp::spawn();
    let (acme, id) = poll_endpoint(&app, json!({"Authorization": "Bearer receiver-secret"}));
    publish_as(&app, &acme, 0);
    let path = format!("/api/v1/webhooks/{id}/poll");
    let (status, _, text) = app.call_raw("GET", &path, Some(&acme), &[], None);
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("receiver-secret"), "{text}");
    let page: Value = serde_json::from_str(&text).unwrap();
    let headers = page["data"][0]["headers"].as_object().expect("headers");
    assert!(headers.contains_key("webhook-signature"), "{page}");
    assert!(
        !headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("authorization")),
        "{page}"
    );
}

/// Security review (issue 23, item 9): `HEAD /poll?cursor=` acknowledged like a GET, and a
/// manual retry of a delivery the cursor had already passed was marked succeeded by the
/// next poll without ever being handed out again.
#[test]
fn head_never_acknowledges_and_retried_deliveries_come_back() {
    let app = TestApp::spawn();
    let (acme, id) = poll_endpoint(&app, json!({}));
    for n in 0..3 {
        publish_as(&app, &acme, n);
    }
    let poll = |query: &str| {
        let (status, page) = app.call(
            "GET",
            &format!("/api/v1/webhooks/{id}/poll{query}"),
            Some(&acme),
            None,
        );
        assert_eq!(status, 200, "{page}");
        page
    };
    let first = poll("");
    let ids = delivery_ids(&first);
    assert_eq!(ids.len(), 3, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    // HEAD with the cursor: answered, nothing acknowledged.
    let (status, _, _) = app.call_raw(
        "HEAD",
        &format!("/api/v1/webhooks/{id}/poll?cursor={cursor}"),
        Some(&acme),
        &[],
        None,
    );
    assert_eq!(status, 200);
    let pending =
        format!("SELECT count(*) FROM deliveries WHERE endpoint_id = {id} AND status = 'pending'");
    assert_eq!(app.sql_count(&pending), 3, "HEAD acknowledged deliveries");
    assert_eq!(
        delivery_ids(&poll("")),
        ids,
        "HEAD changed what GET answers"
    );

    // GET with the cursor acknowledges all three.
    assert_eq!(
        delivery_ids(&poll(&format!("?cursor={cursor}"))),
        Vec::<i64>::new()
    );
    assert_eq!(app.sql_count(&pending), 0);

    // A manual retry of the first: the consumer gets it again, even with the old cursor.
    let (status, retried) = app.call(
        "POST",
        &format!("/api/v1/deliveries/{}/retry", ids[0]),
        Some(&acme),
        None,
    );
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["data"]["status"], "pending");
    let again = poll(&format!("?cursor={cursor}"));
    assert_eq!(delivery_ids(&again), vec![ids[0]], "{again}");
    assert_eq!(
        app.sql_count(&pending),
        1,
        "the retried delivery was acknowledged before it was handed out"
    );
    // Acknowledged once handed out: the cursor of that page passes it.
    let next = again["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        delivery_ids(&poll(&format!("?cursor={next}"))),
        Vec::<i64>::new()
    );
    assert_eq!(app.sql_count(&pending), 0);
    let (_, d) = app.call(
        "GET",
        &format!("/api/v1/deliveries/{}", ids[0]),
        Some(&acme),
        None,
    );
    assert_eq!(d["data"]["status"], "succeeded", "{d}");
}
