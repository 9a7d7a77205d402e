//! What one process kept in memory, shared by replicas on one PostgreSQL database (issue
//! #8): a load balancer may send a POST to one replica and its redirect to another, and a
//! guesser's attempts to all of them.
//! - a one-time message (a new API key, shown once) stored by a POST on replica A is shown
//!   by the GET on replica B, and only once;
//! - a login lock-out reached through A and B together (200 parallel guesses) holds on
//!   both, at exactly the limit;
//! - and a program sending many requests at once with a good key is never refused for it.
//!
//! Pages are driven over HTTP with the session cookie, as tests/hardening does. Runs when
//! `HERALD_TEST_PG_URL` names a PostgreSQL server (`.ci/run` starts one); otherwise it says
//! so and passes.

mod common;
#[allow(dead_code)]
#[path = "hardening/pages_http.rs"]
mod pages_http;

use common::{PgDatabase, TestApp, ADMIN_TOKEN};
use pages_http::Pages;

/// Two replicas on one database, with one secret key (page sessions open on both).
fn two_replicas(db: &PgDatabase) -> (TestApp, TestApp) {
    let key = common::random_secret_key();
    let env = [
        ("HERALD_SECRET_KEY", key.as_str()),
        ("HERALD_DURABILITY", "normal"),
    ];
    (
        TestApp::spawn_on(&db.url(), &env),
        TestApp::spawn_on(&db.url(), &env),
    )
}

#[test]
fn a_secret_revealed_after_a_post_on_one_replica_is_shown_by_the_other_once() {
    let Some(db) = PgDatabase::create_or_skip() else {
        return;
    };
    let (a, b) = two_replicas(&db);
    let (on_a, on_b) = (Pages::new(&a), Pages::new(&b));
    let admin = on_a.login("admin", ADMIN_TOKEN);
    let csrf = on_b.get("/admin/tenants/default", &admin).csrf();

    let made = on_a.post(
        "/admin/tenants/default/keys",
        &admin,
        &format!("csrf_token={csrf}&name=replicated"),
    );
    assert_eq!(made.status, 303, "{}", made.body);
    assert!(made.location.contains("flash="), "{}", made.location);

    let shown = on_b.get(&made.location, &admin);
    assert_eq!(shown.status, 200, "{}", shown.body);
    let marker = "id=\"revealed\">";
    let start = shown
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("replica B did not show the new key: {}", shown.body))
        + marker.len();
    let token: String = shown.body[start..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    assert!(token.starts_with("hk_"), "{token}");
    // The key shown is the key made: it works, on either replica.
    assert_eq!(a.call("GET", "/api/v1/webhooks", Some(&token), None).0, 200);

    for again in [
        on_a.get(&made.location, &admin),
        on_b.get(&made.location, &admin),
    ] {
        assert_eq!(again.status, 200);
        assert!(
            !again.body.contains(marker),
            "a one-time message was shown twice"
        );
    }
    // Only the session that made it may open a ticket.
    let other = on_b.login("admin", ADMIN_TOKEN);
    let made = on_a.post(
        "/admin/tenants/default/keys",
        &admin,
        &format!("csrf_token={csrf}&name=second"),
    );
    assert_eq!(made.status, 303, "{}", made.body);
    assert!(!on_b.get(&made.location, &other).body.contains(marker));
    assert!(on_b.get(&made.location, &admin).body.contains(marker));
}

#[test]
fn a_login_lock_out_reached_through_two_replicas_holds_on_both() {
    let Some(db) = PgDatabase::create_or_skip() else {
        return;
    };
    let (a, b) = two_replicas(&db);
    let (on_a, on_b) = (Pages::new(&a), Pages::new(&b));
    let form = on_a.get("/admin/login", "");
    let anon = form.cookie.clone().expect("anonymous session");
    let wrong = format!("csrf_token={}&token=wrong-{}", form.csrf(), "x".repeat(40));

    // 200 wrong guesses at once, half at each replica: exactly 20 are tried.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let (pages, anon, wrong) = (if i % 2 == 0 { &on_a } else { &on_b }, &anon, &wrong);
                s.spawn(move || pages.post("/admin/login", anon, wrong).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    assert_eq!(count(401), 20, "{statuses:?}");
    assert_eq!(count(429), 180, "{statuses:?}");

    // Locked out on both, even with the right token.
    let right = format!("csrf_token={}&token={ADMIN_TOKEN}", form.csrf());
    assert_eq!(on_a.post("/admin/login", &anon, &right).status, 429);
    assert_eq!(on_b.post("/admin/login", &anon, &right).status, 429);

    // The API's door is its own, and shared too: wrong keys counted on A lock B.
    let api: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| a.call("GET", "/api/v1/webhooks", Some("hk_wrong"), None).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(api.iter().all(|s| *s == 401), "{api:?}");
    assert_eq!(b.admin("GET", "/api/v1/webhooks", None).0, 429);
}

#[test]
fn a_program_sending_many_requests_at_once_with_a_good_key_is_never_locked_out() {
    let Some(db) = PgDatabase::create_or_skip() else {
        return;
    };
    let (a, b) = two_replicas(&db);
    // Each attempt holds a slot of the API's 50 while its key is checked; with 64 at once
    // through two replicas, the ones that find no slot wait for one instead of a 429.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let app = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || {
                    (0..20)
                        .map(|_| app.admin("GET", "/api/v1/webhooks", None).0)
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
