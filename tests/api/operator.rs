//! The rough edges a new operator hit (issue 11): log output, error messages that say how
//! to fix things, `signature` spelled as the config file spells it, HEAD, and a CLI that
//! finds the real database instead of creating an empty one.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::{TestApp, ADMIN_TOKEN};

/// Starts `herald serve` with stderr captured, reads log lines until "ready", stops it.
fn serve_log_lines(env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("herald.db"))
        .env_remove("HERALD_LOG_FORMAT")
        .env("HERALD_LOG", "info")
        .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("ready");
        lines.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    lines
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let lines = serve_log_lines(&[]);
    assert!(lines.iter().any(|l| l.contains("ready")), "{lines:?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
    }
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let lines = serve_log_lines(&[("HERALD_LOG_FORMAT", "json")]);
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            !line.contains('\u{1b}') && !line.contains("\\u001b"),
            "{line:?}"
        );
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{v}");
    }
    assert!(lines.iter().any(|l| l.contains("\"ready\"")), "{lines:?}");
}

#[test]
fn private_address_refusal_says_how_to_allow_it() {
    let app = TestApp::spawn_with(&[("HERALD_ALLOW_PRIVATE_TARGETS", "false")]);
    let (status, body) = app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": "http://10.0.0.8/x", "events": ["a"]})),
    );
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("allow_private_targets"), "{message}");
    assert!(
        message.contains("HERALD_ALLOW_PRIVATE_TARGETS"),
        "{message}"
    );
}

#[test]
fn signature_is_a_list_or_a_string() {
    let app = TestApp::spawn();
    let cases: &[(Value, u16, Option<Value>)] = &[
        (json!("body"), 201, Some(json!(["body"]))),
        (
            json!("standard,body"),
            201,
            Some(json!(["standard", "body"])),
        ),
        (
            json!(" standard , timestamped "),
            201,
            Some(json!(["standard", "timestamped"])),
        ),
        (
            json!(["timestamped", "body"]),
            201,
            Some(json!(["timestamped", "body"])),
        ),
        (json!("md5"), 400, None),
        (json!("standard,,body"), 400, None),
        (json!(7), 400, None),
        (json!([1]), 400, None),
    ];
    for (signature, want, stored) in cases {
        let (status, body) = app.admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/x", "events": ["a"], "signature": signature})),
        );
        assert_eq!(status, *want, "{signature}: {body}");
        if let Some(stored) = stored {
            assert_eq!(&body["data"]["signature"], stored, "{signature}: {body}");
        } else {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("signature"),
                "{body}"
            );
        }
    }
    let created = app.create_webhook("http://127.0.0.1:9/y", &["a"]);
    let path = format!("/api/v1/webhooks/{}", created["id"]);
    let (status, body) = app.admin("PATCH", &path, Some(json!({"signature": "body"})));
    assert_eq!(
        (status, &body["data"]["signature"]),
        (200, &json!(["body"])),
        "{body}"
    );
}

#[test]
fn head_answers_like_get_without_a_body() {
    let app = TestApp::spawn();
    for path in ["/healthz", "/metrics", "/api/v1/webhooks", "/admin/login"] {
        let (get, get_headers, get_body) = app.call_raw("GET", path, Some(ADMIN_TOKEN), &[], None);
        let (head, head_headers, head_body) =
            app.call_raw("HEAD", path, Some(ADMIN_TOKEN), &[], None);
        assert_eq!(head, get, "{path}");
        assert!(!get_body.is_empty(), "{path}");
        assert!(head_body.is_empty(), "{path}: {head_body}");
        assert_eq!(
            head_headers.get("content-type"),
            get_headers.get("content-type"),
            "{path}"
        );
    }
    // HEAD is not a way around a method a route does not have.
    let (status, _, _) = app.call_raw("HEAD", "/api/v1/events/batch", Some(ADMIN_TOKEN), &[], None);
    assert_eq!(status, 405);
}

#[test]
fn cli_commands_refuse_to_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.db");
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["tenant", "create", "acme", "--db"])
        .arg(&missing)
        .env_remove("HERALD_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(!missing.exists(), "the CLI created {}", missing.display());
}

#[test]
fn cli_finds_its_config_through_herald_config() {
    let app = TestApp::spawn();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, format!("db = {:?}\n", app.db_arg())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["tenant", "create", "found-it"])
        .current_dir(dir.path())
        .envs(
            app.env
                .iter()
                .filter(|(k, _)| k == "HERALD_SECRET_KEY_FILE")
                .cloned(),
        )
        .env_remove("HERALD_DB")
        .env("HERALD_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = app.admin("GET", "/api/v1/tenants/found-it", None);
    assert_eq!(status, 200);
    assert!(!dir.path().join("herald.db").exists());
}

/// `herald serve` that cannot start says which setting to change, and leaves nothing behind
/// when it is the port: no database, no key file, no admin token printed and then lost.
#[test]
fn serve_refusals_name_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    struct Case {
        what: &'static str,
        listen: String,
        /// The db path, relative to the temp dir.
        db: &'static str,
        config: Option<&'static str>,
        says: Vec<String>,
        not_said: &'static [&'static str],
    }
    let cases = [
        Case {
            what: "port in use",
            listen: taken.clone(),
            db: "herald.db",
            config: None,
            says: vec![taken.clone(), "--listen".into(), "`listen`".into()],
            not_said: &[],
        },
        Case {
            what: "db in a missing directory",
            listen: "127.0.0.1:0".into(),
            db: "no/such/dir/herald.db",
            config: None,
            says: vec![
                "no/such/dir/herald.db".into(),
                "does not exist".into(),
                "--db".into(),
            ],
            not_said: &["herald.key"],
        },
        Case {
            what: "a bad value in the config file",
            listen: "127.0.0.1:0".into(),
            db: "herald.db",
            config: Some("retry_schedule = \"soon\"\n"),
            says: vec!["herald.toml".into(), "key `retry_schedule`".into()],
            not_said: &[],
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve");
        if let Some(text) = case.config {
            let path = dir.path().join("herald.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.args(["--listen", &case.listen, "--db"])
            .arg(dir.path().join(case.db))
            .env_remove("HERALD_CONFIG")
            .env_remove("HERALD_ADMIN_TOKEN")
            .env_remove("HERALD_SECRET_KEY")
            .env_remove("HERALD_SECRET_KEY_FILE")
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: started\n{stdout}", case.what);
        for says in &case.says {
            assert!(
                stderr.contains(says.as_str()),
                "{}: {says:?} not in {stderr}",
                case.what
            );
        }
        for not in case.not_said {
            assert!(!stderr.contains(not), "{}: {not:?} in {stderr}", case.what);
        }
        assert!(
            !stdout.to_lowercase().contains("token"),
            "{}: {stdout}",
            case.what
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "herald.toml")
            .collect();
        assert!(left.is_empty(), "{}: left {left:?}", case.what);
    }
}
