//! The delivery engine of issue 4, proved against the real binary and a real loopback
//! receiver: what is sent (bodies, signatures checked by the seeds' own JavaScript and by
//! the official Standard Webhooks library, rotation) and when it is sent (retries,
//! Retry-After, 410, auto-disable, pause, test events, manual retry and recover, timeouts
//! and redirects). What survives trouble is in `delivery_resilience.rs`. Timing checks use
//! generous bounds: CI is a busy 2-core machine.

#[path = "delivery/auth.rs"]
mod auth;
mod common;
#[path = "delivery/reach.rs"]
mod reach;
#[path = "delivery/routing.rs"]
mod routing;
#[path = "delivery/traces.rs"]
mod traces;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::delivery::{
    attempt_codes, delivery, delivery_of_event, gap, header, js_stringify, most_within, node,
    numbers, publish_raw, verify_case, wait_delivery_status, with_id,
};
use common::{Receiver, Reply, TestApp};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// What is sent
// ---------------------------------------------------------------------------------------

/// Payloads that trip serialisers: number spellings, integer-like keys, unicode, escapes.
/// Each has `event` and `timestamp`, so Herald adds nothing and the expected body is
/// exactly node's `JSON.stringify(JSON.parse(text))` of the published text.
fn awkward_corpus() -> Vec<String> {
    let ts = r#""timestamp":"2024-12-23T10:00:00Z""#;
    let mut corpus: Vec<String> = [
        r#"{"event":"t.numbers",TS,"n":[1.0,1e21,1e20,12345678901234567890,-0,-0.0,5e-324,2.5e-324,1E2,1e+2,0.1,0.30000000000000004,1e-7,0.000001,123e-20,9007199254740993,1.7976931348623157e308,1e400,-1e400,18446744073709551615]}"#,
        r#"{"event":"t.keys",TS,"10":"ten","2":"two","a":"a","1":"one","b":{"z":1,"0":0,"01":"x","4294967295":1,"4294967294":2,"-1":3,"1.0":4}}"#,
        r#"{"10":1,"event":"t.order","a":{"y":[{"1":true,"0":false}]},"2":null,TS}"#,
        r#"{"event":"t.unicode",TS,"s":"\u00e9 \u4e2d\u6587 \ud83d\ude00 \ud83d\udc4d\ud83c\udffd \u2028 \u2029 \ufeff \uffff \u200b"}"#,
        "{\"event\":\"t.raw\",TS,\"s\":\"é 中文 😀 👍🏽 \u{2028} \u{2029} \u{7f} \u{80}\",\"é\":\"key\"}",
        r#"{"event":"t.escapes",TS,"s":"q\"b\\s\/\b\f\n\r\t\u0000\u0001\u001f\u001F\u007f","k\n\"":"v"}"#,
        r#"{"event":"t.dup",TS,"a":1,"b":2,"a":3,"5":1,"5":"last"}"#,
        "  {\n\t\"event\" : \"t.spaces\" ,\r\n TS , \"d\" : { \"e\" : [ 1 , { } , [ ] , true , false , null ] }\n}\n",
        r#"{"event":"t.deep",TS,"d":[[[[[[[[[[{"x":[[[[["deep"]]]]]}]]]]]]]]]]}"#,
        r#"{"event":"t.proto",TS,"__proto__":{"x":1},"constructor":2,"toString":3,"$serde_json::private::Number":"1"}"#,
    ]
    .iter()
    .map(|t| t.replace("TS", ts))
    .collect();
    let numbers: Vec<String> = (0..2000)
        .map(|i| format!("{i}.{i}e{}", i % 40 - 20))
        .collect();
    corpus.push(format!(
        r#"{{"event":"t.big",{ts},"blob":"{}","n":[{}]}}"#,
        "x\\n\\u00e9😀".repeat(5000),
        numbers.join(",")
    ));
    corpus
}

#[test]
fn body_is_byte_identical_to_json_stringify_of_json_parse() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/json"), &["t.*"]);
    let corpus = awkward_corpus();
    let ids: Vec<String> = corpus.iter().map(|text| publish_raw(&app, text)).collect();
    let got = receiver.wait_for("/json", corpus.len(), WAIT);
    let expected = js_stringify(&corpus);
    for ((text, id), expected) in corpus.iter().zip(&ids).zip(expected) {
        let expected = expected.unwrap_or_else(|| panic!("node cannot parse {text}"));
        let received = with_id(&got, id);
        assert_eq!(received.len(), 1, "event {id}");
        assert_eq!(received[0].body, expected, "published text: {text}");
        assert_eq!(header(received[0], "content-type"), "application/json");
    }
}

