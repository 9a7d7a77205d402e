// Tenants, API keys and isolation; the admin token; the CLI.

use std::time::Duration;

use crate::common::{Receiver, TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};

#[test]
fn tenant_keys_see_only_their_tenant() {
    let app = TestApp::spawn();
    for id in ["acme", "globex"] {
        let (status, body) = app.admin(
            "POST",
            "/api/v1/tenants",
            Some(json!({"id": id, "name": id.to_uppercase()})),
        );
        assert_eq!(status, 201, "{body}");
    }
    let key = |tenant: &str| {
        let (status, body) = app.admin(
            "POST",
            &format!("/api/v1/tenants/{tenant}/keys"),
            Some(json!({})),
        );
        assert_eq!(status, 201, "{body}");
        assert!(body["data"]["token"].as_str().unwrap().starts_with("hk_"));
        (
            body["data"]["id"].as_i64().unwrap(),
            body["data"]["token"].as_str().unwrap().to_string(),
        )
    };
    let (acme_key_id, acme) = key("acme");
    let (_, globex) = key("globex");
    let create = |token: &str, url: &str| {
        let body = json!({"url": url, "events": ["*"]}).to_string();
        let (status, b) = app.call("POST", "/api/v1/webhooks", Some(token), Some(&body));
        assert_eq!(status, 201, "{b}");
        b["data"]["id"].as_i64().unwrap()
    };
    // Port 9 on loopback refuses connections: deliveries fail fast and stay on this machine.
    let acme_hook = create(&acme, "http://127.0.0.1:9/acme");
    let globex_hook = create(&globex, "http://127.0.0.1:9/globex");

    let (_, list) = app.call("GET", "/api/v1/webhooks", Some(&acme), None);
    let urls: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, vec!["http://127.0.0.1:9/acme"]);
    let (status, _) = app.call(
        "GET",
        &format!("/api/v1/webhooks/{globex_hook}"),
        Some(&acme),
        None,
    );
    assert_eq!(
        status, 404,
        "another tenant's webhook does not exist for this key"
    );
    let (status, _) = app.call(
        "DELETE",
        &format!("/api/v1/webhooks/{globex_hook}"),
        Some(&acme),
        None,
    );
    assert_eq!(status, 404);
    let (status, body) = app.call("GET", "/api/v1/webhooks?tenant=globex", Some(&acme), None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = app.call("GET", "/api/v1/tenants", Some(&acme), None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // The admin acts on `default` unless it names a tenant.
    let (_, list) = app.admin("GET", "/api/v1/webhooks", None);
    assert_eq!(list["data"], json!([]));
    let (_, list) = app.admin("GET", "/api/v1/webhooks?tenant=acme", None);
    assert_eq!(list["data"][0]["id"], acme_hook);
    let (_, _, text) = app.call_raw(
        "GET",
        "/api/v1/webhooks",
        Some(ADMIN_TOKEN),
        &[("X-Herald-Tenant", "globex")],
        None,
    );
    assert!(text.contains("/globex"), "{text}");
    let (status, _) = app.admin("GET", "/api/v1/webhooks?tenant=nobody", None);
    assert_eq!(status, 404);

    // Events published with one key are invisible to the other.
    let (status, _) = app.call(
        "POST",
        "/api/v1/events",
        Some(&acme),
        Some(r#"{"event":"x.y"}"#),
    );
    assert_eq!(status, 202);
    let (_, events) = app.call("GET", "/api/v1/events", Some(&globex), None);
    assert_eq!(events["data"], json!([]));

    // Revoked keys stop working; keys are stored only as hashes.
    let (status, body) = app.admin(
        "DELETE",
        &format!("/api/v1/tenants/acme/keys/{acme_key_id}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["revoked_at"].is_string());
    let (status, body) = app.call("GET", "/api/v1/webhooks", Some(&acme), None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) FROM api_keys WHERE key_hash = '{acme}'"
        )),
        0
    );
}

#[test]
fn tenants_and_event_types_crud() {
    let app = TestApp::spawn();
    let (status, _) = app.admin(
        "POST",
        "/api/v1/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    );
    assert_eq!(status, 201);
    let (status, body) = app.admin("POST", "/api/v1/tenants", Some(json!({"id": "acme"})));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, body) = app.admin(
        "PATCH",
        "/api/v1/tenants/acme",
        Some(json!({"name": "Acme Inc"})),
    );
    assert_eq!(
        (status, body["data"]["name"].as_str()),
        (200, Some("Acme Inc"))
    );
    let (_, list) = app.admin("GET", "/api/v1/tenants", None);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["acme", "default"]);
    let (status, _) = app.admin("DELETE", "/api/v1/tenants/default", None);
    assert_eq!(status, 409, "the default tenant always exists");
    let (status, _) = app.admin("DELETE", "/api/v1/tenants/acme", None);
    assert_eq!(status, 200);
    let (status, _) = app.admin("GET", "/api/v1/tenants/acme", None);
    assert_eq!(status, 404);

    let (status, body) = app.admin(
        "POST",
        "/api/v1/event-types",
        Some(json!({"name": "job.completed", "description": "A task finished", "example": {"event": "job.completed", "task_id": "t"}})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["example"]["task_id"], "t");
    let (_, list) = app.admin("GET", "/api/v1/event-types", None);
    assert_eq!(list["data"][0]["name"], "job.completed");
    assert!(list["next_cursor"].is_null());
    let (status, _) = app.admin("DELETE", "/api/v1/event-types/job.completed", None);
    assert_eq!(status, 200);
    let (status, _) = app.admin("DELETE", "/api/v1/event-types/job.completed", None);
    assert_eq!(status, 404);
}

#[test]
fn first_start_generates_and_prints_the_admin_token_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("h.db"))
            .env_remove("HERALD_ADMIN_TOKEN")
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut token = None;
        let mut addr = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(t) = line.trim().strip_prefix("hadm_") {
                token = Some(format!("hadm_{t}"));
            }
            if let Some(a) = line.strip_prefix("Herald listening on http://") {
                addr = a.to_string();
                break;
            }
        }
        (child, token, addr)
    };
    let (mut child, token, addr) = start();
    let token = token.expect("the first start prints a token");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let status = |token: &str| {
        agent
            .get(format!("http://{addr}/api/v1/webhooks"))
            .header("authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&token), 200);
    assert_eq!(status("hadm_wrong"), 401);
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, again, addr2) = start();
    assert!(
        again.is_none(),
        "the token is printed only on the first start"
    );
    let agent2: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let code = agent2
        .get(format!("http://{addr2}/api/v1/webhooks"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 200, "the stored hash still accepts the token");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cli_creates_tenants_keys_and_publishes() {
    use std::process::Command;
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let herald = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .arg("--db")
            .arg(app.db_arg())
            // On PostgreSQL the key file is not beside a database file: the app's own.
            .envs(
                app.env
                    .iter()
                    .filter(|(k, _)| k == "HERALD_SECRET_KEY_FILE")
                    .cloned(),
            )
            .env("HERALD_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    herald(&["tenant", "create", "acme", "--name", "Acme Inc"]);
    let key = herald(&["key", "create", "acme"]).trim().to_string();
    let hook = json!({"url": receiver.url("/acme"), "events": ["book.*"]}).to_string();
    let (status, created) = app.call("POST", "/api/v1/webhooks", Some(&key), Some(&hook));
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    assert_eq!(status, 201);
    let out = herald(&[
        "publish",
        "--tenant",
        "acme",
        r#"{"event":"book.completed","data":{"bookId":"b1"}}"#,
    ]);
    let published: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(published["deliveries"], 1);
    // The server notices the CLI's publish on its next poll and delivers it.
    let got = receiver.wait_for("/acme", 1, Duration::from_secs(10));
    assert!(got[0].body.contains(r#""bookId":"b1""#));
    // `herald verify` checks the delivery's signature the way a receiver would.
    let h = |name: &str| got[0].headers[name].clone();
    let verify = |body: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "verify",
                "--scheme",
                "standard",
                "--secret",
                &secret,
                "--id",
                &h("webhook-id"),
            ])
            .args([
                "--timestamp",
                &h("webhook-timestamp"),
                "--signature",
                &h("webhook-signature"),
                body,
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify(&got[0].body), "the real delivery verifies");
    assert!(
        !verify(&got[0].body.replace("b1", "b2")),
        "a changed body does not"
    );
    if crate::common::on_postgres() {
        println!("SQLite only: `herald backup` copies a SQLite file (PostgreSQL has pg_dump)");
        return;
    }
    let backup = app.dir.path().join("backup.db");
    let said = herald(&["backup", backup.to_str().unwrap()]);
    assert!(backup.exists());
    // README's advice (issue 23): the key is backed up too, but never beside the database.
    assert!(said.contains("keep it apart from this backup"), "{said}");
}
