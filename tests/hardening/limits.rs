// Limits and namespaces that a client must not be able to get around.

use crate::common::{TestApp, ADMIN_TOKEN};

/// A declared Content-Length over `max_payload` is refused before the body is read.
#[test]
fn oversized_content_length_is_refused_up_front() {
    use std::io::{Read, Write};
    let app = TestApp::spawn_with(&[("HERALD_MAX_PAYLOAD", "1KiB")]);
    let mut stream = std::net::TcpStream::connect(&app.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{"
    )
    .unwrap();
    let mut answer = vec![0u8; 512];
    let n = stream.read(&mut answer).expect("an answer, not a hang");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 0);
}

/// A single publish cannot collide with the key a batch gave one of its items.
#[test]
fn batch_item_keys_do_not_collide_with_single_keys() {
    let app = TestApp::spawn();
    let batch = r#"{"events": [{"event": "a.b"}, {"event": "a.c"}]}"#;
    let (status, _, _) = app.call_raw(
        "POST",
        "/api/v1/events/batch",
        Some(ADMIN_TOKEN),
        &[("Idempotency-Key", "K")],
        Some(batch),
    );
    assert_eq!(status, 202);
    let (status, headers, body) = app.call_raw(
        "POST",
        "/api/v1/events",
        Some(ADMIN_TOKEN),
        &[("Idempotency-Key", "K#1")],
        Some(r#"{"event": "other.thing"}"#),
    );
    assert_eq!(status, 202);
    assert!(!headers.contains_key("idempotent-replayed"), "{body}");
    assert!(body.contains("other.thing"), "{body}");
    assert_eq!(app.sql_count("SELECT count(*) FROM events"), 3);
}

/// /readyz makes a real write, so it fails when the database cannot take one.
#[test]
fn readyz_writes_for_real() {
    let app = TestApp::spawn();
    let (status, _) = app.call("GET", "/readyz", None, None);
    assert_eq!(status, 200);
    assert_eq!(
        app.sql_count("SELECT count(*) FROM settings WHERE key = 'readyz_heartbeat'"),
        1
    );
}