#[test]
fn seeds_javascript_snippets_accept_real_deliveries() {
    let app = TestApp::spawn_with(&[
        ("HERALD_SIGNATURE_SCHEMES", "timestamped,body"),
        ("HERALD_SIGNATURE_PREFIX", "X-Nano"),
    ]);
    let receiver = Receiver::ok();
    // Seed 000's example secret, and a secret Herald generates (whsec_…).
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": receiver.url("/given"), "events": ["job.*", "book.*"], "secret_key": "your-secret-key"})),
    );
    assert_eq!(status, 201, "{body}");
    let generated = app.create_webhook(&receiver.url("/generated"), &["*"]);
    let generated_secret = generated["secret"].as_str().unwrap().to_string();
    assert!(generated_secret.starts_with("whsec_"));
    // The seeds' example payloads, and one whose bytes JSON.stringify would change.
    let payloads = [
        r#"{"event":"job.completed","task_id":"task_xxx","task_type":"image","status":"completed","data":{"url":"https://cdn.example.com/image.png","credits_charged":6},"timestamp":"2024-12-23T10:00:00Z"}"#,
        r#"{"event":"book.completed","timestamp":"2024-01-15T10:30:00Z","data":{"bookId":"clx123...","title":"Mi Libro","status":"completed","downloadUrl":"/api/download/clx123"}}"#,
        r#"{ "event": "book.completed", "data": {"title": "Mi Libro \u00e9 😀 \u2028", "2": 1.0, "1": [1e21, -0]} }"#,
    ];
    for p in payloads {
        publish_raw(&app, p);
    }
    let given = receiver.wait_for("/given", 3, WAIT);
    let generated = receiver.wait_for("/generated", 3, WAIT);
    let mut cases = Vec::new();
    for r in &given {
        assert!(
            r.headers.contains_key("x-nano-timestamp")
                && r.headers.contains_key("x-nano-signature")
        );
        assert!(
            !r.headers.contains_key("webhook-signature"),
            "standard is not configured"
        );
        cases.push(verify_case(r, "your-secret-key", None, "X-Nano"));
    }
    for r in &generated {
        cases.push(verify_case(r, &generated_secret, None, "X-Nano"));
    }
    let results = node("verify.mjs", &Value::Array(cases.clone()));
    let accepted = json!({"standard": null, "seed000": true, "seed001": true});
    for (case, result) in cases.iter().zip(results.as_array().unwrap()) {
        assert_eq!(result, &accepted, "case {case}");
    }
    // The same snippets reject a wrong secret and a changed body: they can say no.
    let job = given
        .iter()
        .find(|r| r.body.contains("task_xxx"))
        .expect("the seed 000 payload");
    let mut tampered = job.clone();
    tampered.body = tampered.body.replace("task_xxx", "task_yyy");
    let negative = vec![
        verify_case(job, "not-the-secret", None, "X-Nano"),
        verify_case(&tampered, "your-secret-key", None, "X-Nano"),
    ];
    let rejected = json!({"standard": null, "seed000": false, "seed001": false});
    for result in node("verify.mjs", &Value::Array(negative))
        .as_array()
        .unwrap()
    {
        assert_eq!(result, &rejected);
    }
}

