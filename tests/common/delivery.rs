//! Helpers for the delivery tests: node for the JavaScript side (the seeds' snippets, the
//! official `standardwebhooks` package, `JSON.stringify`), and short ways to ask Herald
//! about an event's deliveries.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::{Received, TestApp, ADMIN_TOKEN};

/// The `i` field of each request's body, in arrival order (`TestApp::publish_numbered`).
pub fn numbers(got: &[Received]) -> Vec<i64> {
    got.iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).expect("a JSON body")["i"]
                .as_i64()
                .expect("a numbered event")
        })
        .collect()
}

/// The most requests that arrived within `window` of one another.
pub fn most_within(got: &[Received], window: Duration) -> usize {
    let mut at: Vec<_> = got.iter().map(|r| r.at).collect();
    at.sort();
    (0..at.len())
        .map(|i| {
            at[i..]
                .iter()
                .take_while(|t| t.duration_since(at[i]) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// `tests/js`: the scripts and their package.json / package-lock.json.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

/// Installs tests/js's locked npm packages if they are missing (a fresh clone). `.ci/run`
/// may do it first; doing it here too keeps `cargo test` enough on a developer's machine.
pub fn ensure_npm_packages() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = js_dir();
    if dir
        .join("node_modules/standardwebhooks/package.json")
        .exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `npm ci` in {} ({e}): install Node.js and npm",
                dir.display()
            )
        });
    assert!(
        status.success(),
        "`npm ci` in {} failed: {status}",
        dir.display()
    );
}

/// Runs `node tests/js/<script>` with `input` as JSON on stdin and returns its JSON output.
pub fn node(script: &str, input: &Value) -> Value {
    ensure_npm_packages();
    let mut child = Command::new("node")
        .arg(js_dir().join(script))
        .current_dir(js_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): these tests need Node.js"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.to_string().as_bytes())
        .expect("write to node");
    drop(stdin);
    let output = child.wait_with_output().expect("node output");
    assert!(
        output.status.success(),
        "node {script} failed: {}",
        output.status
    );
    serde_json::from_slice(&output.stdout).expect("node printed JSON")
}

/// What node's JSON.stringify(JSON.parse(text)) gives for each text (None where it throws).
pub fn js_stringify(texts: &[String]) -> Vec<Option<String>> {
    let out = node("stringify.cjs", &serde_json::json!(texts));
    serde_json::from_value(out).expect("array of strings")
}

/// The input of verify.mjs for one captured request.
pub fn verify_case(r: &Received, secret: &str, previous: Option<&str>, prefix: &str) -> Value {
    serde_json::json!({
        "body": r.body,
        "headers": r.headers,
        "secret": secret,
        "previous": previous,
        "prefix": prefix,
    })
}

/// Publishes `text` exactly as given (no re-serialisation on our side).
pub fn publish_raw(app: &TestApp, text: &str) -> String {
    let (status, body) = app.call("POST", "/api/v1/events", Some(ADMIN_TOKEN), Some(text));
    assert_eq!(status, 202, "publishing {text}: {body}");
    body["data"]["id"].as_str().expect("event id").to_string()
}

/// The (single) delivery of an event, with its attempt log.
pub fn delivery_of_event(app: &TestApp, event_id: &str) -> Value {
    let (status, body) = app.admin("GET", &format!("/api/v1/events/{event_id}"), None);
    assert_eq!(status, 200, "{body}");
    let deliveries = body["data"]["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 1, "{body}");
    delivery(app, deliveries[0]["id"].as_i64().expect("delivery id"))
}

pub fn delivery(app: &TestApp, id: i64) -> Value {
    let (status, body) = app.admin("GET", &format!("/api/v1/deliveries/{id}"), None);
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// Waits until delivery `id` has `status` and returns it.
pub fn wait_delivery_status(app: &TestApp, id: i64, status: &str, timeout: Duration) -> Value {
    app.wait_for(timeout, &format!("delivery {id} to be {status}"), || {
        let d = delivery(app, id);
        (d["status"] == status).then_some(d)
    })
}

/// The status codes of a delivery's attempts, in order (None for a network error).
pub fn attempt_codes(delivery: &Value) -> Vec<Option<i64>> {
    delivery["attempt_log"]
        .as_array()
        .expect("attempt_log")
        .iter()
        .map(|a| a["status_code"].as_i64())
        .collect()
}

/// A request header the test expects to be there.
pub fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {name} header in {r:?}"))
}

/// The requests that carried `webhook-id: <event_id>`.
pub fn with_id<'a>(got: &'a [Received], event_id: &str) -> Vec<&'a Received> {
    got.iter()
        .filter(|r| r.headers.get("webhook-id").map(String::as_str) == Some(event_id))
        .collect()
}

/// Time between two arrivals.
pub fn gap(a: &Received, b: &Received) -> Duration {
    b.at.duration_since(a.at)
}
