//! Auth to the endpoint (issue 20, item 3), against real receivers that check the
//! `Authorization` header and a real OAuth2 token server run by the test, which counts the
//! token requests it answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::delivery::{delivery, wait_delivery_status};
use crate::common::TestApp;

const WAIT: Duration = Duration::from_secs(20);

/// One request as the test's server saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

type Handler = dyn Fn(&Hit, usize) -> (u16, String) + Send + Sync;

/// A small HTTP/1.1 server on loopback: `handler(hit, n)` answers the n-th request
/// (0-based, all paths) with a status and a JSON body; one request per connection.
pub struct Server {
    pub addr: String,
    pub hits: Arc<Mutex<Vec<Hit>>>,
}

impl Server {
    pub fn start(handler: impl Fn(&Hit, usize) -> (u16, String) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let (seen, handler): (_, Arc<Handler>) = (hits.clone(), Arc::new(handler));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, handler) = (seen.clone(), handler.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let (mut length, mut authorization, mut content_type) = (0, None, None);
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        let (name, value) = h.split_once(':').unwrap_or((&h, ""));
                        let value = value.trim().to_owned();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.parse().unwrap_or(0),
                            "authorization" => authorization = Some(value),
                            "content-type" => content_type = Some(value),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let hit = Hit {
                        path,
                        authorization,
                        content_type,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    let n = {
                        let mut all = seen.lock().unwrap();
                        all.push(hit.clone());
                        all.len() - 1
                    };
                    let (status, text) = handler(&hit, n);
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                });
            }
        });
        Server { addr, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A receiver that answers 200 to `expected` and 401 to anything else.
fn checking_receiver(expected: String) -> Server {
    Server::start(move |hit, _| {
        if hit.authorization.as_deref() == Some(expected.as_str()) {
            (200, "{}".into())
        } else {
            (401, r#"{"error":"who are you"}"#.into())
        }
    })
}

/// A token server: the n-th request (0-based) gets `tok-<n+1>` living `expires_in`
/// seconds, when it authenticates as `client`:`secret`; otherwise 401 invalid_client.
fn token_server(expires_in: u64) -> Server {
    Server::start(move |hit, n| {
        if hit.authorization.as_deref() != Some(basic("herald", "s3cret-client").as_str()) {
            return (401, r#"{"error":"invalid_client"}"#.into());
        }
        let body = json!({
            "access_token": format!("tok-{}", n + 1),
            "token_type": "Bearer",
            "expires_in": expires_in,
        });
        (200, body.to_string())
    })
}

fn create(app: &TestApp, url: &str, event: &str, auth: Value) -> i64 {
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": url, "events": [event], "auth": auth, "retry_schedule": "30s"})),
    );
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_i64().unwrap()
}

fn oauth(token_url: &str) -> Value {
    json!({
        "type": "oauth2_client_credentials",
        "token_url": token_url,
        "client_id": "herald",
        "client_secret": "s3cret-client",
        "scope": "hooks:write",
        "audience": "https://receiver.example",
    })
}

/// Publishes one event of `kind`; returns its delivery's id.
fn publish_one(app: &TestApp, kind: &str) -> i64 {
    let data = app.publish(json!({"event": kind}));
    let id = data["id"].as_str().unwrap().to_owned();
    let (_, body) = app.admin("GET", &format!("/api/v1/events/{id}"), None);
    body["data"]["deliveries"][0]["id"].as_i64().unwrap()
}

#[test]
fn basic_and_bearer_receivers_get_their_authorization_header() {
    let app = TestApp::spawn();
    let basic_rx = checking_receiver(basic("alice", "pa55:word"));
    let bearer_rx = checking_receiver("Bearer static-t0ken".into());
    create(
        &app,
        &basic_rx.url("/b"),
        "auth.basic",
        json!({"type": "basic", "username": "alice", "password": "pa55:word"}),
    );
    create(
        &app,
        &bearer_rx.url("/t"),
        "auth.bearer",
        json!({"type": "bearer", "token": "static-t0ken"}),
    );
    let d1 = publish_one(&app, "auth.basic");
    let d2 = publish_one(&app, "auth.bearer");
    for d in [d1, d2] {
        let done = wait_delivery_status(&app, d, "succeeded", WAIT);
        assert_eq!(done["attempts"], 1, "{done}");
    }
    assert_eq!(basic_rx.count(), 1);
    assert_eq!(bearer_rx.count(), 1);
}

#[test]
fn one_oauth2_token_serves_many_deliveries() {
    let app = TestApp::spawn();
    let tokens = token_server(3600);
    let rx = checking_receiver("Bearer tok-1".into());
    create(
        &app,
        &rx.url("/o"),
        "auth.oauth",
        oauth(&tokens.url("/token")),
    );
    app.publish_numbered("auth.oauth", 0, 20);
    app.wait_for(WAIT, "20 deliveries with the token", || {
        (rx.hits()
            .iter()
            .filter(|h| h.authorization.is_some())
            .count()
            >= 20)
            .then_some(())
    });
    assert_eq!(tokens.count(), 1, "one token request for all of them");
    assert!(rx
        .hits()
        .iter()
        .all(|h| h.authorization.as_deref() == Some("Bearer tok-1")));
    // The token request is the RFC 6749 client credentials grant, form-encoded.
    let request = &tokens.hits()[0];
    assert_eq!(request.path, "/token");
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        request.body.contains("grant_type=client_credentials"),
        "{request:?}"
    );
    assert!(request.body.contains("scope=hooks%3Awrite"), "{request:?}");
    assert!(
        request
            .body
            .contains("audience=https%3A%2F%2Freceiver.example"),
        "{request:?}"
    );
}

#[test]
fn an_expired_oauth2_token_is_replaced() {
    let app = TestApp::spawn();
    let tokens = token_server(1);
    // Takes any token the server issued.
    let rx = Server::start(|hit, _| match hit.authorization.as_deref() {
        Some(a) if a.starts_with("Bearer tok-") => (200, "{}".into()),
        _ => (401, "{}".into()),
    });
    create(
        &app,
        &rx.url("/o"),
        "auth.expiry",
        oauth(&tokens.url("/token")),
    );
    let first = publish_one(&app, "auth.expiry");
    wait_delivery_status(&app, first, "succeeded", WAIT);
    assert_eq!(tokens.count(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    let second = publish_one(&app, "auth.expiry");
    wait_delivery_status(&app, second, "succeeded", WAIT);
    assert_eq!(tokens.count(), 2, "the expired token was replaced");
    let seen: Vec<_> = rx.hits().into_iter().map(|h| h.authorization).collect();
    assert_eq!(
        seen,
        [
            Some("Bearer tok-1".to_owned()),
            Some("Bearer tok-2".to_owned())
        ]
    );
}

#[test]
fn a_401_replaces_the_token_once_and_the_retry_succeeds_in_the_same_attempt() {
    let app = TestApp::spawn();
    let tokens = token_server(3600);
    // The first token was revoked early: only the second is accepted.
    let rx = checking_receiver("Bearer tok-2".into());
    create(
        &app,
        &rx.url("/o"),
        "auth.revoked",
        oauth(&tokens.url("/token")),
    );
    let d = publish_one(&app, "auth.revoked");
    let done = wait_delivery_status(&app, d, "succeeded", WAIT);
    assert_eq!(done["attempts"], 1, "one attempt, two requests: {done}");
    assert_eq!(tokens.count(), 2);
    assert_eq!(rx.count(), 2);

    // A receiver that refuses every token: refreshed exactly once per attempt, then the
    // attempt fails with the receiver's 401.
    let tokens = token_server(3600);
    let rx = checking_receiver("never".into());
    create(
        &app,
        &rx.url("/o"),
        "auth.refused",
        oauth(&tokens.url("/token")),
    );
    let d = publish_one(&app, "auth.refused");
    let failed = app.wait_for(WAIT, "the failed attempt", || {
        let d = delivery(&app, d);
        (d["attempts"] == 1).then_some(d)
    });
    assert_eq!(failed["attempt_log"][0]["status_code"], 401, "{failed}");
    assert_eq!(tokens.count(), 2, "one fetch, one refresh");
    assert_eq!(rx.count(), 2);
}

#[test]
fn a_token_endpoint_that_refuses_fails_the_attempt_with_its_error() {
    let app = TestApp::spawn();
    let tokens = Server::start(|_, _| (400, r#"{"error":"invalid_client"}"#.into()));
    let rx = checking_receiver("never".into());
    let endpoint = create(
        &app,
        &rx.url("/o"),
        "auth.bad",
        oauth(&tokens.url("/token")),
    );
    let d = publish_one(&app, "auth.bad");
    let failed = app.wait_for(WAIT, "the failed attempt", || {
        let d = delivery(&app, d);
        (d["attempts"] == 1).then_some(d)
    });
    let attempt = &failed["attempt_log"][0];
    assert_eq!(
        attempt["error"], "token endpoint answered 400: invalid_client",
        "{failed}"
    );
    assert!(attempt["status_code"].is_null());
    assert_eq!(rx.count(), 0, "nothing reached the receiver");
    // Counted like any failure: the endpoint's failure record shows it.
    let (_, e) = app.admin("GET", &format!("/api/v1/webhooks/{endpoint}"), None);
    assert_eq!(e["data"]["circuit"]["consecutive_failures"], 1, "{e}");
    // The secret is not in the attempt.
    assert!(!failed.to_string().contains("s3cret-client"));
}

/// The token URL passed at create (private targets allowed then); once they are not, the
/// guarded resolver refuses the token request at connect time.
#[test]
fn a_token_url_the_ssrf_guard_refuses_at_connect_time_fails_the_attempt() {
    let mut app = TestApp::spawn();
    let tokens = token_server(3600);
    let rx = checking_receiver("Bearer tok-1".into());
    create(
        &app,
        &rx.url("/o"),
        "auth.ssrf",
        oauth(&tokens.url("/token")),
    );
    for (k, v) in app.env.iter_mut() {
        if k == "HERALD_ALLOW_PRIVATE_TARGETS" {
            *v = "false".into();
        }
    }
    app.restart();
    let d = publish_one(&app, "auth.ssrf");
    let failed = app.wait_for(WAIT, "the refused attempt", || {
        let d = delivery(&app, d);
        (d["attempts"] == 1).then_some(d)
    });
    let error = failed["attempt_log"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.starts_with("token endpoint: host not found"),
        "{error}"
    );
    assert_eq!(tokens.count(), 0, "the token server was never reached");
    assert_eq!(rx.count(), 0);
}