#[test]
fn standard_webhooks_library_verifies_the_standard_signature() {
    let app = TestApp::spawn(); // `standard` is the default scheme
    let receiver = Receiver::ok();
    let hook = app.create_webhook(&receiver.url("/std"), &["job.completed"]);
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let event = app.publish(json!({"event": "job.completed", "data": {"b": 1, "a": [1.5, "é"]}}));
    let got = receiver.wait_for("/std", 1, WAIT);
    let r = &got[0];
    assert_eq!(header(r, "webhook-id"), event["id"].as_str().unwrap());
    let ts: i64 = header(r, "webhook-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 60, "timestamp {ts} vs now {now}");
    assert!(
        header(r, "user-agent").starts_with("Herald/"),
        "{:?}",
        r.headers
    );
    let other = app.create_webhook(&receiver.url("/unused"), &["never.sent"]);
    let cases = json!([
        verify_case(r, &secret, None, "X-Herald"),
        verify_case(r, other["secret"].as_str().unwrap(), None, "X-Herald"),
    ]);
    let results = node("verify.mjs", &cases);
    assert_eq!(results[0]["standard"], true, "{results}");
    assert_eq!(
        results[1]["standard"], false,
        "a wrong secret must fail: {results}"
    );
}

#[test]
fn rotation_signs_with_both_secrets_during_the_grace_period() {
    let app = TestApp::spawn_with(&[
        ("HERALD_SIGNATURE_SCHEMES", "standard,timestamped,body"),
        ("HERALD_SIGNATURE_PREFIX", "X-Nano"),
        ("HERALD_ROTATION_GRACE", "3s"),
    ]);
    let receiver = Receiver::ok();
    let hook = app.create_webhook(&receiver.url("/rot"), &["*"]);
    let (id, old) = (
        hook["id"].as_i64().unwrap(),
        hook["secret"].as_str().unwrap().to_string(),
    );
    app.publish(json!({"event": "before.rotation"}));
    let before = receiver.wait_for("/rot", 1, WAIT)[0].clone();
    assert_eq!(header(&before, "webhook-signature").split(' ').count(), 1);
    assert!(!before.headers.contains_key("x-nano-signature-previous"));

    let (status, body) = app.admin(
        "POST",
        &format!("/api/v1/webhooks/{id}/rotate-secret"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let new = body["data"]["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    app.publish(json!({"event": "during.grace", "n": [1.0, 1e21]}));
    let during = receiver.wait_for("/rot", 2, WAIT)[1].clone();
    let signatures: Vec<&str> = header(&during, "webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert!(
        signatures.iter().all(|s| s.starts_with("v1,")),
        "{signatures:?}"
    );
    assert!(during.headers.contains_key("x-nano-signature-previous"));
    assert!(during.headers.contains_key("x-webhook-signature-previous"));
    let results = node(
        "verify.mjs",
        &json!([verify_case(&during, &new, Some(&old), "X-Nano")]),
    );
    let all = json!({"standard": true, "seed000": true, "seed001": true,
        "standard_previous": true, "seed000_previous": true, "seed001_previous": true});
    assert_eq!(results[0], all);

    // After the grace period only the new secret signs.
    std::thread::sleep(Duration::from_millis(3200));
    app.publish(json!({"event": "after.grace"}));
    let after = receiver.wait_for("/rot", 3, WAIT)[2].clone();
    assert_eq!(header(&after, "webhook-signature").split(' ').count(), 1);
    assert!(!after.headers.contains_key("x-nano-signature-previous"));
    assert!(!after.headers.contains_key("x-webhook-signature-previous"));
    let results = node(
        "verify.mjs",
        &json!([verify_case(&after, &new, None, "X-Nano")]),
    );
    assert_eq!(
        results[0],
        json!({"standard": true, "seed000": true, "seed001": true})
    );
}

// ---------------------------------------------------------------------------------------
// When it is sent
// ---------------------------------------------------------------------------------------

#[test]
fn retry_schedule_ends_failed_with_every_attempt_recorded() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "100ms,200ms,300ms")]);
    let receiver = Receiver::start(|_, _| Reply::status(500));
    app.create_webhook(&receiver.url("/down"), &["job.failed"]);
    let event = app.publish(json!({"event": "job.failed"}));
    let event_id = event["id"].as_str().unwrap();
    let id = delivery_of_event(&app, event_id)["id"].as_i64().unwrap();
    let d = wait_delivery_status(&app, id, "failed", WAIT);
    assert_eq!(d["attempts"], 4, "{d}");
    assert_eq!(attempt_codes(&d), vec![Some(500); 4], "{d}");
    assert!(
        d["attempt_log"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["error"] == "HTTP 500"),
        "{d}"
    );
    let got = receiver.on_path("/down");
    assert_eq!(got.len(), 4);
    assert_eq!(
        with_id(&got, event_id).len(),
        4,
        "one webhook-id on every attempt"
    );
    for (i, want) in [100u64, 200, 300].into_iter().enumerate() {
        let g = gap(&got[i], &got[i + 1]);
        let want = Duration::from_millis(want);
        assert!(
            g + Duration::from_millis(5) >= want,
            "gap {i}: {g:?} < {want:?}"
        );
        assert!(
            g < want + Duration::from_millis(1500),
            "gap {i}: {g:?} far beyond {want:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        receiver.on_path("/down").len(),
        4,
        "no attempt after `failed`"
    );
}

#[test]
fn flaky_endpoint_succeeds_on_retry() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "100ms,100ms,100ms")]);
    let receiver = Receiver::start(|_, n| Reply::status(if n < 2 { 500 } else { 200 }));
    app.create_webhook(&receiver.url("/flaky"), &["*"]);
    let event = app.publish(json!({"event": "job.completed"}));
    let id = delivery_of_event(&app, event["id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    let d = wait_delivery_status(&app, id, "succeeded", WAIT);
    assert_eq!(d["attempts"], 3, "{d}");
    assert_eq!(attempt_codes(&d), vec![Some(500), Some(500), Some(200)]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.on_path("/flaky").len(), 3);
}

#[test]
fn gone_disables_the_endpoint_and_cancels_its_queue() {
    let app = TestApp::spawn_with(&[
        ("HERALD_RETRY_SCHEDULE", "100ms,100ms"),
        ("HERALD_ENDPOINT_CONCURRENCY", "1"),
    ]);
    let receiver = Receiver::start(|_, _| Reply::status(410).delay(Duration::from_millis(200)));
    let hook = app.create_webhook(&receiver.url("/gone"), &["*"]);
    let hook_id = hook["id"].as_i64().unwrap();
    // Five queued at once: one goes out, the others are waiting behind it when 410 comes.
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"event": "job.completed", "i": i}))
        .collect();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/events/batch",
        Some(json!({ "events": batch })),
    );
    assert_eq!(status, 202, "{body}");
    let (_, body) = app.admin("GET", &format!("/api/v1/webhooks/{hook_id}"), None);
    assert_eq!(body["data"]["status"], "active");
    let first = receiver.wait_for("/gone", 1, WAIT);
    let id = delivery_of_event(&app, header(&first[0], "webhook-id"))["id"]
        .as_i64()
        .unwrap();
    let d = wait_delivery_status(&app, id, "failed", WAIT);
    assert_eq!(d["attempts"], 1, "410 is not retried: {d}");
    let (_, body) = app.admin("GET", &format!("/api/v1/webhooks/{hook_id}"), None);
    assert_eq!(body["data"]["status"], "disabled", "{body}");
    let later = app.publish(json!({"event": "job.completed"}));
    assert_eq!(later["deliveries"], 0, "{later}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        receiver.on_path("/gone").len(),
        1,
        "the endpoint asked never to be called again"
    );
    let (_, list) = app.admin(
        "GET",
        &format!("/api/v1/webhooks/{hook_id}/deliveries"),
        None,
    );
    let statuses: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "cancelled").count(),
        4,
        "{statuses:?}"
    );
}

