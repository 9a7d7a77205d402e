// Security review (issue 10): the OpenAPI document had no schemas, so a fuzzer learned little
// from it. schemathesis now reads `/api/v1/openapi.json` and runs every check against the
// real server: no 5xx, every answer matches the documented status codes, content types and
// schemas, wrong methods get 405 with `Allow`, missing auth gets 401, and so on.
//
// `.ci/run` installs a pinned schemathesis in a virtualenv, names its `st` in
// `HERALD_SCHEMATHESIS` and sets `HERALD_REQUIRE_SCHEMATHESIS=1`, so in CI this test runs;
// elsewhere it is skipped (with a message) when no schemathesis is installed.

use std::process::Command;
use std::time::Instant;

use crate::common::{TestApp, ADMIN_TOKEN};

/// The `st` to run: `HERALD_SCHEMATHESIS`, or `st` on the PATH.
fn schemathesis() -> Option<String> {
    let candidates = std::env::var("HERALD_SCHEMATHESIS")
        .ok()
        .into_iter()
        .chain(["st".to_string(), "schemathesis".to_string()]);
    for candidate in candidates {
        let works = Command::new(&candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return Some(candidate);
        }
    }
    None
}

#[test]
fn schemathesis_finds_nothing() {
    let Some(st) = schemathesis() else {
        if std::env::var_os("HERALD_REQUIRE_SCHEMATHESIS").is_some() {
            panic!("HERALD_REQUIRE_SCHEMATHESIS is set but schemathesis is not installed (see .ci/run)");
        }
        eprintln!(
            "SKIPPED schemathesis_finds_nothing: schemathesis is not installed \
             (pip install schemathesis, or set HERALD_SCHEMATHESIS to its `st`)"
        );
        return;
    };
    // schemathesis sends wrong tokens on purpose (is authentication enforced?); counted,
    // they would lock 127.0.0.1 out after 50 and leave the rest of the run testing 429s.
    let app = TestApp::spawn_with(&[("HERALD_THROTTLE_EXEMPT", "127.0.0.1")]);
    // Something to find: a tenant with a key, a webhook, an event with its delivery.
    let (status, _) = app.admin(
        "POST",
        "/api/v1/tenants",
        Some(serde_json::json!({"id": "acme"})),
    );
    assert_eq!(status, 201);
    let (status, _) = app.admin(
        "POST",
        "/api/v1/tenants/acme/keys",
        Some(serde_json::json!({})),
    );
    assert_eq!(status, 201);
    app.create_webhook("http://127.0.0.1:9/hook", &["*"]);
    app.publish(serde_json::json!({"event": "job.completed", "id": 1}));

    let report = app.dir.path().join("schemathesis-report");
    let started = Instant::now();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/hardening/schemathesis.toml"
    );
    let output = Command::new(&st)
        .current_dir(app.dir.path())
        .args(["--config-file", config])
        .args(["run", &app.url("/api/v1/openapi.json")])
        .args(["--checks", "all"])
        .args(["--max-examples", "60"])
        // Fixed, so a failure reproduces; HERALD_SCHEMATHESIS_SEED explores other inputs.
        .args([
            "--seed",
            &std::env::var("HERALD_SCHEMATHESIS_SEED").unwrap_or("10".into()),
        ])
        // One worker: with two, Hypothesis' shared caches raced (a KeyError inside it, seen
        // once under the full suite's load), failing the run for no fault of the server's.
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .arg("--report-dir")
        .arg(&report)
        .args(["--no-color"])
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "{stdout}\n{stderr}\nschemathesis took {:?}",
        started.elapsed()
    );
    assert!(
        output.status.success(),
        "schemathesis found problems (its output is above)"
    );
    // A run that tested nothing would pass too: make sure it exercised the API.
    // Every operation of the document is selected (34 with replay and the transformation
    // trial; each new route adds one).
    let selected = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Operations:"))
        .and_then(|l| {
            let (selected, total) = l.trim().split_once(" selected / ")?;
            let total = total.strip_suffix(" total")?;
            (selected == total).then(|| selected.parse::<usize>().ok())?
        });
    assert!(
        selected.is_some_and(|n| n >= 34) && stdout.contains("generated"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("Rate limited"),
        "the run hit a throttle:\n{stdout}"
    );
}
