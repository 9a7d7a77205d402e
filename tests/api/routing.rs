//! Routing over HTTP (issue 21, items 1 and 2): a webhook's payload `filter` (validated at
//! create and PATCH with the character where it goes wrong, shown, removed), and
//! `POST /webhooks/{id}/replay` (dry run, idempotence, the cursor, retention's note, the
//! refusals, a poll webhook's replayed events read by its consumer).

use serde_json::{json, Value};

use crate::common::TestApp;

fn create(app: &TestApp, body: Value) -> (u16, Value) {
    app.admin("POST", "/api/v1/webhooks", Some(body))
}

fn replay(app: &TestApp, id: i64, query: &str, body: Value) -> (u16, Value) {
    app.admin(
        "POST",
        &format!("/api/v1/webhooks/{id}/replay{query}"),
        Some(body),
    )
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn a_filter_is_validated_at_create_and_patch_with_its_position_shown_and_removed() {
    let app = TestApp::spawn();
    let url = "http://127.0.0.1:9/hook";
    for (filter, says) in [
        ("$.data.amount >", "filter: at character 15 (near `>`)"),
        ("$.data.amount > 1000 &&& $.x", "filter: at character 24"),
        (
            "$.status = 'paid'",
            "filter: at character 10 (near `= 'paid'`)",
        ),
        ("$.a == 1] [?$.b", "filter: at character 9: `]` closes"),
        ("nosuch($.a)", "function name 'nosuch' is not defined"),
    ] {
        let (status, body) = create(&app, json!({"url": url, "events": ["*"], "filter": filter}));
        assert_eq!(status, 400, "{filter}: {body}");
        assert_eq!(body["error"]["code"], "validation_error", "{body}");
        assert!(message(&body).contains(says), "{filter}: {body}");
    }
    let (status, body) = create(&app, json!({"url": url, "events": ["*"], "filter": 5}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(app.sql_count("SELECT count(*) FROM endpoints"), 0);

    let expr = "$.data.amount > 1000 && $.status == \"paid\"";
    let (status, created) = create(
        &app,
        json!({"url": url, "events": ["order.*"], "filter": expr}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["filter"], expr);
    let id = created["data"]["id"].as_i64().unwrap();
    let (_, plain) = create(&app, json!({"url": url, "events": ["*"]}));
    assert!(plain["data"]["filter"].is_null(), "{plain}");

    let path = format!("/api/v1/webhooks/{id}");
    let (status, body) = app.admin("PATCH", &path, Some(json!({"filter": "$.data.amount >>"})));
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).starts_with("filter: at character 15"),
        "{body}"
    );
    let (_, got) = app.admin("GET", &path, None);
    assert_eq!(
        got["data"]["filter"], expr,
        "a refused PATCH changes nothing"
    );
    let (status, body) = app.admin("PATCH", &path, Some(json!({"description": "kept"})));
    assert_eq!(
        (status, &body["data"]["filter"]),
        (200, &json!(expr)),
        "{body}"
    );
    let (status, body) = app.admin("PATCH", &path, Some(json!({"filter": "@.region == 'eu'"})));
    assert_eq!(
        (status, &body["data"]["filter"]),
        (200, &json!("@.region == 'eu'"))
    );
    let (status, body) = app.admin("PATCH", &path, Some(json!({"filter": null})));
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["filter"].is_null(), "{body}");
    let (status, body) = app.admin("PATCH", &path, Some(json!({"filter": "  "})));
    assert!(status == 200 && body["data"]["filter"].is_null(), "{body}");
}

#[test]
fn a_replay_creates_the_missed_deliveries_once_and_a_dry_run_counts_them() {
    let app = TestApp::spawn();
    let start = herald::clock::rfc3339_ms(herald::clock::wall_ms() - 1_000);
    let before: Vec<String> = (0..3)
        .map(|i| {
            app.publish(json!({"event": "order.paid", "amount": i * 1_000}))["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    app.publish(json!({"event": "user.created"}));
    let (_, created) = create(
        &app,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["order.*"], "filter": "$.amount >= 1000",
               "status": "paused"}),
    );
    let id = created["data"]["id"].as_i64().unwrap();

    let (status, dry) = replay(&app, id, "?dry_run=true", json!({"since": start}));
    assert_eq!(status, 200, "{dry}");
    let data = &dry["data"];
    assert_eq!(
        (data["id"].as_i64(), data["dry_run"].as_bool()),
        (Some(id), Some(true))
    );
    assert_eq!(data["count"], 2, "{dry}");
    assert_eq!(data["event_ids"], json!([before[1], before[2]]));
    assert!(
        data["next"].is_null() && data.get("retention").is_none(),
        "{dry}"
    );
    let mine = format!("SELECT count(*) FROM deliveries WHERE endpoint_id = {id}");
    assert_eq!(app.sql_count(&mine), 0, "a dry run creates nothing");

    let (status, done) = replay(&app, id, "", json!({"since": start}));
    assert_eq!(status, 202, "{done}");
    assert_eq!(
        (
            done["data"]["count"].as_i64(),
            done["data"]["dry_run"].as_bool()
        ),
        (Some(2), Some(false))
    );
    assert_eq!(app.sql_count(&mine), 2);
    let (status, again) = replay(&app, id, "", json!({"since": start}));
    assert_eq!((status, again["data"]["count"].as_i64()), (202, Some(0)));
    assert_eq!(app.sql_count(&mine), 2, "a second replay creates nothing");

    // A window of the past only: nothing of the above is in it.
    let (_, old) = replay(
        &app,
        id,
        "?dry_run=1",
        json!({"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"}),
    );
    assert_eq!(old["data"]["count"], 0, "{old}");
    // Before what retention keeps: the answer says so and names the oldest event kept.
    let retention = &old["data"]["retention"];
    assert_eq!(retention["oldest_event"]["id"], before[0].as_str(), "{old}");
    assert!(
        retention["message"]
            .as_str()
            .unwrap()
            .contains("are pruned (retention)"),
        "{old}"
    );
    assert!(retention["kept_since"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_bounded_replay_goes_on_with_its_cursor_and_bad_requests_are_refused() {
    let app = TestApp::spawn();
    let since = herald::clock::wall_ms() / 1_000 - 5;
    app.publish_numbered("job.done", 0, 12);
    let (_, created) = create(
        &app,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["job.*"]}),
    );
    let id = created["data"]["id"].as_i64().unwrap();
    let window = json!({"since": since.to_string(), "limit": 5});
    let (status, first) = replay(&app, id, "", window.clone());
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["data"]["count"], 5);
    let until = first["data"]["until"].as_str().unwrap().to_owned();
    let mut counts = vec![5];
    let mut next = first["data"]["next"].as_str().map(str::to_owned);
    while let Some(cursor) = next {
        let (status, page) = replay(
            &app,
            id,
            "",
            json!({"since": since.to_string(), "until": until, "limit": 5, "cursor": cursor}),
        );
        assert_eq!(status, 202, "{page}");
        counts.push(page["data"]["count"].as_i64().unwrap());
        next = page["data"]["next"].as_str().map(str::to_owned);
    }
    assert_eq!(counts, [5, 5, 2]);
    let mine = format!("SELECT count(*) FROM deliveries WHERE endpoint_id = {id}");
    assert_eq!(app.sql_count(&mine), 12);

    let path = format!("/api/v1/webhooks/{id}/replay");
    for (query, body, status, code) in [
        ("", json!({}), 400, "invalid_request"),
        ("", json!({"since": "yesterday"}), 400, "validation_error"),
        (
            "",
            json!({"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}),
            400,
            "validation_error",
        ),
        (
            "",
            json!({"since": since.to_string(), "limit": 0}),
            400,
            "validation_error",
        ),
        (
            "",
            json!({"since": since.to_string(), "limit": 10_001}),
            400,
            "validation_error",
        ),
        (
            "",
            json!({"since": since.to_string(), "cursor": "-1"}),
            400,
            "invalid_pagination",
        ),
        (
            "",
            json!({"since": since.to_string(), "extra": 1}),
            400,
            "invalid_request",
        ),
        (
            "?dry_run=maybe",
            json!({"since": since.to_string()}),
            400,
            "invalid_request",
        ),
    ] {
        let (got, answer) = app.admin("POST", &format!("{path}{query}"), Some(body.clone()));
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let (status, body) = replay(&app, id + 100, "", json!({"since": since.to_string()}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (status, _) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({"status": "disabled"})),
    );
    assert_eq!(status, 200);
    let (status, body) = replay(&app, id, "", json!({"since": since.to_string()}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert!(message(&body).contains("disabled"), "{body}");
    let (status, body) = replay(
        &app,
        id,
        "?dry_run=true",
        json!({"since": since.to_string()}),
    );
    assert_eq!(status, 200, "a dry run still counts: {body}");
}

#[test]
fn a_poll_webhooks_consumer_reads_its_replayed_events() {
    let app = TestApp::spawn();
    let since = herald::clock::wall_ms() / 1_000 - 5;
    let missed = app.publish(json!({"event": "order.paid", "n": 1}))["id"].clone();
    let (status, created) = create(&app, json!({"type": "poll", "events": ["order.*"]}));
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let newer = app.publish(json!({"event": "order.paid", "n": 2}))["id"].clone();
    let (status, done) = replay(&app, id, "", json!({"since": since.to_string()}));
    assert_eq!(
        (status, done["data"]["count"].as_i64()),
        (202, Some(1)),
        "{done}"
    );
    let (status, polled) = app.admin("GET", &format!("/api/v1/webhooks/{id}/poll"), None);
    assert_eq!(status, 200, "{polled}");
    let ids: Vec<Value> = polled["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_id"].clone())
        .collect();
    assert_eq!(
        ids,
        [newer, missed],
        "replayed after what was already queued"
    );
}
