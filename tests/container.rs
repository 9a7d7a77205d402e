//! The container image (Containerfile, built by dist/container.sh from the test's binary)
//! with podman: it holds only the binary, the shared objects it loads and two small
//! /etc files; it runs as an unprivileged user; it starts and serves /healthz; what it
//! wrote to its /data volume is still there after the container is restarted.
//!
//! Skipped (saying so) without podman, unless `HERALD_REQUIRE_PODMAN` is set (`.ci/run`).
//! Runs with `--runtime runc` and explicit ulimits: the CI machine's crun refuses its
//! hybrid cgroup setup, and the default ulimits there are not inherited.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TOKEN: &str = "container-admin-token-0123456789abcdef";

fn podman(args: &[&str]) -> Output {
    let out = Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e}"));
    assert!(
        out.status.success(),
        "podman {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Removes what the test made (container, volume, image) however it ends.
struct Cleanup {
    name: String,
    volume: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("podman").args(args).output();
        };
        quiet(&["rm", "--force", "--ignore", &self.name]);
        quiet(&["volume", "rm", "--force", &self.volume]);
        quiet(&["rmi", "--force", &self.image]);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(agent: &ureq::Agent, url: &str) -> Option<(u16, String)> {
    let mut response = agent
        .get(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .call()
        .ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    Some((response.status().as_u16(), text))
}

fn wait_healthy(agent: &ureq::Agent, base: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if get(agent, &format!("{base}/healthz")).is_some_and(|(s, _)| s == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = podman(&["logs", name]);
    panic!(
        "the container never answered /healthz: {}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
}

/// The files of the image, from a container created (not started) on it.
fn image_files(image: &str, name: &str) -> Vec<String> {
    let probe = format!("{name}-files");
    podman(&["create", "--name", &probe, image]);
    let mut export = Command::new("podman")
        .args(["export", &probe])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut tar = Vec::new();
    export.stdout.take().unwrap().read_to_end(&mut tar).unwrap();
    export.wait().unwrap();
    podman(&["rm", "--volumes", &probe]);
    let list = Command::new("tar")
        .args(["-t", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&tar)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(|l| l.trim_start_matches("./").to_owned())
        .collect()
}

#[test]
fn the_image_holds_only_herald_runs_unprivileged_and_keeps_its_data() {
    if Command::new("podman").arg("--version").output().is_err() {
        if std::env::var_os("HERALD_REQUIRE_PODMAN").is_some() {
            panic!("HERALD_REQUIRE_PODMAN is set but podman is not installed");
        }
        eprintln!("skipped: podman is not installed (apt install podman runc)");
        return;
    }
    let id = format!("{:08x}", rand::random::<u32>());
    let cleanup = Cleanup {
        name: format!("herald-test-{id}"),
        volume: format!("herald-test-data-{id}"),
        image: format!("localhost/herald-test:{id}"),
    };
    let build = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/container.sh"))
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_herald"),
            "--tag",
            &cleanup.image,
        ])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "dist/container.sh: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );

    // Only the binary, what it links, and the two /etc files naming its user.
    let files = image_files(&cleanup.image, &cleanup.name);
    assert!(files.contains(&"usr/bin/herald".to_string()), "{files:?}");
    for file in &files {
        let allowed = file == "usr/bin/herald"
            || file == "etc/passwd"
            || file == "etc/group"
            || file.contains(".so")
            // podman's own mount points and files in every container.
            || ["etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv"]
                .contains(&file.as_str());
        assert!(allowed, "unexpected file in the image: {file} ({files:?})");
    }
    let user = podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}",
        &cleanup.image,
    ]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "10001:10001");

    podman(&["volume", "create", &cleanup.volume]);
    let port = free_port();
    let listen = format!("HERALD_LISTEN=127.0.0.1:{port}");
    let token = format!("HERALD_ADMIN_TOKEN={TOKEN}");
    let volume = format!("{}:/data", cleanup.volume);
    podman(&[
        "run",
        "--detach",
        "--name",
        &cleanup.name,
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "--network",
        "host",
        "--env",
        &listen,
        "--env",
        &token,
        "--volume",
        &volume,
        &cleanup.image,
    ]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&agent, &base, &cleanup.name);

    // Write something, restart the container, read it back.
    let created = agent
        .post(format!("{base}/api/v1/tenants"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .send(r#"{"id": "kept", "name": "Kept across restarts"}"#)
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    podman(&["restart", "--time", "10", &cleanup.name]);
    wait_healthy(&agent, &base, &cleanup.name);
    let (status, body) = get(&agent, &format!("{base}/api/v1/tenants/kept")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Kept across restarts"), "{body}");

    // The process inside is not root.
    let top = podman(&["top", &cleanup.name, "user", "comm"]);
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("herald") && !top.contains("root"), "{top}");
}