#[test]
fn retry_after_on_429_and_503_is_honoured() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "100ms")]);
    let receiver = Receiver::start(|path, n| match (path, n) {
        ("/429", 0) => Reply::status(429).header("Retry-After", "2"),
        ("/503", 0) => Reply::status(503).header("Retry-After", "2"),
        ("/429-plain", 0) => Reply::status(429),
        _ => Reply::status(200),
    });
    for path in ["/429", "/503", "/429-plain"] {
        app.create_webhook(&receiver.url(path), &["*"]);
    }
    app.publish(json!({"event": "job.completed"}));
    for path in ["/429", "/503"] {
        let got = receiver.wait_for(path, 2, WAIT);
        let g = gap(&got[0], &got[1]);
        assert!(
            g >= Duration::from_millis(1950),
            "{path}: retried after {g:?}, asked for 2 s"
        );
        assert!(
            g < Duration::from_millis(4500),
            "{path}: retried only after {g:?}"
        );
    }
    // Without the header the schedule's 100 ms applies: the wait above came from Retry-After.
    let got = receiver.wait_for("/429-plain", 2, WAIT);
    assert!(gap(&got[0], &got[1]) < Duration::from_millis(1500));
}

#[test]
fn test_event_arrives_whatever_the_filter() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let hook = app.create_webhook(&receiver.url("/t"), &["job.completed"]);
    let id = hook["id"].as_i64().unwrap();
    let (status, body) = app.admin("POST", &format!("/api/v1/webhooks/{id}/test"), None);
    assert_eq!(status, 202, "{body}");
    let got = receiver.wait_for("/t", 1, WAIT);
    let payload: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(payload["event"], "webhook.test");
    assert_eq!(
        header(&got[0], "webhook-id"),
        body["data"]["event_id"].as_str().unwrap()
    );
}

