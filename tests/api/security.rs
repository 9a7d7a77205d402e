// Security review, second round (issue 23, items 11-13): sealed secrets bound to their
// endpoint, one SSRF refusal message for tenants, `Cache-Control: no-store` on answers
// that carry a secret, and the operator webhook's secret kept out of the journal.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{wait_for, Receiver, TestApp};

const WAIT: Duration = Duration::from_secs(20);
/// What a tenant reads for a host that does not resolve and for one the guard refuses
/// (`engine::http::HOST_REFUSED`).
const HOST_REFUSED: &str =
    "host not found, or it resolves only to addresses Herald does not deliver to";

fn delivery_of(app: &TestApp, endpoint: i64) -> Value {
    let (status, page) = app.admin(
        "GET",
        &format!("/api/v1/webhooks/{endpoint}/deliveries"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    page["data"][0].clone()
}

/// With write access to the database, one endpoint's sealed secret was copied onto
/// another's row and opened there: the seal now names its tenant and endpoint.
#[test]
fn a_secret_copied_onto_another_endpoint_does_not_open_there() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "")]);
    let receiver = Receiver::ok();
    let a = app.create_webhook(&receiver.url("/a"), &["a.*"]);
    let b = app.create_webhook(&receiver.url("/b"), &["b.*"]);
    let (a_id, b_id) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    app.sql_exec(&[format!(
        "UPDATE endpoints SET secret = (SELECT secret FROM endpoints WHERE id = {a_id})
         WHERE id = {b_id}"
    )]);

    // The endpoint still reads (its secret is never shown anyway) …
    let (status, shown) = app.admin("GET", &format!("/api/v1/webhooks/{b_id}"), None);
    assert_eq!(status, 200, "{shown}");
    // … and its delivery is refused with the reason, without a request being sent.
    app.publish(json!({"event": "b.created"}));
    let failed = wait_for(WAIT, "the delivery to fail", &mut || {
        let d = delivery_of(&app, b_id);
        (d["status"] == "failed").then_some(d)
    });
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("secret"), "{failed}");
    assert!(
        receiver.on_path("/b").is_empty(),
        "sent with a secret that is not its own"
    );

    // The endpoint whose secret it was still delivers, signed with its own.
    app.publish(json!({"event": "a.created"}));
    let got = receiver.wait_for("/a", 1, WAIT);
    let r = &got[0];
    assert!(herald::wire::signing::verify_standard(
        a["secret"].as_str().unwrap(),
        &r.headers["webhook-id"],
        r.headers["webhook-timestamp"].parse().unwrap(),
        r.body.as_bytes(),
        &r.headers["webhook-signature"],
    ));

    // Rotating gives the copied-onto endpoint a secret of its own again.
    let (status, rotated) = app.admin(
        "POST",
        &format!("/api/v1/webhooks/{b_id}/rotate-secret"),
        None,
    );
    assert_eq!(status, 200, "{rotated}");
    app.publish(json!({"event": "b.created"}));
    receiver.wait_for("/b", 1, WAIT);
}

/// The connect-time SSRF refusal told a tenant that a name exists and resolves inside
/// ("resolves only to loopback, private or reserved addresses" against "Name or service not
/// known"); tenants now read one message for both.
#[test]
fn the_ssrf_refusal_reads_like_a_host_that_is_not_found() {
    // Created while private targets are allowed, then refused at connect time once they
    // are not: the connect-time guard is what a DNS answer meets.
    let mut app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "")]);
    let receiver = Receiver::ok();
    let hook = app.create_webhook(&receiver.url("/hook"), &["*"]);
    let id = hook["id"].as_i64().unwrap();
    app.env
        .iter_mut()
        .filter(|(k, _)| k == "HERALD_ALLOW_PRIVATE_TARGETS")
        .for_each(|(_, v)| *v = "false".into());
    app.restart();
    app.publish(json!({"event": "a.b"}));
    let failed = wait_for(WAIT, "the delivery to fail", &mut || {
        let d = delivery_of(&app, id);
        (d["status"] == "failed").then_some(d)
    });
    assert!(receiver.received().is_empty());
    let error = failed["last_error"].as_str().unwrap().to_owned();
    assert_eq!(error, HOST_REFUSED, "{failed}");
    let (_, attempts) = app.admin("GET", &format!("/api/v1/deliveries/{}", failed["id"]), None);
    for word in ["loopback", "private", "reserved", "SSRF", "127.0.0.1"] {
        assert!(!error.contains(word), "{error}");
        assert!(!attempts.to_string().contains(word), "{attempts}");
    }
}

