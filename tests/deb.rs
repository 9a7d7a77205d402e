//! The Debian package (`cargo deb`, `[package.metadata.deb]` in Cargo.toml): built from the
//! test's binary, checked by lintian, then installed on this machine with dpkg, started,
//! used to publish and deliver to a receiver on loopback, upgraded in place (token, config
//! and data kept), removed (data kept) and purged (data, config and user gone).
//!
//! It installs a system package, so it runs only where that is wanted: as root with
//! `HERALD_REQUIRE_DEB=1` (`.ci/run` sets it on its throwaway machine); otherwise it says it
//! is skipped. The machine has no systemd running (a container), so the test starts
//! `/usr/bin/herald` itself the way the unit does: as the `herald` user, on
//! /etc/herald/herald.toml, with the token from /etc/herald/admin.env.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Receiver, Reply};
use serde_json::{json, Value};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the package with `cargo deb --no-build` around the test's own binary: it is
/// copied to where cargo-deb looks (`<target dir>/release/herald`) in a target directory of
/// the test's, so the checkout's target/release is neither needed nor touched.
fn build_deb(work: &Path, deb_version: &str) -> PathBuf {
    let target = work.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_herald"), target.join("release/herald")).unwrap();
    let deb = work.join(format!("herald_{deb_version}_amd64.deb"));
    run(Command::new("cargo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "deb",
            "--no-build",
            "--locked",
            "--fast",
            "--deb-version",
            deb_version,
        ])
        .arg("--output")
        .arg(&deb));
    assert!(deb.exists(), "{deb:?}");
    deb
}

/// Runs /usr/bin/herald as the unit would, until dropped.
struct Installed {
    child: Child,
    addr: String,
    agent: ureq::Agent,
    token: String,
}