#[test]
fn manual_retry_and_recover_resend_failed_deliveries() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "100ms")]);
    let healthy = Arc::new(AtomicBool::new(false));
    let up = healthy.clone();
    let receiver = Receiver::start(move |_, _| {
        Reply::status(if up.load(Ordering::SeqCst) { 200 } else { 500 })
    });
    let hook = app.create_webhook(&receiver.url("/r"), &["*"]);
    let events: Vec<String> = (0..2)
        .map(|i| {
            app.publish(json!({"event": "job.completed", "i": i}))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let ids: Vec<i64> = events
        .iter()
        .map(|e| delivery_of_event(&app, e)["id"].as_i64().unwrap())
        .collect();
    for id in &ids {
        assert_eq!(
            wait_delivery_status(&app, *id, "failed", WAIT)["attempts"],
            2
        );
    }
    healthy.store(true, Ordering::SeqCst);

    let (status, body) = app.admin(
        "POST",
        &format!("/api/v1/deliveries/{}/retry", ids[0]),
        None,
    );
    assert_eq!(status, 202, "{body}");
    let d = wait_delivery_status(&app, ids[0], "succeeded", WAIT);
    assert_eq!(attempt_codes(&d), vec![Some(500), Some(500), Some(200)]);
    assert_eq!(
        with_id(&receiver.on_path("/r"), &events[0]).len(),
        3,
        "same webhook-id"
    );
    assert_eq!(
        delivery(&app, ids[1])["status"],
        "failed",
        "retry touched only its delivery"
    );

    let hook_id = hook["id"].as_i64().unwrap();
    let since = json!({"since": "2000-01-01T00:00:00Z"});
    let (status, body) = app.admin(
        "POST",
        &format!("/api/v1/webhooks/{hook_id}/recover"),
        Some(since),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["data"]["recovered"], 1,
        "only the failed delivery: {body}"
    );
    let d = wait_delivery_status(&app, ids[1], "succeeded", WAIT);
    assert_eq!(attempt_codes(&d), vec![Some(500), Some(500), Some(200)]);
    assert_eq!(
        with_id(&receiver.on_path("/r"), &events[1]).len(),
        3,
        "same webhook-id"
    );
}

#[test]
fn an_endpoint_failing_for_disable_after_is_disabled() {
    let app = TestApp::spawn_with(&[
        (
            "HERALD_RETRY_SCHEDULE",
            "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms",
        ),
        ("HERALD_DISABLE_AFTER", "1s"),
    ]);
    let receiver = Receiver::start(|_, _| Reply::status(500));
    let hook = app.create_webhook(&receiver.url("/dead"), &["*"]);
    let hook_id = hook["id"].as_i64().unwrap();
    let event = app.publish(json!({"event": "job.completed"}));
    let body = app.wait_for(WAIT, "the endpoint to be disabled", || {
        let (_, body) = app.admin("GET", &format!("/api/v1/webhooks/{hook_id}"), None);
        (body["data"]["status"] == "disabled").then_some(body)
    });
    assert!(
        body["data"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("disable_after"),
        "{body}"
    );
    let d = delivery_of_event(&app, event["id"].as_str().unwrap());
    assert_eq!(d["status"], "cancelled", "{d}");
    let attempts = d["attempts"].as_i64().unwrap();
    assert!(
        (4..=7).contains(&attempts),
        "disabled after ~1 s of 300 ms retries: {d}"
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        receiver.on_path("/dead").len() as i64,
        attempts,
        "no attempt once disabled"
    );
}

#[test]
fn a_paused_endpoint_keeps_its_deliveries_until_resumed() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let hook = app.create_webhook(&receiver.url("/p"), &["*"]);
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    let (status, body) = app.admin("PATCH", &path, Some(json!({"status": "paused"})));
    assert_eq!(status, 200, "{body}");
    let event = app.publish(json!({"event": "job.completed"}));
    assert_eq!(
        event["deliveries"], 1,
        "a paused endpoint still gets its delivery rows"
    );
    std::thread::sleep(Duration::from_millis(800));
    assert!(receiver.received().is_empty(), "sent while paused");
    let id = delivery_of_event(&app, event["id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    assert_eq!(delivery(&app, id)["status"], "pending");
    let (status, body) = app.admin("PATCH", &path, Some(json!({"status": "active"})));
    assert_eq!(status, 200, "{body}");
    let got = receiver.wait_for("/p", 1, Duration::from_secs(3));
    assert_eq!(header(&got[0], "webhook-id"), event["id"].as_str().unwrap());
    wait_delivery_status(&app, id, "succeeded", WAIT);
}

#[test]
fn timeouts_redirects_and_extra_headers() {
    let app = TestApp::spawn_with(&[
        ("HERALD_REQUEST_TIMEOUT", "1s"),
        ("HERALD_RETRY_SCHEDULE", "100ms"),
    ]);
    let receiver = Receiver::start(|path, _| match path {
        "/slow" => Reply::status(200).delay(Duration::from_secs(3)),
        "/redirect" => Reply::status(302).header("Location", "/target"),
        _ => Reply::status(200),
    });
    app.create_webhook(&receiver.url("/slow"), &["slow.x"]);
    app.create_webhook(&receiver.url("/redirect"), &["redirect.x"]);
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(
            json!({"url": receiver.url("/headers"), "events": ["headers.x"],
            "headers": {"X-Tenant-Ref": "abc-123"}}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let [slow, redirect, headers] = ["slow.x", "redirect.x", "headers.x"].map(|e| {
        app.publish(json!({ "event": e }))["id"]
            .as_str()
            .unwrap()
            .to_string()
    });

    let got = receiver.wait_for("/headers", 1, WAIT);
    assert_eq!(header(&got[0], "x-tenant-ref"), "abc-123");
    assert_eq!(header(&got[0], "webhook-id"), headers);

    let id = delivery_of_event(&app, &redirect)["id"].as_i64().unwrap();
    let d = wait_delivery_status(&app, id, "failed", WAIT);
    assert_eq!(attempt_codes(&d), vec![Some(302), Some(302)], "{d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("redirect"),
        "{d}"
    );
    assert!(
        receiver.on_path("/target").is_empty(),
        "a redirect was followed"
    );

    let id = delivery_of_event(&app, &slow)["id"].as_i64().unwrap();
    let d = wait_delivery_status(&app, id, "failed", WAIT);
    assert_eq!(attempt_codes(&d), vec![None, None], "{d}");
    for attempt in d["attempt_log"].as_array().unwrap() {
        assert!(
            attempt["error"].as_str().unwrap().contains("timed out"),
            "{d}"
        );
        assert!(attempt["duration_ms"].as_i64().unwrap() < 2500, "{d}");
    }
}

/// The real binary, the real clock: an endpoint limited to 10 requests/s gets a burst of 6
/// spaced at least ~100 ms apart, every one delivered; its limit shows in the API and can
/// be returned to the deployment default with `null`.
#[test]
fn a_rate_limited_endpoint_is_never_sent_faster_than_its_limit() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": receiver.url("/limited"), "events": ["*"], "rate_limit": 10})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["rate_limit"], 10.0);
    let path = format!("/api/v1/webhooks/{}", body["data"]["id"]);
    app.publish_numbered("job.done", 0, 6);
    let got = receiver.wait_for("/limited", 6, Duration::from_secs(10));
    let mut at: Vec<_> = got.iter().map(|r| r.at).collect();
    at.sort();
    // Arrivals: the first one also paid for the connection, so judge the whole burst.
    let span = at[5].duration_since(at[0]);
    assert!(
        span >= Duration::from_millis(450),
        "6 requests within {span:?}"
    );
    // Sends, as Herald recorded them (ms): never two closer than 100 ms.
    common::wait_for(WAIT, "six recorded attempts", &mut || {
        let (_, list) = app.admin("GET", &format!("{path}/deliveries?limit=10"), None);
        let done = list["data"]
            .as_array()?
            .iter()
            .filter(|d| d["status"] == "succeeded")
            .count();
        (done == 6).then_some(())
    });
    let (_, list) = app.admin("GET", &format!("{path}/deliveries?limit=10"), None);
    let mut sent: Vec<i64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let (_, one) = app.admin("GET", &format!("/api/v1/deliveries/{}", d["id"]), None);
            let started = one["data"]["attempt_log"][0]["started_at"]
                .as_str()
                .unwrap()
                .to_owned();
            herald::clock::parse(&started).unwrap()
        })
        .collect();
    sent.sort();
    for pair in sent.windows(2) {
        assert!(
            // 100 ms, less one for the whole milliseconds the store keeps.
            pair[1] - pair[0] >= 99,
            "two sends {} ms apart",
            pair[1] - pair[0]
        );
    }
    let (status, body) = app.admin("PATCH", &path, Some(json!({"rate_limit": null})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["rate_limit"], serde_json::Value::Null);
}

/// The real binary: five failures in a row open the circuit; the API and /metrics say so,
/// and later events wait instead of reaching the failing endpoint.
#[test]
fn five_failures_open_the_circuit_and_later_events_wait() {
    let app = TestApp::spawn();
    let receiver = Receiver::start(|_, _| Reply::status(500));
    let hook = app.create_webhook(&receiver.url("/down"), &["*"]);
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    for i in 0..5 {
        app.publish(json!({"event": "job.done", "i": i}));
    }
    let circuit = common::wait_for(WAIT, "the circuit to open", &mut || {
        let (_, body) = app.admin("GET", &path, None);
        (body["data"]["circuit"]["state"] == "open").then(|| body["data"]["circuit"].clone())
    });
    assert_eq!(circuit["consecutive_failures"], 5);
    assert!(circuit["next_probe"].is_string());
    let (status, _, metrics) = app.call_raw("GET", "/metrics", None, &[], None);
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == "herald_endpoints_circuit_open 1"),
        "{metrics}"
    );
    app.publish(json!({"event": "job.done", "i": 5}));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        receiver.received().len(),
        5,
        "nothing more while the circuit is open"
    );
}

