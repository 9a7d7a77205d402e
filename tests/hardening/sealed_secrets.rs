// Security review (issue 10): endpoint signing secrets were stored in clear beside
// everything else, so a copied database revealed them. They are now sealed with the secret
// key kept outside the database; a file from before is sealed when Herald opens it.

use std::time::Duration;

use serde_json::json;

use crate::common::{Receiver, TestApp};

fn stored_secret(app: &TestApp, id: i64) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        app.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("SELECT secret FROM endpoints WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Publishes one event and checks the receiver's copy is signed with `secret`.
fn delivered_signed_with(app: &TestApp, receiver: &Receiver, secret: &str, n: usize) {
    app.publish(json!({"event": "a.b", "n": n}));
    let got = receiver.wait_for("/hook", n, Duration::from_secs(20));
    let r = &got[n - 1];
    let ts: i64 = r.headers["webhook-timestamp"].parse().unwrap();
    assert!(
        herald::wire::signing::verify_standard(
            secret,
            &r.headers["webhook-id"],
            ts,
            r.body.as_bytes(),
            &r.headers["webhook-signature"],
        ),
        "delivery {n} is not signed with the endpoint's secret"
    );
}

#[test]
fn endpoint_secrets_are_sealed_at_rest_and_old_files_get_sealed() {
    let mut app = TestApp::spawn();
    let receiver = Receiver::ok();
    let hook = app.create_webhook(&receiver.url("/hook"), &["*"]);
    let (id, secret) = (
        hook["id"].as_i64().unwrap(),
        hook["secret"].as_str().unwrap().to_owned(),
    );
    let stored = stored_secret(&app, id);
    assert!(
        stored.starts_with("sealed2:") && !stored.contains(&secret[6..]),
        "{stored}"
    );
    delivered_signed_with(&app, &receiver, &secret, 1);

    // A file from before: the secret in clear. Opening it seals it; deliveries still sign.
    app.terminate();
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute(
        "UPDATE endpoints SET secret = ?2 WHERE id = ?1",
        rusqlite::params![id, secret],
    )
    .unwrap();
    drop(conn);
    app.start();
    assert!(stored_secret(&app, id).starts_with("sealed2:"));
    delivered_signed_with(&app, &receiver, &secret, 2);
}

/// A restored database started with another key (a lost or mixed-up key file) is refused at
/// start-up with the reason, rather than starting and failing to sign every delivery.
#[test]
fn another_secret_key_is_refused_at_start() {
    let mut app = TestApp::spawn();
    app.create_webhook("http://127.0.0.1:9/hook", &["*"]);
    app.kill9();
    std::fs::remove_file(app.dir.path().join("herald.key")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(app.db_path())
        .env("HERALD_ADMIN_TOKEN", crate::common::ADMIN_TOKEN)
        .env_remove("HERALD_LISTEN")
        .output()
        .expect("run herald");
    assert!(!output.status.success(), "started with a new key");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("herald.key"), "{stderr}");
    assert!(
        stderr.contains("not the one this database's secrets were sealed with"),
        "{stderr}"
    );
}
