//! `/api/v1/openapi.json` judged by the tools its users run, none of them ours:
//! `openapi-spec-validator` (PyPI), Redocly's linter with its recommended rules (npm
//! `@redocly/cli`), and a client generated from the document by `openapi-typescript`,
//! compiled with `tsc --strict` and used against this live Herald: it creates a webhook,
//! publishes, and reads the delivery and its attempts.
//!
//! `.ci/run` installs the validator in target/openapi-venv (named in
//! `HERALD_OPENAPI_SPEC_VALIDATOR`), the npm tools in tests/openapi/node_modules (locked),
//! and sets `HERALD_REQUIRE_OPENAPI_TOOLS=1`, so in CI nothing here is skipped; elsewhere a
//! missing tool skips its test with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use crate::common::{Receiver, TestApp, ADMIN_TOKEN};

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi")
}

fn required() -> bool {
    std::env::var_os("HERALD_REQUIRE_OPENAPI_TOOLS").is_some()
}

fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "HERALD_REQUIRE_OPENAPI_TOOLS is set but {why} (see .ci/run)"
    );
    eprintln!("SKIPPED {test}: {why}");
}

/// tests/openapi/node_modules/.bin/<tool>, installed from the lock file when missing (and
/// npm is there); `None` when it cannot be had.
fn npm_tool(tool: &str) -> Option<PathBuf> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = tools_dir().join("node_modules/.bin").join(tool);
    if !bin.exists() {
        let _ = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(tools_dir())
            .stdout(Stdio::null())
            .status();
    }
    bin.exists().then_some(bin)
}

/// The document as this Herald serves it, written to `dir/openapi.json`.
fn document(app: &TestApp) -> PathBuf {
    let (status, _, text) = app.call_raw("GET", "/api/v1/openapi.json", None, &[], None);
    assert_eq!(status, 200);
    let path = app.dir.path().join("openapi.json");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(what: &str, cmd: &mut Command) -> Output {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    println!(
        "{what}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn assert_ok(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn openapi_spec_validator_accepts_the_document() {
    let validator = std::env::var("HERALD_OPENAPI_SPEC_VALIDATOR")
        .unwrap_or_else(|_| "openapi-spec-validator".into());
    let works = Command::new(&validator)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        return skip(
            "openapi_spec_validator_accepts_the_document",
            "openapi-spec-validator is not installed (or set HERALD_OPENAPI_SPEC_VALIDATOR)",
        );
    }
    let app = TestApp::spawn();
    let doc = document(&app);
    let output = run("openapi-spec-validator", Command::new(&validator).arg(&doc));
    assert_ok("openapi-spec-validator", &output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK"));
}

#[test]
fn redocly_lint_recommended_finds_no_errors() {
    let Some(redocly) = npm_tool("redocly") else {
        return skip(
            "redocly_lint_recommended_finds_no_errors",
            "tests/openapi/node_modules has no redocly (npm ci there)",
        );
    };
    let app = TestApp::spawn();
    let doc = document(&app);
    let output = run(
        "redocly lint",
        Command::new(redocly)
            .current_dir(app.dir.path())
            .args(["lint", "--extends=recommended", "--format=stylish"])
            .arg(&doc)
            // No telemetry, no update check: the network reaches only package registries.
            .env("REDOCLY_TELEMETRY", "off")
            .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true"),
    );
    assert_ok("redocly lint", &output);
    let said = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("Woohoo") || said.contains("0 errors") || said.contains("is valid"),
        "{said}"
    );
}

#[test]
fn a_generated_typescript_client_creates_publishes_and_reads_the_delivery() {
    let (Some(generator), Some(tsc)) = (npm_tool("openapi-typescript"), npm_tool("tsc")) else {
        return skip(
            "a_generated_typescript_client_creates_publishes_and_reads_the_delivery",
            "tests/openapi/node_modules lacks openapi-typescript or tsc (npm ci there)",
        );
    };
    let app = TestApp::spawn();
    let receiver = Receiver::ok();
    let doc = document(&app);
    let work = app.dir.path().join("client");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(tools_dir().join("client.mts"), work.join("client.mts")).unwrap();

    let generated = run(
        "openapi-typescript",
        Command::new(generator)
            .arg(&doc)
            .arg("--output")
            .arg(work.join("herald.d.ts")),
    );
    assert_ok("openapi-typescript", &generated);
    let compiled = run(
        "tsc",
        Command::new(tsc).current_dir(&work).args([
            "--strict",
            "--noEmitOnError",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            "client.mts",
        ]),
    );
    assert_ok("tsc", &compiled);

    let ran = run(
        "node client.mjs",
        Command::new("node")
            .current_dir(&work)
            .arg("client.mjs")
            .arg(app.url(""))
            .arg(ADMIN_TOKEN)
            .arg(receiver.url("/generated"))
            .env("NO_PROXY", "127.0.0.1,localhost"),
    );
    assert_ok("the generated client", &ran);
    let answer: serde_json::Value =
        serde_json::from_slice(&ran.stdout).expect("the client prints JSON");
    assert_eq!(answer["delivery"], "succeeded", "{answer}");
    assert_eq!(answer["attempts"], serde_json::json!([200]), "{answer}");
    // And the receiver did get the event the client published.
    let got = receiver.on_path("/generated");
    assert_eq!(got.len(), 1);
    assert!(got[0].body.contains("\"order_id\":42"), "{}", got[0].body);
}
