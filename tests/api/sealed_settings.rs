// Issue 20, item 5: the extra header values an endpoint sends (often a receiver's
// `Authorization`) were stored in clear beside everything else. They are sealed now, for
// their endpoint, like its signing secret: a copied database reveals none of them, and a
// file written before is sealed when Herald opens it.

use std::time::Duration;

use serde_json::json;

use crate::common::{Receiver, TestApp};

const WAIT: Duration = Duration::from_secs(20);

fn sealed_rows(app: &TestApp, id: i64) -> i64 {
    app.sql_count(&format!(
        "SELECT count(*) FROM endpoints WHERE id = {id} AND headers LIKE 'sealed2:%'"
    ))
}

#[test]
fn extra_header_values_are_sealed_at_rest_and_still_sent() {
    let mut app = TestApp::spawn();
    let receiver = Receiver::ok();
    let (status, created) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({
            "url": receiver.url("/hook"),
            "events": ["*"],
            "headers": {"Authorization": "Bearer tok-first-9f3a", "X-Team": "team-blue-77"},
        })),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(sealed_rows(&app, id), 1, "the headers column is not sealed");
    // Answered masked, never in clear (as before).
    let answered = created.to_string();
    assert!(!answered.contains("tok-first-9f3a") && !answered.contains("team-blue-77"));

    app.publish(json!({"event": "a.b"}));
    let got = receiver.wait_for("/hook", 1, WAIT);
    assert_eq!(got[0].headers["authorization"], "Bearer tok-first-9f3a");
    assert_eq!(got[0].headers["x-team"], "team-blue-77");

    // A PATCH seals the new value too, and deliveries carry it.
    let (status, patched) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({"headers": {"Authorization": "Bearer tok-second-c41d"}})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(sealed_rows(&app, id), 1);
    app.publish(json!({"event": "a.b"}));
    let got = receiver.wait_for("/hook", 2, WAIT);
    assert_eq!(got[1].headers["authorization"], "Bearer tok-second-c41d");

    // A copy of the database (after a checkpoint, so the WAL is in the file too) holds
    // neither value anywhere, free pages included.
    app.terminate();
    for secret in ["tok-first-9f3a", "tok-second-c41d", "team-blue-77"] {
        assert!(!app.stored_anywhere(secret), "{secret} is in the database");
    }

    // A file from before: the header values in clear. Opening seals them; they still go.
    app.sql_exec(&[format!(
        "UPDATE endpoints SET headers = '{{\"Authorization\":\"Bearer tok-old-5e6b\"}}' WHERE id = {id}"
    )]);
    app.start();
    assert_eq!(
        sealed_rows(&app, id),
        1,
        "the old file was not sealed on opening"
    );
    app.publish(json!({"event": "a.b"}));
    let got = receiver.wait_for("/hook", 3, WAIT);
    assert_eq!(got[2].headers["authorization"], "Bearer tok-old-5e6b");
}

/// Headers sealed for one endpoint and copied onto another's row do not open there: that
/// endpoint's deliveries go without them (and the admin log says why) instead of sending
/// another endpoint's credentials.
#[test]
fn header_values_copied_onto_another_endpoint_do_not_open_there() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let (status, a) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({
            "url": receiver.url("/a"),
            "events": ["a.*"],
            "headers": {"Authorization": "Bearer only-for-a"},
        })),
    );
    assert_eq!(status, 201, "{a}");
    let b = app.create_webhook(&receiver.url("/b"), &["b.*"]);
    let (a_id, b_id) = (a["data"]["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    app.sql_exec(&[format!(
        "UPDATE endpoints SET headers = (SELECT headers FROM endpoints WHERE id = {a_id}) WHERE id = {b_id}"
    )]);
    app.publish(json!({"event": "b.x"}));
    let got = receiver.wait_for("/b", 1, WAIT);
    assert!(
        !got[0].headers.contains_key("authorization"),
        "another endpoint's header was sent: {:?}",
        got[0].headers
    );
}