/// The real binary: a FIFO endpoint receives 200 events in exact publish order although
/// every 7th request fails once (each failed head is sent again before anything after it).
#[test]
fn a_fifo_endpoint_receives_events_in_publish_order_through_failures() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "50ms,50ms,50ms")]);
    let receiver = Receiver::start(|_, n| {
        if n % 7 == 6 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": receiver.url("/fifo"), "events": ["*"], "ordering": "fifo"})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["ordering"], "fifo");
    app.publish_numbered("job.done", 0, 200);
    let expected_requests = 200 + 200 / 6; // every 7th request fails once and is resent
    let got = receiver.wait_for("/fifo", expected_requests, Duration::from_secs(60));
    let mut seen = numbers(&got);
    seen.dedup(); // a resent head arrives twice in a row, nothing in between
    assert_eq!(seen, (0..200).collect::<Vec<i64>>());
}

/// The real binary: an endpoint's own request timeout cuts a slow answer short, and its
/// settings read back in the deployment's spelling.
#[test]
fn an_endpoints_own_request_timeout_applies() {
    let app = TestApp::spawn();
    let receiver = Receiver::start(|_, _| Reply::status(200).delay(Duration::from_secs(3)));
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": receiver.url("/slow"), "events": ["*"],
                    "request_timeout": "300ms", "retry_schedule": ["1m", "10m"]})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["request_timeout"], "300ms");
    assert_eq!(body["data"]["retry_schedule"], "1m,10m");
    let event = app.publish(json!({"event": "job.done"}));
    let id = delivery_of_event(&app, event["id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    let attempt = common::wait_for(WAIT, "the timed-out attempt", &mut || {
        let d = delivery(&app, id);
        d["attempt_log"].as_array()?.first().cloned()
    });
    let took = attempt["duration_ms"].as_i64().unwrap();
    assert!((250..2500).contains(&took), "the attempt took {took} ms");
    assert!(attempt["status_code"].is_null(), "{attempt}");
}

/// The real binary: an endpoint that answers in 50 ms gets more than the starting 8
/// requests in flight once its limit has adapted; when it starts answering 503 its limit
/// falls again. Both read from what the receiver saw and the API shows, not from timing.
#[test]
fn an_endpoints_in_flight_limit_adapts_to_the_receiver() {
    let app = TestApp::spawn();
    let failing = Arc::new(AtomicBool::new(false));
    let switch = failing.clone();
    let receiver = Receiver::start(move |_, _| {
        if switch.load(Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::status(200).delay(Duration::from_millis(50))
        }
    });
    let hook = app.create_webhook(&receiver.url("/adaptive"), &["*"]);
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    app.publish_numbered("job.done", 0, 600);
    let got = receiver.wait_for("/adaptive", 600, Duration::from_secs(60));
    // Requests take 50 ms each: the most that arrived within 40 ms of one another were in
    // flight together.
    let most_together = most_within(&got, Duration::from_millis(40));
    assert!(
        most_together > 8,
        "at most {most_together} in flight at once"
    );
    let (_, body) = app.admin("GET", &path, None);
    let grown = body["data"]["concurrency"].as_u64().unwrap();
    assert!(grown > 8, "the API shows the limit it grew to: {grown}");

    failing.store(true, Ordering::SeqCst);
    for i in 0..40 {
        app.publish(json!({"event": "job.done", "i": 1000 + i}));
    }
    let fallen = common::wait_for(WAIT, "the limit to fall", &mut || {
        let (_, body) = app.admin("GET", &path, None);
        let now = body["data"]["concurrency"].as_u64()?;
        (now < grown).then_some(now)
    });
    assert!(fallen < grown);
}