impl Installed {
    fn start() -> Installed {
        let env = std::fs::read_to_string("/etc/herald/admin.env").unwrap();
        let token = env
            .trim()
            .strip_prefix("HERALD_ADMIN_TOKEN=")
            .unwrap()
            .to_string();
        let mut child = Command::new("setpriv")
            .args(["--reuid=herald", "--regid=herald", "--init-groups", "--"])
            .args([
                "/usr/bin/herald",
                "serve",
                "--config",
                "/etc/herald/herald.toml",
            ])
            .args(["--listen", "127.0.0.1:0"])
            .current_dir("/")
            .env("HERALD_ADMIN_TOKEN", &token)
            .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the installed herald exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("Herald listening on http://") {
                break rest.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Installed {
            child,
            addr,
            agent,
            token,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}{}", self.addr, path);
        let auth = format!("Bearer {}", self.token);
        let response = match body {
            Some(b) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(b.to_string()),
            None if method == "GET" => self.agent.get(&url).header("authorization", &auth).call(),
            None => panic!("{method} without a body"),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip_reason() -> Option<String> {
    if std::env::var_os("HERALD_REQUIRE_DEB").is_none() {
        return Some(
            "skipped: installs a system package; set HERALD_REQUIRE_DEB=1 as root on a throwaway machine (bash .ci/run does)".into(),
        );
    }
    let uid = Command::new("id").arg("-u").output().map(|o| stdout(&o));
    if uid.ok().as_deref().map(str::trim) != Some("0") {
        panic!("HERALD_REQUIRE_DEB is set but the test does not run as root");
    }
    None
}

#[test]
fn the_deb_builds_passes_lintian_installs_delivers_upgrades_and_purges() {
    if let Some(reason) = skip_reason() {
        eprintln!("{reason}");
        return;
    }
    // A previous run's leftovers would hide what this one installs.
    let _ = Command::new("dpkg").args(["--purge", "herald"]).output();
    let work = tempfile::tempdir().unwrap();
    let deb = build_deb(work.path(), VERSION);
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("herald_{VERSION}_amd64.deb")
    );

    // The changelog's newest entry is this version (lintian wants one; a version bump
    // without an entry would ship a stale one).
    let changelog = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/debian/changelog"
    ))
    .unwrap();
    assert!(
        changelog.starts_with(&format!("herald ({VERSION}) ")),
        "add a dist/debian/changelog entry for {VERSION}"
    );

    // What is in it.
    let contents = stdout(&run(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    for path in [
        "./usr/bin/herald",
        "./usr/lib/systemd/system/herald.service",
        "./etc/herald/herald.toml",
        "./usr/share/doc/herald/copyright",
    ] {
        assert!(contents.contains(path), "{path} missing:\n{contents}");
    }
    let info = stdout(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert!(
        info.contains("conffiles") && info.contains("postinst"),
        "{info}"
    );

    // lintian: no errors (warnings are reported, not fatal).
    let lint = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("lintian (apt install lintian)");
    let report = format!("{}{}", stdout(&lint), String::from_utf8_lossy(&lint.stderr));
    eprintln!("lintian:\n{report}");
    assert!(lint.status.success(), "lintian reports errors:\n{report}");
    assert!(!report.lines().any(|l| l.starts_with("E: ")), "{report}");

    // Install: the user, the directories, the token printed once and kept root-only.
    let out = run(Command::new("dpkg").arg("--install").arg(&deb));
    let printed = stdout(&out);
    assert!(user_exists("herald"));
    let env_file = Path::new("/etc/herald/admin.env");
    let meta = std::fs::metadata(env_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    let token_line = std::fs::read_to_string(env_file).unwrap();
    let token = token_line
        .trim()
        .strip_prefix("HERALD_ADMIN_TOKEN=")
        .unwrap();
    assert!(token.starts_with("hadm_") && token.len() >= 40, "{token}");
    assert!(
        printed.contains(token),
        "the token is not printed: {printed}"
    );
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/herald.service").unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/herald.service"))
            .unwrap(),
        "the package's unit is dist/herald.service"
    );
    let data = std::fs::metadata("/var/lib/herald").unwrap();
    assert_eq!(data.permissions().mode() & 0o777, 0o750);

    // Start it, publish, deliver to a receiver on loopback.
    let receiver = Receiver::start(|_, _| Reply::status(200));
    {
        let herald = Installed::start();
        let (status, hook) = herald.call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": receiver.url("/hook"), "events": ["order.*"]})),
        );
        assert_eq!(status, 201, "{hook}");
        let (status, event) = herald.call(
            "POST",
            "/api/v1/events",
            Some(json!({"event": "order.created", "n": 1})),
        );
        assert_eq!(status, 202, "{event}");
        let got = receiver.wait_for("/hook", 1, Duration::from_secs(20));
        assert!(got[0].body.contains(r#""n":1"#) || got[0].body.contains(r#""n": 1"#));
    }
    let db = Path::new("/var/lib/herald/herald.db");
    assert!(db.exists());
    let owner = std::fs::metadata(db).unwrap().uid();
    assert_ne!(owner, 0, "the database belongs to the herald user");

    // Upgrade in place: the token is not printed again, config and data are kept.
    let upgrade = build_deb(work.path(), &format!("{VERSION}+upgrade1"));
    let out = run(Command::new("dpkg").arg("--install").arg(&upgrade));
    assert!(!stdout(&out).contains(token), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(env_file).unwrap(), token_line);
    let status = stdout(&run(Command::new("dpkg-query").args([
        "--show",
        "--showformat=${Version}",
        "herald",
    ])));
    assert_eq!(status, format!("{VERSION}+upgrade1"));
    {
        let herald = Installed::start();
        let (status, events) = herald.call("GET", "/api/v1/events", None);
        assert_eq!(status, 200, "{events}");
        assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
    }

    // Remove: the binary goes, config, token and data stay.
    run(Command::new("dpkg").args(["--remove", "herald"]));
    assert!(!Path::new("/usr/bin/herald").exists());
    assert!(db.exists() && env_file.exists());
    assert!(Path::new("/etc/herald/herald.toml").exists());

    // Purge: everything goes, the user too.
    run(Command::new("dpkg").args(["--purge", "herald"]));
    assert!(!Path::new("/var/lib/herald").exists());
    assert!(!Path::new("/etc/herald").exists());
    assert!(!user_exists("herald"));
}
