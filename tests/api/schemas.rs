//! Event-type schemas, enforced at publish (issue 21, item 4): a payload that fails its
//! type's JSON Schema is refused with 400 naming the path and keyword, and nothing of the
//! call is stored; a schema that is itself invalid is refused when saved.

use serde_json::json;

use crate::common::TestApp;

fn event_count(app: &TestApp) -> usize {
    let (status, body) = app.admin("GET", "/api/v1/events?limit=100", None);
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().len()
}

fn job_completed_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["task_id"],
        "properties": {
            "task_id": {"type": "string", "minLength": 1},
            "result": {"type": "object", "properties": {"score": {"type": "number", "maximum": 100}}}
        }
    })
}

#[test]
fn publishes_must_satisfy_their_event_types_schema() {
    let app = TestApp::spawn();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/event-types",
        Some(
            json!({"name": "job.completed", "schema": job_completed_schema(),
                    "example": {"event": "job.completed", "task_id": "t1"}}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"]["schema"]["required"],
        json!(["task_id"]),
        "{body}"
    );
    let (status, got) = app.admin("GET", "/api/v1/event-types/job.completed", None);
    assert_eq!(status, 200);
    assert_eq!(got["data"]["schema"], job_completed_schema(), "{got}");

    app.publish(json!({"event": "job.completed", "task_id": "t1", "result": {"score": 99}}));
    // Types without a schema (or outside the catalogue) are not checked.
    app.publish(json!({"event": "job.failed"}));
    assert_eq!(event_count(&app), 2);

    let (status, body) = app.admin(
        "POST",
        "/api/v1/events",
        Some(json!({"event": "job.completed", "result": {}})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "schema_violation", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`required`") && message.contains("task_id"),
        "{message}"
    );

    let (status, body) = app.admin(
        "POST",
        "/api/v1/events",
        Some(json!({"event": "job.completed", "task_id": "t2", "result": {"score": 101}})),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`/result/score`") && message.contains("`maximum`"),
        "{message}"
    );

    // A batch with one bad item: refused whole, naming the item; nothing stored.
    let (status, body) = app.admin(
        "POST",
        "/api/v1/events/batch",
        Some(json!({"events": [
            {"event": "job.completed", "task_id": "t3"},
            {"event": "job.completed", "task_id": ""},
            {"event": "job.failed"}
        ]})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "schema_violation");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("events[1]: ") && message.contains("`/task_id`"),
        "{message}"
    );
    assert_eq!(event_count(&app), 2, "a refused batch stores nothing");

    // Without the schema, the same payload goes through.
    let (status, body) = app.admin(
        "POST",
        "/api/v1/event-types",
        Some(json!({"name": "job.completed", "description": "no schema now"})),
    );
    assert_eq!(status, 201, "{body}");
    assert!(body["data"]["schema"].is_null(), "{body}");
    app.publish(json!({"event": "job.completed", "result": {}}));
    assert_eq!(event_count(&app), 3);
}

#[test]
fn an_invalid_schema_or_an_example_that_fails_it_is_refused_when_saved() {
    let app = TestApp::spawn();
    for (schema, says) in [
        (json!({"type": "no-such-type"}), "not a valid JSON Schema"),
        (json!({"minimum": "one"}), "not a valid JSON Schema"),
        (json!([1, 2]), "must be a JSON Schema object"),
    ] {
        let (status, body) = app.admin(
            "POST",
            "/api/v1/event-types",
            Some(json!({"name": "bad.schema", "schema": schema})),
        );
        assert_eq!(status, 400, "{schema}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let (status, body) = app.admin(
        "POST",
        "/api/v1/event-types",
        Some(
            json!({"name": "job.completed", "schema": job_completed_schema(),
                    "example": {"event": "job.completed"}}),
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("example: "),
        "{body}"
    );
    let (status, _) = app.admin("GET", "/api/v1/event-types/job.completed", None);
    assert_eq!(status, 404, "nothing was saved");
    let (status, _) = app.admin("GET", "/api/v1/event-types/bad.schema", None);
    assert_eq!(status, 404, "nothing was saved");
}