/// The real binary: when an endpoint's circuit opens, Herald publishes
/// `herald.endpoint.circuit_opened` through its own delivery path, signed, to the operator
/// webhook and to the tenant's endpoints that subscribe to `herald.*`, not to `*` ones.
#[test]
fn operational_events_reach_the_operator_and_herald_subscribers_signed() {
    let ops = Receiver::ok();
    let app = TestApp::spawn_with(&[("HERALD_OPERATOR_WEBHOOK", &ops.url("/ops"))]);
    let (status, _, list) = app.call_raw(
        "GET",
        "/api/v1/webhooks",
        Some(common::ADMIN_TOKEN),
        &[("x-herald-tenant", "_herald")],
        None,
    );
    assert_eq!(status, 200, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    let operator = &list["data"][0];
    assert_eq!(operator["url"], ops.url("/ops"));
    let (status, _, rotated) = app.call_raw(
        "POST",
        &format!("/api/v1/webhooks/{}/rotate-secret", operator["id"]),
        Some(common::ADMIN_TOKEN),
        &[("x-herald-tenant", "_herald")],
        None,
    );
    assert_eq!(status, 200, "{rotated}");
    let rotated: Value = serde_json::from_str(&rotated).unwrap();
    let secret = rotated["data"]["secret"].as_str().unwrap().to_owned();

    let watcher = Receiver::ok();
    let watch = app.create_webhook(&watcher.url("/watch"), &["herald.*"]);
    app.create_webhook(&watcher.url("/all"), &["*"]);
    let down = Receiver::start(|_, _| Reply::status(500));
    let failing = app.create_webhook(&down.url("/down"), &["job.*"]);
    for i in 0..5 {
        app.publish(json!({"event": "job.done", "i": i}));
    }
    let got = ops.wait_for("/ops", 1, WAIT);
    let event: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(event["event"], "herald.endpoint.circuit_opened");
    assert_eq!(event["data"]["tenant"], "default");
    assert_eq!(event["data"]["endpoint_id"], failing["id"]);
    let results = node(
        "verify.mjs",
        &json!([verify_case(&got[0], &secret, None, "X-Herald")]),
    );
    assert_eq!(results[0]["standard"], true, "{results}");

    let seen = watcher.wait_for("/watch", 1, WAIT);
    let tenant_copy: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(tenant_copy["event"], "herald.endpoint.circuit_opened");
    let results = node(
        "verify.mjs",
        &json!([verify_case(
            &seen[0],
            watch["secret"].as_str().unwrap(),
            None,
            "X-Herald"
        )]),
    );
    assert_eq!(results[0]["standard"], true, "{results}");
    let everything = watcher.wait_for("/all", 5, WAIT);
    assert!(
        everything.iter().all(|r| !r.body.contains("herald.")),
        "`*` does not subscribe to Herald's own events"
    );
}

/// The real binary: a 5 requests/s endpoint receives a burst of 50 events never faster
/// than 5 per second, none lost, across a restart in the middle.
#[test]
fn a_rate_limit_holds_across_a_restart_and_loses_nothing() {
    let mut app = TestApp::spawn();
    let receiver = Receiver::ok();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": receiver.url("/five"), "events": ["*"], "rate_limit": 5})),
    );
    assert_eq!(status, 201, "{body}");
    app.publish_numbered("job.done", 0, 50);
    receiver.wait_for("/five", 15, Duration::from_secs(20));
    assert!(app.terminate().success());
    app.start();
    let got = receiver.wait_for("/five", 50, Duration::from_secs(30));
    let mut ids = numbers(&got);
    ids.sort();
    ids.dedup();
    assert_eq!(ids, (0..50).collect::<Vec<i64>>(), "every event arrived");
    // Sends are 200 ms apart; arrivals may jitter by a few ms, so look at 950 ms.
    let within = most_within(&got, Duration::from_millis(950));
    assert!(within <= 5, "{within} requests within 950 ms");
}

/// The real binary: while one endpoint is rate-limited with a backlog, one is FIFO-blocked
/// behind a failing head and one has its circuit open, a healthy endpoint's deliveries
/// still go out at once (each well within a second of its publish: no starvation, no poll).
#[test]
fn a_healthy_endpoint_keeps_its_latency_beside_held_back_ones() {
    let app = TestApp::spawn();
    let ok = Receiver::ok();
    let failing = Receiver::start(|_, _| Reply::status(500));
    let create = |body: Value| {
        let (status, created) = app.admin("POST", "/api/v1/webhooks", Some(body));
        assert_eq!(status, 201, "{created}");
    };
    create(json!({"url": ok.url("/slow"), "events": ["slow.*"], "rate_limit": 1}));
    create(json!({"url": failing.url("/fifo"), "events": ["fifo.*"], "ordering": "fifo"}));
    create(json!({"url": failing.url("/open"), "events": ["open.*"]}));
    create(json!({"url": ok.url("/healthy"), "events": ["healthy.*"]}));
    app.publish_numbered("slow.job", 0, 100);
    app.publish_numbered("fifo.job", 0, 20);
    app.publish_numbered("open.job", 0, 10);
    failing.wait_for("/open", 5, WAIT); // its circuit is open now
    for i in 0..20 {
        let sent = std::time::Instant::now();
        app.publish(json!({"event": "healthy.job", "i": i}));
        let got = ok.wait_for("/healthy", i + 1, Duration::from_secs(5));
        let arrived = got.iter().map(|r| r.at).max().unwrap();
        let took = arrived.saturating_duration_since(sent);
        assert!(
            took < Duration::from_millis(1000),
            "event {i} took {took:?}"
        );
    }
    assert_eq!(
        failing.wait_for("/fifo", 1, WAIT).len(),
        1,
        "FIFO: only its head went"
    );
}