fn no_store(headers: &std::collections::HashMap<String, String>) -> bool {
    headers
        .get("cache-control")
        .is_some_and(|v| v.contains("no-store"))
}

#[test]
fn answers_with_a_secret_or_token_are_not_stored_by_caches() {
    let app = TestApp::spawn();
    let created = |path: &str, body: Value| {
        let (status, headers, text) = app.call_raw(
            "POST",
            path,
            Some(crate::common::ADMIN_TOKEN),
            &[],
            Some(&body.to_string()),
        );
        assert!(status < 300, "{path}: {status} {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        (headers, body)
    };
    let (headers, hook) = created(
        "/api/v1/webhooks",
        json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "status": "paused"}),
    );
    assert!(hook["data"]["secret"].is_string());
    assert!(no_store(&headers), "create webhook: {headers:?}");
    let id = hook["data"]["id"].as_i64().unwrap();
    let (headers, rotated) = created(&format!("/api/v1/webhooks/{id}/rotate-secret"), json!({}));
    assert!(rotated["data"]["secret"].is_string());
    assert!(no_store(&headers), "rotate: {headers:?}");
    let (headers, key) = created("/api/v1/tenants/default/keys", json!({}));
    assert!(key["data"]["token"].is_string());
    assert!(no_store(&headers), "create key: {headers:?}");
}

/// The operator webhook's secret went to stdout at start-up, so into the journal.
#[test]
fn the_operator_secret_is_not_written_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("herald.db"))
        .env("HERALD_ADMIN_TOKEN", crate::common::ADMIN_TOKEN)
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
        .env("HERALD_OPERATOR_WEBHOOK", "http://127.0.0.1:9/ops")
        .env("HERALD_LOG", "info")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(output.id().to_string())
        .status();
    let output = output.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("Herald listening"), "{all}");
    assert!(
        all.contains("rotate-secret"),
        "says how to get the secret: {all}"
    );
    assert!(!all.contains("whsec_"), "{all}");
}

/// The re-seal step (run on opening, after the migrations): a secret stored in clear, or
/// sealed the older way (one associated data for every endpoint), is sealed for its own
/// endpoint, and deliveries still sign with it.
#[test]
fn old_secrets_are_re_sealed_for_their_endpoint() {
    use base64::Engine;
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

    let mut app = TestApp::spawn();
    let receiver = Receiver::ok();
    let a = app.create_webhook(&receiver.url("/a"), &["a.*"]);
    let b = app.create_webhook(&receiver.url("/b"), &["b.*"]);
    let key_hex = std::fs::read_to_string(app.dir.path().join("herald.key")).unwrap();
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex.trim(), &mut key).unwrap();
    let key = herald::secrets::secret_key::SecretKey::from_bytes(key);
    // `sealed1:` as Herald wrote it before: the constant associated data.
    let aead = LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, &key.derive("endpoint-secrets")).unwrap(),
    );
    let mut sealed = b["secret"].as_str().unwrap().as_bytes().to_vec();
    let nonce = [7u8; 12];
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&b"herald endpoint secret"[..]),
        &mut sealed,
    )
    .unwrap();
    let legacy = format!(
        "sealed1:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([&nonce[..], &sealed].concat())
    );
    let (a_id, b_id) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    app.kill9();
    app.sql_exec(&[
        format!(
            "UPDATE endpoints SET secret = '{}' WHERE id = {a_id}",
            a["secret"].as_str().unwrap()
        ),
        format!("UPDATE endpoints SET secret = '{legacy}' WHERE id = {b_id}"),
    ]);
    app.start();
    for id in [a_id, b_id] {
        let prefix = app.sql_count(&format!(
            "SELECT count(*) FROM endpoints WHERE id = {id} AND secret LIKE 'sealed2:%'"
        ));
        assert_eq!(prefix, 1, "endpoint {id} was not re-sealed");
    }
    for (hook, path, event) in [(&a, "/a", "a.x"), (&b, "/b", "b.x")] {
        app.publish(json!({ "event": event }));
        let got = receiver.wait_for(path, 1, WAIT);
        let r = &got[0];
        assert!(
            herald::wire::signing::verify_standard(
                hook["secret"].as_str().unwrap(),
                &r.headers["webhook-id"],
                r.headers["webhook-timestamp"].parse().unwrap(),
                r.body.as_bytes(),
                &r.headers["webhook-signature"],
            ),
            "{path} is not signed with its secret"
        );
    }
}
