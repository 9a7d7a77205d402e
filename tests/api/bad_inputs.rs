// Every bad input gets a 4xx envelope and changes nothing.

use crate::common::{TestApp, ADMIN_TOKEN};
use serde_json::json;

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
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/webhooks", None, None, 401, "unauthorized"),
        ("GET", "/api/v1/webhooks", Some("wrong-token"), None, 401, "unauthorized"),
        ("POST", "/api/v1/webhooks", admin, Some("{not json"), 400, "invalid_json"),
        ("POST", "/api/v1/webhooks", admin, Some(""), 400, "invalid_json"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": 5, "events": ["a"]}"#), 400, "invalid_request"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "evnts": ["a"]}"#), 400, "invalid_request"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io"}"#), 400, "invalid_request"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": []}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a b"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "ftp://x.io", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "not a url", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "http://127.0.0.1:9/x", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "http://169.254.169.254/latest", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "http://10.0.0.8/x", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "http://[::1]/x", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "http://localhost/x", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "secret_key": ""}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "status": "sleeping"}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "signature": ["md5"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "headers": {"Content-Type": "x"}}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "rate_limit": 0}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "rate_limit": -2}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "rate_limit": 1e9}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "rate_limit": "fast"}"#), 400, "invalid_request"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "ordering": "random"}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"type": "carrier-pigeon", "url": "https://x.io", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"type": 5, "url": "https://x.io", "events": ["a"]}"#), 400, "invalid_request"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"type": "push", "events": ["a"]}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"type": "poll", "url": "https://x.io", "events": ["a"]}"#), 400, "validation_error"),
        ("PATCH", "/api/v1/webhooks/1", admin, Some(r#"{"type": "poll"}"#), 400, "invalid_request"),
        ("GET", "/api/v1/webhooks/1/poll", admin, None, 409, "conflict"),
        ("GET", "/api/v1/webhooks/42/poll", admin, None, 404, "not_found"),
        ("GET", "/api/v1/webhooks/1/poll?cursor=abc", admin, None, 400, "invalid_pagination"),
        ("GET", "/api/v1/webhooks/1/poll?limit=0", admin, None, 400, "invalid_pagination"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "retry_schedule": "1m,soon"}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "retry_schedule": "30d"}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(r#"{"url": "https://x.io", "events": ["a"], "request_timeout": "10ms"}"#), 400, "validation_error"),
        ("POST", "/api/v1/webhooks", admin, Some(&big), 413, "payload_too_large"),
        ("GET", "/api/v1/webhooks/abc", admin, None, 400, "invalid_id"),
        ("GET", "/api/v1/webhooks/99999999999999999999", admin, None, 400, "invalid_id"),
        ("GET", "/api/v1/webhooks/42", admin, None, 404, "not_found"),
        ("PATCH", "/api/v1/webhooks/1", admin, Some(r#"{"status": "gone"}"#), 400, "validation_error"),
        ("PATCH", "/api/v1/webhooks/1", admin, Some(r#"{"url": "http://127.0.0.1/"}"#), 400, "validation_error"),
        ("PATCH", "/api/v1/webhooks/1", admin, Some(r#"{"secret": "x"}"#), 400, "invalid_request"),
        ("DELETE", "/api/v1/webhooks/-1", admin, None, 404, "not_found"),
        ("GET", "/api/v1/webhooks?limit=0", admin, None, 400, "invalid_pagination"),
        ("GET", "/api/v1/webhooks?limit=1000", admin, None, 400, "invalid_pagination"),
        ("GET", "/api/v1/webhooks?limit=ten", admin, None, 400, "invalid_pagination"),
        ("GET", "/api/v1/webhooks?cursor=zzz", admin, None, 400, "invalid_pagination"),
        ("GET", "/api/v1/webhooks?limt=5", admin, None, 400, "invalid_request"),
        ("GET", "/api/v1/events?since=yesterday", admin, None, 400, "invalid_request"),
        ("GET", "/api/v1/deliveries?status=lost", admin, None, 400, "invalid_request"),
        ("POST", "/api/v1/events", admin, Some("[1, 2]"), 400, "invalid_payload"),
        ("POST", "/api/v1/events", admin, Some(r#"{"data": 1}"#), 400, "invalid_payload"),
        ("POST", "/api/v1/events", admin, Some(r#"{"event": 5}"#), 400, "invalid_payload"),
        ("POST", "/api/v1/events", admin, Some(r#"{"event": ""}"#), 400, "invalid_payload"),
        ("POST", "/api/v1/events", admin, Some(r#"{"event": "a.b""#), 400, "invalid_json"),
        ("POST", "/api/v1/events", admin, Some(&big), 413, "payload_too_large"),
        ("POST", "/api/v1/events/batch", admin, Some(r#"{"events": []}"#), 400, "invalid_batch"),
        ("POST", "/api/v1/events/batch", admin, Some(r#"{"events": {}}"#), 400, "invalid_batch"),
        ("POST", "/api/v1/events/batch", admin, Some(r#"{"evts": []}"#), 400, "invalid_batch"),
        ("GET", "/api/v1/events/evt_nope", admin, None, 404, "not_found"),
        ("POST", "/api/v1/tenants", admin, Some(r#"{"id": "Bad Id"}"#), 400, "validation_error"),
        ("POST", "/api/v1/tenants", admin, Some(r#"{"id": "default"}"#), 409, "conflict"),
        ("POST", "/api/v1/tenants/nobody/keys", admin, Some("{}"), 404, "not_found"),
        ("DELETE", "/api/v1/tenants/default/keys/abc", admin, None, 400, "invalid_id"),
        ("POST", "/api/v1/event-types", admin, Some(r#"{"name": "a b"}"#), 400, "validation_error"),
        ("POST", "/api/v1/event-types", admin, Some(r#"{"name": "a.b", "example": [1]}"#), 400, "validation_error"),
        ("PUT", "/api/v1/webhooks", admin, None, 405, "method_not_allowed"),
        ("GET", "/api/v1/event-types?limit=0", admin, None, 400, "invalid_pagination"),
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

/// A shape error says what to write: a bare string where a list belongs names the list it
/// should be, and no message carries serde's "at line 1 column N" or "expected a sequence".
#[test]
fn shape_errors_say_what_to_write() {
    let app = TestApp::spawn();
    app.create_webhook("https://example.com/hook", &["*"]);
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("POST", "/api/v1/webhooks", r#"{"url": "https://x.io", "events": "job.completed"}"#, &["`events` must be an array", r#"["job.completed"]"#]),
        ("POST", "/api/v1/webhooks", r#"{"url": "https://x.io", "events": [5]}"#, &["`events` lists event names as strings"]),
        ("PATCH", "/api/v1/webhooks/1", r#"{"events": "job.completed"}"#, &["`events` must be an array"]),
        ("POST", "/api/v1/webhooks", r#"{"url": 5, "events": ["a"]}"#, &["invalid type"]),
    ];
    for (method, path, body, says) in cases {
        let (status, json) = app.call(method, path, Some(ADMIN_TOKEN), Some(body));
        assert_eq!(status, 400, "{method} {path} {body}: {json}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        for s in *says {
            assert!(message.contains(s), "{body}: {s:?} not in {message:?}");
        }
        for not in ["line 1 column", "expected a sequence"] {
            assert!(!message.contains(not), "{body}: {message:?}");
        }
    }
}

/// A `secret_key` shorter than Standard Webhooks' 24 bytes is accepted (seed 000 registers
/// "your-secret-key") but not silently: the answer carries a `warning`; a long one none.
#[test]
fn a_short_secret_key_is_accepted_with_a_warning() {
    let app = TestApp::spawn();
    for (secret, warned) in [
        ("abc", true),
        ("your-secret-key", true),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false),
    ] {
        let (status, json) = app.admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "https://example.com/hook", "events": ["*"], "secret_key": secret})),
        );
        assert_eq!(status, 201, "{json}");
        assert_eq!(json["data"]["secret"], secret);
        let warning = json["data"]["warning"].as_str();
        assert_eq!(warning.is_some(), warned, "{secret}: {json}");
        if let Some(w) = warning {
            assert!(w.contains("secret_key") && w.contains("24"), "{w}");
            assert!(!w.contains(secret), "the warning repeats the secret: {w}");
        }
    }
}