/// A poll endpoint's items carry the headers a push would: the official Standard Webhooks
/// library and both seeds' snippets accept them over the item's `body`, and reject a
/// changed body.
#[test]
fn polled_items_verify_like_pushed_requests() {
    let app = TestApp::spawn();
    let (status, created) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"type": "poll", "events": ["*"], "signature": ["standard", "timestamped", "body"]})),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    publish_raw(
        &app,
        r#"{"event":"job.completed","task_id":"task_1","price":1.50,"note":"é"}"#,
    );
    publish_raw(&app, r#"{"event":"job.completed","task_id":"task_2"}"#);
    let (status, polled) = app.admin("GET", &format!("/api/v1/webhooks/{id}/poll"), None);
    assert_eq!(status, 200, "{polled}");
    let items = polled["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let case = |item: &Value, body: &str| {
        let headers: serde_json::Map<String, Value> = item["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        json!({"body": body, "headers": headers, "secret": secret, "previous": null, "prefix": "X-Herald"})
    };
    let cases: Vec<Value> = items
        .iter()
        .map(|i| case(i, i["body"].as_str().unwrap()))
        .collect();
    let accepted = json!({"standard": true, "seed000": true, "seed001": true});
    for result in node("verify.mjs", &Value::Array(cases)).as_array().unwrap() {
        assert_eq!(result, &accepted);
    }
    let tampered = items[1]["body"]
        .as_str()
        .unwrap()
        .replace("task_2", "task_3");
    let rejected = json!({"standard": false, "seed000": false, "seed001": false});
    let result = node("verify.mjs", &json!([case(&items[1], &tampered)]));
    assert_eq!(result[0], rejected);
}

/// The real binary: the operator hears about a circuit that opens, the endpoint's
/// recovery (its probe succeeds), and an endpoint disabled by 410 Gone, each signed.
#[test]
fn the_operator_hears_of_open_recovered_and_disabled_endpoints() {
    let ops = Receiver::ok();
    let app = TestApp::spawn_with(&[
        ("HERALD_OPERATOR_WEBHOOK", &ops.url("/ops")),
        ("HERALD_CIRCUIT_BACKOFF", "300ms"),
    ]);
    let operator_secret = {
        let (_, _, list) = app.call_raw(
            "GET",
            "/api/v1/webhooks",
            Some(common::ADMIN_TOKEN),
            &[("x-herald-tenant", "_herald")],
            None,
        );
        let id = serde_json::from_str::<Value>(&list).unwrap()["data"][0]["id"].clone();
        let (_, _, rotated) = app.call_raw(
            "POST",
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(common::ADMIN_TOKEN),
            &[("x-herald-tenant", "_herald")],
            None,
        );
        serde_json::from_str::<Value>(&rotated).unwrap()["data"]["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let healthy = Arc::new(AtomicBool::new(false));
    let switch = healthy.clone();
    let flaky = Receiver::start(move |_, _| {
        Reply::status(if switch.load(Ordering::SeqCst) {
            200
        } else {
            500
        })
    });
    app.create_webhook(&flaky.url("/flaky"), &["job.*"]);
    app.publish_numbered("job.done", 0, 5);
    ops.wait_for("/ops", 1, WAIT); // circuit_opened
    healthy.store(true, Ordering::SeqCst);
    ops.wait_for("/ops", 2, WAIT); // the probe after 300 ms succeeds: recovered
    let gone = Receiver::start(|_, _| Reply::status(410));
    app.create_webhook(&gone.url("/gone"), &["bye.*"]);
    app.publish(json!({"event": "bye.now"}));
    // 410 disables the endpoint, and its one delivery has failed for good.
    let got = ops.wait_for("/ops", 4, WAIT);
    let mut kinds: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    kinds[2..].sort();
    assert_eq!(
        kinds,
        [
            "herald.endpoint.circuit_opened",
            "herald.endpoint.recovered",
            "herald.delivery.failed",
            "herald.endpoint.disabled",
        ]
    );
    let cases: Vec<Value> = got
        .iter()
        .map(|r| verify_case(r, &operator_secret, None, "X-Herald"))
        .collect();
    let results = node("verify.mjs", &json!(cases));
    for r in results.as_array().unwrap() {
        assert_eq!(r["standard"], true, "{results}");
    }
}

/// A keep-alive HTTP/1.1 receiver on a plain socket that counts the connections it
/// accepts and the requests it answers (200, a short body), so a test can see whether
/// Herald opens a connection per delivery or reuses its pool's.
struct CountingReceiver {
    addr: std::net::SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingReceiver {
    fn start() -> CountingReceiver {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::AtomicUsize;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        // The request line, then headers up to the blank line.
                        let mut first = true;
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            if line == "\r\n" && !first {
                                break;
                            }
                            first = false;
                            if let Some((k, v)) = line.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    length = v.trim().parse().unwrap_or(0);
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if out.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CountingReceiver {
            addr,
            connections,
            requests,
        }
    }
}

/// Deliveries reuse connections (issue 22, item 3): many deliveries to an endpoint travel
/// over no more connections than it may have requests in flight, each endpoint its own.
#[test]
fn connections_are_reused_per_endpoint() {
    const IN_FLIGHT: usize = 4;
    const EVENTS: usize = 300;
    let app = TestApp::spawn_with(&[
        ("HERALD_ENDPOINT_CONCURRENCY", "4"),
        ("HERALD_MAX_ENDPOINT_CONCURRENCY", "4"),
    ]);
    let receivers = [CountingReceiver::start(), CountingReceiver::start()];
    for (i, r) in receivers.iter().enumerate() {
        app.create_webhook(&format!("http://{}/e{i}", r.addr), &["reuse.*"]);
    }
    app.publish_numbered("reuse.tick", 0, EVENTS as i64);
    for r in &receivers {
        common::wait_for(WAIT, "every delivery to arrive", &mut || {
            (r.requests.load(Ordering::SeqCst) >= EVENTS).then_some(())
        });
        let connections = r.connections.load(Ordering::SeqCst);
        assert!(
            (1..=IN_FLIGHT).contains(&connections),
            "{EVENTS} deliveries over {connections} connections (at most {IN_FLIGHT} in flight)"
        );
    }
}
