// Publishing: fan-out in one transaction, idempotency, batches, group commit, restarts.

use std::time::Duration;

use crate::common::{Receiver, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

#[test]
fn publish_writes_event_and_deliveries_before_answering() {
    let app = TestApp::spawn_with(&[("HERALD_DURABILITY", "full")]);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/a"), &["job.completed"]);
    app.create_webhook(&receiver.url("/b"), &["job.*"]);
    app.create_webhook(&receiver.url("/c"), &["book.completed"]);
    app.create_webhook(&receiver.url("/d"), &["*"]);
    let data = app.publish(json!({ "event": "job.completed", "task_id": "task_1" }));
    assert_eq!(data["deliveries"], 3);
    let id = data["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("evt_"));
    // Read the file right after the 202: the event and its 3 rows are already there.
    let rows = app.sql_count(&format!(
        "SELECT count(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.id = '{id}'"
    ));
    assert_eq!(rows, 3);
    let data = app.publish(json!({ "event": "book.completed" }));
    assert_eq!(data["deliveries"], 2);
    let data = app.publish(json!({ "event": "other.thing" }));
    assert_eq!(data["deliveries"], 1);

    let (_, body) = app.admin("GET", &format!("/api/v1/events/{id}"), None);
    let event = &body["data"];
    assert_eq!(event["event"], "job.completed");
    assert_eq!(event["payload"]["task_id"], "task_1");
    assert!(
        event["payload"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "timestamp added"
    );
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 3);
    receiver.wait_for("/a", 1, Duration::from_secs(10));
}

#[test]
fn idempotency_key_returns_the_first_result() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/"), &["*"]);
    let body = json!({"event": "job.completed", "n": 1}).to_string();
    let key = [("Idempotency-Key", "job-42")];
    let (s1, h1, b1) = app.call_raw(
        "POST",
        "/api/v1/events",
        Some(ADMIN_TOKEN),
        &key,
        Some(&body),
    );
    let (s2, h2, b2) = app.call_raw(
        "POST",
        "/api/v1/events",
        Some(ADMIN_TOKEN),
        &key,
        Some(&body),
    );
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1, b2, "the repeat answers the first result");
    assert!(!h1.contains_key("idempotent-replayed"));
    assert_eq!(
        h2.get("idempotent-replayed").map(String::as_str),
        Some("true")
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 1);
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 1);

    // Another tenant may use the same key for its own event.
    app.admin("POST", "/api/v1/tenants", Some(json!({"id": "acme"})));
    let (s3, _, b3) = app.call_raw(
        "POST",
        "/api/v1/events?tenant=acme",
        Some(ADMIN_TOKEN),
        &key,
        Some(&body),
    );
    assert_eq!(s3, 202);
    assert_ne!(b3, b1);

    // A batch with a key replays as a whole.
    let batch = json!({"events": [{"event": "a.b"}, {"event": "a.c"}]}).to_string();
    let bkey = [("Idempotency-Key", "batch-1")];
    let (_, _, first) = app.call_raw(
        "POST",
        "/api/v1/events/batch",
        Some(ADMIN_TOKEN),
        &bkey,
        Some(&batch),
    );
    let (_, _, again) = app.call_raw(
        "POST",
        "/api/v1/events/batch",
        Some(ADMIN_TOKEN),
        &bkey,
        Some(&batch),
    );
    assert_eq!(first, again);
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 4);
}

#[test]
fn concurrent_publishes_with_one_idempotency_key_store_one_event() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/"), &["*"]);
    for round in 0..5 {
        let key = format!("race-{round}");
        let body = json!({"event": "job.completed", "round": round}).to_string();
        let answers: Vec<(u16, String)> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (app, key, body) = (&app, &key, &body);
                    s.spawn(move || {
                        let (status, _, text) = app.call_raw(
                            "POST",
                            "/api/v1/events",
                            Some(ADMIN_TOKEN),
                            &[("Idempotency-Key", key.as_str())],
                            Some(body),
                        );
                        (status, text)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (status, text) in &answers {
            assert_eq!(*status, 202, "{text}");
            assert_eq!(text, &answers[0].1, "every racer answers the first result");
        }
    }
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 5);
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 5);
}

#[test]
fn batch_is_all_or_nothing() {
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/"), &["*"]);
    let (status, body) = app.admin(
        "POST",
        "/api/v1/events/batch",
        Some(json!({"events": [{"event": "a.b"}, {"no_event": 1}]})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1]"),
        "{body}"
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 0);

    let events: Vec<Value> = (0..50)
        .map(|i| json!({"event": "job.completed", "i": i}))
        .collect();
    let (status, body) = app.admin(
        "POST",
        "/api/v1/events/batch",
        Some(json!({ "events": events })),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["events"].as_array().unwrap().len(), 50);
    assert_eq!(body["data"]["deliveries"], 50);
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 50);
}

#[test]
fn restart_on_the_same_file_keeps_everything() {
    let mut app = TestApp::spawn_with(&[("HERALD_DURABILITY", "full")]);
    app.admin("POST", "/api/v1/tenants", Some(json!({"id": "acme"})));
    let (_, key) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    let key = key["data"]["token"].as_str().unwrap().to_string();
    let hook = app.create_webhook("http://127.0.0.1:9/hook", &["job.*"]);
    let event = app.publish(json!({"event": "job.completed"}));
    app.kill9();
    app.start();
    let (_, got) = app.admin("GET", &format!("/api/v1/webhooks/{}", hook["id"]), None);
    assert_eq!(got["data"]["url"], "http://127.0.0.1:9/hook");
    let (status, got) = app.admin(
        "GET",
        &format!("/api/v1/events/{}", event["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(got["data"]["deliveries"].as_array().unwrap().len(), 1);
    let (status, _) = app.call("GET", "/api/v1/webhooks", Some(&key), None);
    assert_eq!(status, 200, "tenant keys survive a restart");
}

/// Many concurrent publishes share commits: the writer batches them into fewer
/// transactions than requests (durability = full, so each commit is an fsync).
#[test]
fn concurrent_publishes_are_group_committed() {
    if crate::common::on_postgres() {
        // Group commit is the SQLite writer thread's; on PostgreSQL each publish is a
        // transaction of its own, and the server batches WAL flushes by itself.
        println!("SQLite only: group commit belongs to the SQLite writer");
        return;
    }
    let app = TestApp::spawn_with(&[("HERALD_DURABILITY", "full")]);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/"), &["*"]);
    let commits = |app: &TestApp| -> u64 {
        let (_, _, text) = app.call_raw("GET", "/metrics", None, &[], None);
        text.lines()
            .find_map(|l| l.strip_prefix("herald_store_commits_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("commit counter in /metrics")
    };
    let before = commits(&app);
    let threads = 32;
    let per_thread = 20;
    std::thread::scope(|s| {
        for t in 0..threads {
            let app = &app;
            s.spawn(move || {
                for i in 0..per_thread {
                    app.publish(json!({"event": "load.test", "t": t, "i": i}));
                }
            });
        }
    });
    let publishes = (threads * per_thread) as u64;
    // The engine's claims and results also commit; count only what the publishes could need.
    let used = commits(&app) - before;
    assert_eq!(
        app.sql_count("SELECT count(*) FROM events"),
        publishes as i64
    );
    println!("{publishes} concurrent publishes used {used} commits (including engine writes)");
    assert!(
        used < publishes,
        "{publishes} publishes should share commits, but {used} commits were made"
    );
}
