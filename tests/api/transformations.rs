// Issue 21, item 3: an endpoint's transformation (JavaScript, Svix's `handler(webhook)`
// shape) reshapes each delivery before it is signed, in a sandbox with a CPU budget and a
// memory cap, and a "try it" route runs it on a sample. Real server, real receiver.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{wait_for, Receiver, TestApp};

const WAIT: Duration = Duration::from_secs(20);

fn create_with(app: &TestApp, url: &str, transformation: &str) -> Value {
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": url, "events": ["*"], "transformation": transformation})),
    );
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

/// The endpoint's only delivery once it is no longer pending, and its last attempt.
fn settled(app: &TestApp, endpoint: i64) -> (Value, Value) {
    let delivery = wait_for(WAIT, "the delivery to settle", &mut || {
        let (_, page) = app.admin(
            "GET",
            &format!("/api/v1/webhooks/{endpoint}/deliveries"),
            None,
        );
        let d = page["data"][0].clone();
        (d.is_object() && d["status"] != "pending").then_some(d)
    });
    let (status, full) = app.admin(
        "GET",
        &format!("/api/v1/deliveries/{}", delivery["id"]),
        None,
    );
    assert_eq!(status, 200, "{full}");
    let last = full["data"]["attempt_log"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    (delivery, last.unwrap_or_default())
}

#[test]
fn a_transformation_reshapes_what_is_sent_and_the_signature_covers_it() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let source = r#"
        function handler(webhook) {
          webhook.payload = {
            text: `${webhook.eventType}: order ${webhook.payload.data.id} for ${webhook.payload.data.amount}`,
          };
          webhook.url = webhook.url.replace("/hook", "/slack");
          webhook.method = "PUT";
          webhook.headers["X-Shaped-By"] = "herald";
          return webhook;
        }"#;
    let hook = create_with(&app, &receiver.url("/hook"), source);
    assert_eq!(hook["transformation"], source, "GET shows the source");
    app.publish(json!({"event": "order.paid", "data": {"id": 7, "amount": 1200}}));
    let got = receiver.wait_for("/slack", 1, WAIT);
    let r = &got[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.body, r#"{"text":"order.paid: order 7 for 1200"}"#);
    assert_eq!(r.headers["x-shaped-by"], "herald");
    assert!(
        herald::wire::signing::verify_standard(
            hook["secret"].as_str().unwrap(),
            &r.headers["webhook-id"],
            r.headers["webhook-timestamp"].parse().unwrap(),
            r.body.as_bytes(),
            &r.headers["webhook-signature"],
        ),
        "the signature is not over the transformed body"
    );
    assert!(receiver.on_path("/hook").is_empty());
    let (delivery, _) = settled(&app, hook["id"].as_i64().unwrap());
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
}

#[test]
fn a_cancel_sends_nothing_and_the_delivery_says_so() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let hook = create_with(
        &app,
        &receiver.url("/hook"),
        "function handler(w) { if (w.payload.internal) { w.cancel = true; } return w; }",
    );
    let id = hook["id"].as_i64().unwrap();
    app.publish(json!({"event": "a.b", "internal": true}));
    let (delivery, attempt) = settled(&app, id);
    assert_eq!(delivery["status"], "cancelled", "{delivery}");
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("cancelled by the endpoint's transformation"),
        "{attempt}"
    );
    // The endpoint's health is untouched: nothing was learnt about the receiver.
    let (_, endpoint) = app.admin("GET", &format!("/api/v1/webhooks/{id}"), None);
    assert_eq!(
        endpoint["data"]["circuit"]["consecutive_failures"], 0,
        "{endpoint}"
    );
    app.publish(json!({"event": "a.b", "internal": false}));
    receiver.wait_for("/hook", 1, WAIT);
    assert_eq!(receiver.received().len(), 1);
}

/// An endless loop and a memory bomb are cut off within the budget, each failing its one
/// delivery with the reason and no retries, while another endpoint keeps receiving.
#[test]
fn runaway_transformations_are_stopped_and_others_keep_delivering() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let looping = create_with(
        &app,
        &receiver.url("/loop"),
        "function handler(w) { for (;;) {} }",
    );
    let bomb = create_with(
        &app,
        &receiver.url("/bomb"),
        "function handler(w) { const a = []; for (;;) { a.push(new Array(1 << 16).fill(a.length)); } }",
    );
    let thrower = create_with(
        &app,
        &receiver.url("/throw"),
        "function handler(w) { throw new TypeError('no amount in ' + w.eventType); }",
    );
    app.create_webhook(&receiver.url("/healthy"), &["*"]);
    let started = Instant::now();
    for n in 0..10 {
        app.publish(json!({"event": "a.b", "n": n}));
    }
    let got = receiver.wait_for("/healthy", 10, WAIT);
    let slowest = got.iter().map(|r| r.at - started).max().unwrap();
    for (hook, expected) in [
        (&looping, "budget"),
        (&bomb, "out of memory"),
        (&thrower, "TypeError: no amount in a.b"),
    ] {
        let id = hook["id"].as_i64().unwrap();
        let (_, page) = wait_for(WAIT, "every delivery to fail", &mut || {
            let (s, page) = app.admin(
                "GET",
                &format!("/api/v1/webhooks/{id}/deliveries?limit=100"),
                None,
            );
            let items = page["data"].as_array().cloned().unwrap_or_default();
            (items.len() == 10 && items.iter().all(|d| d["status"] == "failed"))
                .then_some((s, page))
        });
        for d in page["data"].as_array().unwrap() {
            assert_eq!(d["attempts"], 1, "retried: {d}");
            assert!(d["last_error"].as_str().unwrap().contains(expected), "{d}");
        }
    }
    assert!(receiver.on_path("/loop").is_empty() && receiver.on_path("/bomb").is_empty());
    // Not a speed assertion: the healthy endpoint's deliveries all arrived (the figure is
    // in the message for whoever reads a failure).
    assert_eq!(got.len(), 10, "healthy deliveries took up to {slowest:?}");
}

