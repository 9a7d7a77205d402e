//! `herald migrate --to postgres://…` round trip (issue #8): a SQLite deployment with a
//! tenant, its key, an endpoint and delivered events moves to PostgreSQL; Herald started
//! there answers the old key, lists the same endpoint, events, deliveries and attempts under
//! the same ids, and signs a new delivery with the same endpoint secret as before the move.
//!
//! Runs when `HERALD_TEST_PG_URL` names a PostgreSQL server (`.ci/run` starts one);
//! otherwise it says so and passes.

mod common;

use std::process::Command;

use base64::Engine;
use std::time::Duration;

use common::{PgDatabase, Received, Receiver, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

fn signed_with(r: &Received, secret: &str) -> bool {
    let ts: i64 = r.headers["webhook-timestamp"].parse().unwrap();
    herald::wire::signing::verify_standard(
        secret,
        &r.headers["webhook-id"],
        ts,
        r.body.as_bytes(),
        &r.headers["webhook-signature"],
    )
}

fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = app.call("GET", path, Some(token), None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body["data"].clone()
}

fn herald_migrate(db: &std::path::Path, to: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("migrate")
        .arg("--db")
        .arg(db)
        .arg("--to")
        .arg(to)
        .env("HERALD_LOG", "warn")
        .env_remove("HERALD_SECRET_KEY")
        .env_remove("HERALD_SECRET_KEY_FILE")
        .env_remove("HERALD_DB")
        .output()
        .expect("run herald migrate")
}

#[test]
fn a_sqlite_deployment_moves_to_postgres_and_keeps_signing_with_the_same_secret() {
    let Some(target) = PgDatabase::create_or_skip() else {
        return;
    };
    let receiver = Receiver::ok();
    let mut before = TestApp::spawn_sqlite(&[]);

    // A tenant with a key, an endpoint, an event type, and three delivered events.
    let tenant = json!({"id": "acme", "name": "Acme"});
    assert_eq!(before.admin("POST", "/api/v1/tenants", Some(tenant)).0, 201);
    let (status, key) = before.admin(
        "POST",
        "/api/v1/tenants/acme/keys",
        Some(json!({"name": "ci"})),
    );
    assert_eq!(status, 201, "{key}");
    let token = key["data"]["token"].as_str().unwrap().to_owned();
    let event_type = json!({"name": "order.paid", "description": "An order was paid"});
    assert_eq!(
        before
            .admin("POST", "/api/v1/event-types", Some(event_type))
            .0,
        201
    );
    // With auth (issue 20): its sealed password must open on the other side too.
    let hook = json!({"url": receiver.url("/hook"), "events": ["order.*"],
        "auth": {"type": "basic", "username": "moved", "password": "migrated-pw"}});
    let (status, hook) = before.call(
        "POST",
        "/api/v1/webhooks",
        Some(&token),
        Some(&hook.to_string()),
    );
    assert_eq!(status, 201, "{hook}");
    let endpoint = hook["data"]["id"].as_i64().unwrap();
    let secret = hook["data"]["secret"].as_str().unwrap().to_owned();
    let mut event_ids = Vec::new();
    for n in 0..3 {
        let body = json!({"event": "order.paid", "n": n}).to_string();
        let (status, published) = before.call("POST", "/api/v1/events", Some(&token), Some(&body));
        assert_eq!(status, 202, "{published}");
        event_ids.push(published["data"]["id"].as_str().unwrap().to_owned());
    }
    let got = receiver.wait_for("/hook", 3, Duration::from_secs(20));
    assert!(got.iter().all(|r| signed_with(r, &secret)));
    let deliveries_before = get(&before, &token, "/api/v1/deliveries");
    before.wait_for(
        Duration::from_secs(10),
        "three succeeded deliveries",
        || {
            let d = get(&before, &token, "/api/v1/deliveries");
            let done = d
                .as_array()?
                .iter()
                .filter(|d| d["status"] == "succeeded")
                .count();
            (done == 3).then_some(())
        },
    );
    assert_eq!(before.terminate().code(), Some(0));

    // The move.
    let out = herald_migrate(&before.db_path(), &target.url());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "endpoints",
        "events",
        "deliveries",
        "attempts",
        "secret key",
    ] {
        assert!(stdout.contains(line), "no `{line}` in: {stdout}");
    }
    // A second run would mix two deployments: refused, with the reason.
    let again = herald_migrate(&before.db_path(), &target.url());
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");

    let key_file = before.dir.path().join("herald.key").display().to_string();
    let after = TestApp::spawn_on(&target.url(), &[("HERALD_SECRET_KEY_FILE", &key_file)]);
    assert_eq!(get(&after, &token, "/api/v1/webhooks")[0]["id"], endpoint);
    let events = get(&after, &token, "/api/v1/events");
    let mut listed: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected = event_ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let deliveries = get(&after, &token, "/api/v1/deliveries");
    let ids = |v: &Value| -> Vec<i64> {
        let mut ids: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_i64().unwrap())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&deliveries), ids(&deliveries_before));
    for d in deliveries.as_array().unwrap() {
        assert_eq!(d["status"], "succeeded", "{d}");
        let one = get(&after, &token, &format!("/api/v1/deliveries/{}", d["id"]));
        let log = one["attempt_log"].as_array().unwrap();
        assert_eq!(log.len(), 1, "{one}");
        assert_eq!(log[0]["status_code"], 200);
    }
    assert_eq!(
        get(&after, ADMIN_TOKEN, "/api/v1/event-types")[0]["name"],
        "order.paid"
    );

    // The round trip: a publish after the move is signed with the secret from before it,
    // and new rows get ids past the copied ones.
    let body = json!({"event": "order.paid", "n": 3}).to_string();
    let (status, published) = after.call("POST", "/api/v1/events", Some(&token), Some(&body));
    assert_eq!(status, 202, "{published}");
    let got = receiver.wait_for("/hook", 4, Duration::from_secs(30));
    let last = got
        .iter()
        .find(|r| r.headers["webhook-id"] == published["data"]["id"].as_str().unwrap())
        .expect("the new event was delivered");
    assert!(signed_with(last, &secret), "not signed with the old secret");
    let basic = base64::engine::general_purpose::STANDARD.encode("moved:migrated-pw");
    assert_eq!(last.headers["authorization"], format!("Basic {basic}"));
    let hook = json!({"url": receiver.url("/other"), "events": ["*"]});
    let (status, second) = after.call(
        "POST",
        "/api/v1/webhooks",
        Some(&token),
        Some(&hook.to_string()),
    );
    assert_eq!(status, 201, "{second}");
    assert!(second["data"]["id"].as_i64().unwrap() > endpoint);
}
