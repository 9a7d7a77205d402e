//! The client libraries in `sdk/` against the real binary: each suite (`node --test` for
//! `sdk/js`, pytest for `sdk/python`) runs as a child process with the address of a Herald
//! started here on a loopback port, and must exit 0. The suites exercise every method,
//! the errors, pagination, idempotent publishes, a delivery to a receiver of their own on
//! 127.0.0.1 checked with their `verify` and the official `standardwebhooks` library, the
//! seed's example, and a coverage check against `/api/v1/openapi.json`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::delivery::ensure_npm_packages;
use common::{TestApp, ADMIN_TOKEN};

fn sdk_dir(language: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sdk")
        .join(language)
}

/// A Herald for one suite: a short retry schedule so a failing delivery ends `failed`
/// within the test (the suites' recover checks need one).
fn spawn_for_suite() -> TestApp {
    TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "100ms")])
}

/// The environment a suite reads; nothing of the developer's own Herald leaks in.
fn suite_command(program: &str, dir: &Path, app: &TestApp) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("HERALD_TEST_URL", app.url(""))
        .env("HERALD_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("HERALD_API_KEY")
        .env_remove("HERALD_BASE_URL")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null());
    cmd
}

fn assert_passed(what: &str, output: std::io::Result<Output>) {
    let output = output.unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Shown with `cargo test -- --nocapture`: the suite's own summary.
    println!("{what}:\n{stdout}{stderr}");
}

/// Installs sdk/js's locked dev dependencies (the TypeScript compiler) when missing, as
/// `ensure_npm_packages` does for tests/js.
fn ensure_sdk_js_packages(dir: &Path) {
    if dir.join("node_modules/typescript/package.json").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `npm ci` in {} ({e})", dir.display()));
    assert!(status.success(), "`npm ci` in {} failed", dir.display());
}

#[test]
fn javascript_client_library_suite() {
    ensure_npm_packages();
    let dir = sdk_dir("js");
    ensure_sdk_js_packages(&dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("test"))
        .expect("sdk/js/test")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "test files in sdk/js/test: {files:?}");
    let app = spawn_for_suite();
    let output = suite_command("node", &dir, &app)
        .arg("--test")
        .args(&files)
        .output();
    assert_passed("node --test sdk/js/test", output);
}

/// The Python to run the suite with: `HERALD_SDK_PYTHON` (the virtualenv `.ci/run` makes
/// under target/ with requirements-test.txt installed), else `python3` on the PATH.
fn sdk_python() -> String {
    std::env::var("HERALD_SDK_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn python_client_library_suite() {
    let dir = sdk_dir("python");
    let python = sdk_python();
    let has_pytest = Command::new(&python)
        .args(["-c", "import pytest, standardwebhooks"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_pytest && std::env::var_os("HERALD_REQUIRE_SDK_PYTEST").is_some() {
        panic!("HERALD_REQUIRE_SDK_PYTEST is set but {python} lacks pytest or standardwebhooks (see .ci/run)");
    }
    let app = spawn_for_suite();
    let mut cmd = suite_command(&python, &dir, &app);
    cmd.env("PYTHONPATH", &dir)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let what = if has_pytest {
        cmd.args(["-m", "pytest", "-p", "no:cacheprovider", "-rs", "tests"]);
        "python -m pytest sdk/python/tests"
    } else {
        // Without pytest the same unittest classes run under the standard library's runner.
        cmd.args(["-m", "unittest", "discover", "-s", "tests", "-t", "tests"]);
        "python -m unittest discover sdk/python/tests"
    };
    assert_passed(what, cmd.output());
}

/// `pip install sdk/python` builds in place (setuptools' build/ and *.egg-info); those stay
/// out of `git status`.
#[test]
fn installing_the_python_sdk_leaves_nothing_untracked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(output) = Command::new("git")
        .current_dir(root)
        .args(["check-ignore", "--no-index"])
        .args([
            "sdk/python/build/lib/herald_webhooks/__init__.py",
            "sdk/python/herald_webhooks.egg-info/PKG-INFO",
        ])
        .output()
    else {
        eprintln!("SKIPPED: no git");
        return;
    };
    let ignored = String::from_utf8_lossy(&output.stdout);
    assert_eq!(ignored.lines().count(), 2, "not ignored: {ignored}");
}