/// The transformed URL is held to the endpoint URL rules and the SSRF guard: a Herald that
/// does not deliver to private addresses does not reach one through a transformation.
#[test]
fn a_transformed_url_passes_the_ssrf_guard() {
    let app = TestApp::spawn_with(&[("HERALD_ALLOW_PRIVATE_TARGETS", "false")]);
    let receiver = Receiver::ok();
    let targets = [
        receiver.url("/inside"),
        receiver.url("/inside").replace("127.0.0.1", "localhost"),
    ];
    let hooks: Vec<Value> = targets
        .iter()
        .enumerate()
        .map(|(n, target)| {
            let source = format!(
                "function handler(w) {{ w.url = {}; return w; }}",
                json!(target)
            );
            create_with(&app, &format!("https://hooks-{n}.example.com/in"), &source)
        })
        .collect();
    app.publish(json!({"event": "a.b"}));
    for hook in &hooks {
        let (delivery, attempt) = settled(&app, hook["id"].as_i64().unwrap());
        assert_eq!(delivery["status"], "failed", "{delivery}");
        let error = attempt["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            error.contains("the transformation's URL is refused"),
            "{error}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "a loopback receiver was reached"
    );
}

#[test]
fn bad_transformations_are_refused_when_saved() {
    let app = TestApp::spawn();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": "https://a.example/h", "events": ["*"],
                    "transformation": "function handler(w) {\n  return w\n"})),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("transformation: "), "{message}");
    assert!(
        message.contains("line") || message.contains(":2") || message.contains(":3"),
        "{message}"
    );
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": "https://a.example/h", "events": ["*"],
                    "transformation": "function transform(w) { return w; }"})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("handler"),
        "{body}"
    );
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"type": "poll", "events": ["*"],
                    "transformation": "function handler(w) { return w; }"})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        app.sql_count("SELECT count(*) FROM endpoints"),
        0,
        "a refused create wrote"
    );

    // PATCH sets, keeps and removes it.
    let hook = app.create_webhook("https://a.example/h", &["*"]);
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    let (status, body) = app.admin("PATCH", &path, Some(json!({"transformation": "nope("})));
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.admin(
        "PATCH",
        &path,
        Some(json!({"transformation": "function handler(w) { return w; }"})),
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = app.admin("PATCH", &path, Some(json!({"description": "x"})));
    assert_eq!(
        body["data"]["transformation"],
        "function handler(w) { return w; }"
    );
    let (_, body) = app.admin("PATCH", &path, Some(json!({"transformation": null})));
    assert_eq!(body["data"]["transformation"], Value::Null);
}

#[test]
fn the_try_it_route_runs_a_sample_and_sends_nothing() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let hook = create_with(
        &app,
        &receiver.url("/hook"),
        "function handler(w) { w.payload = { doubled: w.payload.n * 2 }; w.headers['X-Try'] = w.eventType; return w; }",
    );
    let path = format!("/api/v1/webhooks/{}/transformation/test", hook["id"]);
    let (status, body) = app.admin(
        "POST",
        &path,
        Some(json!({"payload": {"event": "job.done", "n": 21}})),
    );
    assert_eq!(status, 200, "{body}");
    let trial = &body["data"];
    assert_eq!(trial["outcome"], "send", "{trial}");
    assert_eq!(trial["body"], r#"{"doubled":42}"#);
    assert_eq!(trial["method"], "POST");
    assert_eq!(trial["url"], receiver.url("/hook"));
    assert_eq!(trial["headers"]["X-Try"], "job.done");

    // An unsaved transformation: a cancel, an error, an endless loop.
    for (source, outcome, says) in [
        (
            "function handler(w) { w.cancel = true; return w; }",
            "cancel",
            "",
        ),
        (
            "function handler(w) { return w.nothing.here; }",
            "error",
            "TypeError",
        ),
        ("function handler(w) { while (true) {} }", "error", "budget"),
        ("function handler(w) {", "error", "transformation: "),
    ] {
        let (status, body) = app.admin(
            "POST",
            &path,
            Some(json!({"payload": {"n": 1}, "event": "a.b", "transformation": source})),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["outcome"], outcome, "{source}: {body}");
        assert!(
            body["data"]["error"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{source}: {body}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.received().is_empty(), "a trial sent something");
    let (_, saved) = app.admin("GET", &format!("/api/v1/webhooks/{}", hook["id"]), None);
    assert!(
        saved["data"]["transformation"]
            .as_str()
            .unwrap()
            .contains("doubled"),
        "a trial saved"
    );

    // Without a transformation to run, the route says what to send.
    let plain = app.create_webhook(&receiver.url("/plain"), &["*"]);
    let (status, body) = app.admin(
        "POST",
        &format!("/api/v1/webhooks/{}/transformation/test", plain["id"]),
        Some(json!({"payload": {}})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false);
    let (status, _) = app.admin(
        "POST",
        "/api/v1/webhooks/999999/transformation/test",
        Some(json!({"payload": {}})),
    );
    assert_eq!(status, 404);
}
