// Security review (issue 23, item 2): the API's bearer check took a throttle slot and gave
// it back only once the token was checked; when another extractor of the same handler
// failed (a bad path id, an unknown query parameter, a 413 body) actix dropped the pending
// check with the slot held. 200 such requests, with a garbage token or a valid one, locked
// the address out of the whole API: on SQLite until restart (pending slots never expired
// there), with no log line. Slots are now guards given back on drop, and pending slots
// expire on SQLite as on PostgreSQL.

use std::time::{Duration, Instant};

use crate::common::{PgDatabase, TestApp};

fn tenant_key(app: &TestApp) -> String {
    let tenant = serde_json::json!({"id": "acme", "name": "Acme"});
    assert_eq!(app.admin("POST", "/api/v1/tenants", Some(tenant)).0, 201);
    let (status, key) = app.admin(
        "POST",
        "/api/v1/tenants/acme/keys",
        Some(serde_json::json!({})),
    );
    assert_eq!(status, 201, "{key}");
    key["data"]["token"].as_str().unwrap().to_owned()
}

/// `n` requests, 8 at a time, to `path` with `token`; their statuses.
fn burst(app: &TestApp, n: usize, path: &str, token: &str) -> Vec<u16> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let statuses = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    let status = app.call("GET", path, Some(token), None).0;
                    statuses.lock().unwrap().push(status);
                }
            });
        }
    });
    statuses.into_inner().unwrap()
}

fn abandoned_checks_leave_the_address_free(app: &TestApp) {
    let key = tenant_key(app);
    for token in ["garbage", key.as_str()] {
        for path in ["/api/v1/webhooks/abc", "/api/v1/webhooks?nonsense=1"] {
            let statuses = burst(app, 200, path, token);
            assert!(
                statuses.iter().all(|s| *s == 400),
                "{path} with {token}: {statuses:?}"
            );
        }
    }
    let started = Instant::now();
    let (status, body) = app.call("GET", "/api/v1/webhooks", Some(&key), None);
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the valid key waited {:?}",
        started.elapsed()
    );
}

#[test]
fn abandoned_api_checks_give_their_slots_back_sqlite() {
    abandoned_checks_leave_the_address_free(&TestApp::spawn_sqlite(&[]));
}

#[test]
fn abandoned_api_checks_give_their_slots_back_postgres() {
    let Some(db) = PgDatabase::create_or_skip() else {
        return;
    };
    let key = crate::common::random_secret_key();
    let app = TestApp::spawn_on(&db.url(), &[("HERALD_SECRET_KEY", key.as_str())]);
    abandoned_checks_leave_the_address_free(&app);
}
