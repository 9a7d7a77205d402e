//! `herald listen` end to end: a real Herald with a poll endpoint, the real `herald listen`
//! process, and a real receiver on loopback. Each delivery reaches the receiver with the
//! signature headers and the exact body the poll API hands out; one the receiver refuses
//! is not acknowledged and comes again; every accepted one ends `succeeded`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Receiver, Reply, TestApp};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn tenant_key(app: &TestApp, tenant: &str) -> String {
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

#[test]
fn listen_forwards_signed_bodies_byte_for_byte_and_acknowledges_only_after_a_2xx() {
    let app = TestApp::spawn();
    let key = tenant_key(&app, "acme");
    let create = json!({"type": "poll", "events": ["order.*"]}).to_string();
    let (status, created) = app.call("POST", "/api/v1/webhooks", Some(&key), Some(&create));
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    for n in 0..3 {
        let body = format!(r#"{{"event": "order.created",  "n": {n}, "note": "é ✓ \u00e9"}}"#);
        let (status, b) = app.call("POST", "/api/v1/events", Some(&key), Some(&body));
        assert_eq!(status, 202, "{b}");
    }
    // What the poll API hands out (a poll without a cursor acknowledges nothing).
    let (status, page) = app.call(
        "GET",
        &format!("/api/v1/webhooks/{id}/poll"),
        Some(&key),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let items: Vec<Value> = page["data"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{page}");

    // The receiver refuses the second request once.
    let receiver = Receiver::start(|_, n| Reply::status(if n == 1 { 500 } else { 200 }));
    let mut listen = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["listen", "--endpoint", &id.to_string()])
        .args(["--forward", &receiver.url("/webhook")])
        .args(["--server", &app.url("")])
        .args(["--interval-ms", "100"])
        .env("HERALD_API_KEY", &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    let stdout = listen.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });

    let got = receiver.wait_for("/webhook", 4, WAIT);
    let succeeded = format!(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = {id} AND status = 'succeeded'"
    );
    common::wait_for(WAIT, "three acknowledged deliveries", &mut || {
        (app.sql_count(&succeeded) == 3).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = listen.kill();
    let _ = listen.wait();

    // In order, the refused one again right after it; nothing more.
    let got = if got.len() == 4 {
        got
    } else {
        receiver.on_path("/webhook")
    };
    assert_eq!(got.len(), 4, "{got:?}");
    for (request, item) in got.iter().zip([&items[0], &items[1], &items[1], &items[2]]) {
        assert_eq!(request.body, item["body"].as_str().unwrap());
        // Signed at read time: the timestamp and signature are listen's poll's, not ours;
        // every other header is the same, and the signature verifies over the body.
        for (name, value) in item["headers"].as_object().unwrap() {
            if name == "webhook-timestamp" || name == "webhook-signature" {
                continue;
            }
            assert_eq!(
                request
                    .headers
                    .get(&name.to_ascii_lowercase())
                    .map(String::as_str),
                value.as_str(),
                "{name}"
            );
        }
        let h = |n: &str| request.headers[n].as_str();
        assert!(herald::wire::signing::verify_standard(
            &secret,
            h("webhook-id"),
            h("webhook-timestamp").parse().unwrap(),
            request.body.as_bytes(),
            h("webhook-signature"),
        ));
        assert_eq!(h("content-type"), "application/json");
    }
    assert!(got[0].body.contains(r#""n":0"#), "{}", got[0].body);

    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let second = items[1]["delivery_id"].as_i64().unwrap();
    assert!(
        lines[1].starts_with(&format!("delivery {second} order.created "))
            && lines[1].contains("500 (not acknowledged"),
        "{lines:?}"
    );
    assert!(lines[2].contains("200 (acknowledged)"), "{lines:?}");
}

#[test]
fn listen_stops_with_a_hint_on_a_wrong_key_or_a_push_endpoint() {
    let app = TestApp::spawn();
    let hook = app.create_webhook("http://127.0.0.1:9/hook", &["*"]);
    let run = |key: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["listen", "--endpoint", &hook["id"].to_string()])
            .args(["--forward", "http://127.0.0.1:9/", "--server", &app.url("")])
            .env("HERALD_API_KEY", key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run("wrong").contains("401"), "{}", run("wrong"));
    let pushed = run(common::ADMIN_TOKEN);
    assert!(
        pushed.contains("409") && pushed.contains("poll"),
        "{pushed}"
    );
}
