// Auth to the endpoint (issue 20, item 3) in the API and the pages: the shapes, the
// refusals (SSRF rules for token URLs, auth beside an extra Authorization header), the
// secrets write-only in every answer and page, and sealed in the database. What is sent is
// tests/delivery/auth.rs's.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::pages_http::Pages;
use crate::common::{Receiver, TestApp};

const PASSWORD: &str = "pw-Xq7-basic-secret";
const TOKEN: &str = "tk-Zr9-bearer-secret";
const CLIENT_SECRET: &str = "cs-Wm4-oauth-secret";
const SECRETS: [&str; 3] = [PASSWORD, TOKEN, CLIENT_SECRET];

fn auths(token_url: &str) -> [Value; 3] {
    [
        json!({"type": "basic", "username": "alice", "password": PASSWORD}),
        json!({"type": "bearer", "token": TOKEN}),
        json!({"type": "oauth2_client_credentials", "token_url": token_url,
               "client_id": "herald", "client_secret": CLIENT_SECRET, "scope": "a b"}),
    ]
}

fn create(app: &TestApp, body: Value) -> (u16, Value) {
    app.admin("POST", "/api/v1/webhooks", Some(body))
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn auth_secrets_are_write_only_in_every_answer() {
    let app = TestApp::spawn();
    let rx = Receiver::ok();
    let [b, t, o] = auths("https://auth.example.com/token");
    let mut ids = Vec::new();
    for (auth, shown) in [
        (
            b,
            json!({"type": "basic", "username": "alice", "password": "********"}),
        ),
        (t, json!({"type": "bearer", "token": "********"})),
        (
            o,
            json!({"type": "oauth2_client_credentials", "token_url": "https://auth.example.com/token",
                   "client_id": "herald", "client_secret": "********", "scope": "a b"}),
        ),
    ] {
        let (status, created) = create(
            &app,
            json!({"url": rx.url("/a"), "events": ["a.*"], "auth": auth}),
        );
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["data"]["auth"], shown);
        assert_no_secret("create", &created.to_string());
        let id = created["data"]["id"].as_i64().unwrap();
        let (_, got) = app.admin("GET", &format!("/api/v1/webhooks/{id}"), None);
        assert_eq!(got["data"]["auth"], shown);
        ids.push(id);
    }
    let (_, list) = app.admin("GET", "/api/v1/webhooks", None);
    assert_no_secret("the list", &list.to_string());

    // A GET-modify-PATCH: the masked password keeps the stored one, the user changes.
    let basic_id = ids[0];
    let (status, patched) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{basic_id}"),
        Some(json!({"auth": {"type": "basic", "username": "bob", "password": "********"}})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_no_secret("the patch", &patched.to_string());
    for other in &ids[1..] {
        app.admin("DELETE", &format!("/api/v1/webhooks/{other}"), None);
    }
    app.publish(json!({"event": "a.one"}));
    let got = rx.wait_for("/a", 1, Duration::from_secs(20));
    assert_eq!(got[0].headers["authorization"], basic("bob", PASSWORD));

    // A masked secret with nothing of that type stored is refused, not stored as is.
    let (status, refused) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{basic_id}"),
        Some(json!({"auth": {"type": "bearer", "token": "********"}})),
    );
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "validation_error");

    // `null` removes it.
    let (status, removed) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{basic_id}"),
        Some(json!({"auth": null})),
    );
    assert_eq!(status, 200, "{removed}");
    assert!(removed["data"]["auth"].is_null(), "{removed}");
    app.publish(json!({"event": "a.two"}));
    let got = rx.wait_for("/a", 2, Duration::from_secs(20));
    assert!(!got[1].headers.contains_key("authorization"), "{got:?}");
}

