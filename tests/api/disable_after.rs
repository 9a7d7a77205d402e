//! An endpoint's own `disable_after` through the API: set on create, shown by GET,
//! changed and cleared by PATCH, and refused with a sentence when it is not a duration
//! in range.

use crate::common::TestApp;
use serde_json::{json, Value};

/// method, path (`{id}` is the endpoint's), body, expected status, expected
/// `disable_after` in the answer (or the start of the error message).
type Case<'a> = (&'a str, &'a str, Option<Value>, u16, Value);

#[test]
fn disable_after_is_set_shown_changed_and_cleared() {
    let app = TestApp::spawn();
    let (status, created) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": "https://example.com/hook", "events": ["*"], "status": "paused", "disable_after": "12h"})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["disable_after"], "12h");
    let id = created["data"]["id"].as_i64().expect("id");
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/webhooks/{id}", None, 200, json!("12h")),
        ("PATCH", "/api/v1/webhooks/{id}", Some(json!({"description": "other"})), 200, json!("12h")),
        ("PATCH", "/api/v1/webhooks/{id}", Some(json!({"disable_after": "90m"})), 200, json!("90m")),
        ("GET", "/api/v1/webhooks/{id}", None, 200, json!("90m")),
        ("PATCH", "/api/v1/webhooks/{id}", Some(json!({"disable_after": "30s"})), 400, json!("disable_after: must be from 1m to 365d")),
        ("PATCH", "/api/v1/webhooks/{id}", Some(json!({"disable_after": "soon"})), 400, json!("disable_after:")),
        ("GET", "/api/v1/webhooks/{id}", None, 200, json!("90m")),
        ("PATCH", "/api/v1/webhooks/{id}", Some(json!({"disable_after": null})), 200, Value::Null),
        ("GET", "/api/v1/webhooks/{id}", None, 200, Value::Null),
        ("POST", "/api/v1/webhooks", Some(json!({"url": "https://example.com/b", "events": ["*"], "status": "paused", "disable_after": "366d"})), 400, json!("disable_after: must be from 1m to 365d")),
    ];
    for (method, path, body, want_status, want) in cases {
        let path = path.replace("{id}", &id.to_string());
        let (status, answer) = app.admin(method, &path, body.clone());
        let case = format!("{method} {path} {body:?}: {answer}");
        assert_eq!(status, want_status, "{case}");
        if status == 200 {
            assert_eq!(answer["data"]["disable_after"], want, "{case}");
        } else {
            assert_eq!(answer["success"], false, "{case}");
            assert_eq!(answer["error"]["code"], "validation_error", "{case}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with(want.as_str().unwrap_or("?")), "{case}");
        }
    }
}