#[test]
fn bad_auth_is_refused_with_a_400() {
    let app = TestApp::spawn();
    let url = "https://example.com/hook";
    let cases = [
        json!({"type": "digest", "username": "u", "password": "p"}),
        json!({"type": "basic", "username": "a:b", "password": "p"}),
        json!({"type": "basic", "password": "p"}),
        json!({"type": "bearer", "token": ""}),
        json!({"type": "bearer", "token": "line\nbreak"}),
        json!({"type": "bearer", "token": "********"}),
        json!({"type": "bearer", "token": "t", "extra": 1}),
        json!({"type": "oauth2_client_credentials", "token_url": "ftp://x.example/t",
               "client_id": "c", "client_secret": "s"}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://x.example/t",
               "client_id": "c"}),
        json!("basic"),
    ];
    for auth in cases {
        let (status, body) = create(&app, json!({"url": url, "events": ["*"], "auth": auth}));
        assert_eq!(status, 400, "{auth}: {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    // A poll endpoint is sent nothing: it has no auth.
    let (status, body) = create(
        &app,
        json!({"type": "poll", "events": ["*"], "auth": {"type": "bearer", "token": "t"}}),
    );
    assert_eq!(status, 400, "{body}");
}

/// Auth and an extra `Authorization` header do not mix: refused wherever they would meet.
#[test]
fn auth_beside_an_extra_authorization_header_is_refused() {
    let app = TestApp::spawn();
    let url = "https://example.com/hook";
    let bearer = json!({"type": "bearer", "token": "t"});
    let (status, body) = create(
        &app,
        json!({"url": url, "events": ["*"], "auth": bearer, "headers": {"Authorization": "Bearer x"}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization"),
        "{body}"
    );

    let (_, with_auth) = create(&app, json!({"url": url, "events": ["*"], "auth": bearer}));
    let id = with_auth["data"]["id"].as_i64().unwrap();
    let (status, body) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({"headers": {"authorization": "Bearer x"}})),
    );
    assert_eq!(status, 400, "{body}");

    let (_, with_header) = create(
        &app,
        json!({"url": url, "events": ["*"], "headers": {"Authorization": "Bearer x"}}),
    );
    let id = with_header["data"]["id"].as_i64().unwrap();
    let (status, body) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({"auth": bearer})),
    );
    assert_eq!(status, 400, "{body}");
    // Both in one PATCH, the header going: accepted.
    let (status, body) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({"auth": bearer, "headers": {}})),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_token_url_the_ssrf_guard_refuses_is_refused_at_create_and_patch() {
    let app = TestApp::spawn_with(&[("HERALD_ALLOW_PRIVATE_TARGETS", "false")]);
    let oauth = |token_url: &str| {
        json!({"type": "oauth2_client_credentials", "token_url": token_url,
               "client_id": "c", "client_secret": "s"})
    };
    for token_url in [
        "http://127.0.0.1:8080/token",
        "http://localhost/token",
        "http://10.1.2.3/token",
        "http://169.254.169.254/latest/token",
        "http://[::1]/token",
    ] {
        let (status, body) = create(
            &app,
            json!({"url": "https://example.com/hook", "events": ["*"], "auth": oauth(token_url)}),
        );
        assert_eq!(status, 400, "{token_url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("auth.token_url: "), "{message}");
    }
    let (status, created) = create(
        &app,
        json!({"url": "https://example.com/hook", "events": ["*"],
               "auth": oauth("https://auth.example.com/token")}),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_i64().unwrap();
    let (status, body) = app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{id}"),
        Some(json!({"auth": oauth("http://127.0.0.1:9/token")})),
    );
    assert_eq!(status, 400, "{body}");
}

/// The pages' form (admin and portal share it): the type and its values, the secrets
/// write-only (shown empty, blank keeps), and the endpoint page naming the type only.
#[test]
fn the_endpoint_form_sets_auth_and_never_shows_its_secret() {
    let app = TestApp::spawn();
    let rx = Receiver::ok();
    app.admin(
        "POST",
        "/api/v1/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    );
    let (_, key) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    let token = key["data"]["token"].as_str().unwrap().to_owned();
    let pages = Pages::new(&app);
    let portal = pages.login("portal", &token);
    let new = pages.get("/portal/endpoints/new", &portal);
    assert!(new.body.contains(r#"name="auth_type""#), "{}", new.body);
    let url = rx.url("/p").replace(':', "%3A").replace('/', "%2F");
    let form = |csrf: &str, user: &str, password: &str| {
        format!(
            "csrf_token={csrf}&type=push&url={url}&events=*&description=&status=active&headers=\
             &auth_type=basic&auth_username={user}&auth_password={password}"
        )
    };
    // A blank password on a new endpoint has nothing to keep.
    let refused = pages.post(
        "/portal/endpoints",
        &portal,
        &form(&new.csrf(), "carol", ""),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    let created = pages.post(
        "/portal/endpoints",
        &portal,
        &form(&new.csrf(), "carol", PASSWORD),
    );
    assert_eq!(created.status, 303, "{}", created.body);

    let (_, list) = app.call("GET", "/api/v1/webhooks", Some(&token), None);
    let id = list["data"][0]["id"].as_i64().unwrap();
    assert_eq!(list["data"][0]["auth"]["username"], "carol", "{list}");
    let page = pages.get(&format!("/portal/endpoints/{id}"), &portal);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("basic, as `carol`"), "{}", page.body);
    assert_no_secret("the portal page", &page.body);
    let admin = pages.login("admin", crate::common::ADMIN_TOKEN);
    let admin_page = pages.get(&format!("/admin/tenants/acme/endpoints/{id}"), &admin);
    assert_eq!(admin_page.status, 200);
    assert!(admin_page.body.contains("basic, as `carol`"));
    assert_no_secret("the admin page", &admin_page.body);

    // Saved with the password left blank: the user changes, the password stays.
    let saved = pages.post(
        &format!("/portal/endpoints/{id}"),
        &portal,
        &form(&page.csrf(), "dave", ""),
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    app.call(
        "POST",
        "/api/v1/events",
        Some(&token),
        Some(r#"{"event": "p.one"}"#),
    );
    let got = rx.wait_for("/p", 1, Duration::from_secs(20));
    assert_eq!(got[0].headers["authorization"], basic("dave", PASSWORD));
}

/// A copied database (without the key file) holds none of the credentials in clear: the
/// SQLite file and its WAL read byte by byte; on PostgreSQL, every endpoint row as text.
#[test]
fn a_copied_database_holds_no_auth_secret_in_clear() {
    let app = TestApp::spawn();
    for auth in auths("https://auth.example.com/token") {
        let (status, body) = create(
            &app,
            json!({"url": "https://example.com/hook", "events": ["*"], "auth": auth}),
        );
        assert_eq!(status, 201, "{body}");
        let id = body["data"]["id"].as_i64().unwrap();
        // Rewritten once more by a PATCH that keeps the secret.
        let (status, body) = app.admin(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"description": "patched"})),
        );
        assert_eq!(status, 200, "{body}");
    }
    if app.pg.is_some() {
        for secret in SECRETS {
            let n = app.sql_count(&format!(
                "SELECT count(*) FROM endpoints e WHERE e::text LIKE '%{secret}%'"
            ));
            assert_eq!(n, 0, "{secret} is stored in clear");
        }
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", app.db_path().display());
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for secret in SECRETS {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} is in {path} in clear");
        }
    }
}
