//! install.sh, staged into a temp dir with `--prefix` (no user, no systemd): a first install
//! writes the files and a root-only admin token it prints, the staged binary starts on the
//! staged config and takes that token, a second install keeps it, an uninstall keeps the
//! data, a purge removes it. Plus `bash -n`, shellcheck when present, and the unit's
//! `systemd-analyze security` rating (≤ 2.0) with the sandbox still leaving Herald what it
//! needs.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn install(prefix: &Path, args: &[&str]) -> Output {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"))
        .arg("--prefix")
        .arg(prefix)
        .args(["--binary", env!("CARGO_BIN_EXE_herald")])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn install_sh_and_the_packaging_scripts_parse_and_pass_shellcheck() {
    let dir = env!("CARGO_MANIFEST_DIR");
    for script in [
        "install.sh",
        "dist/container.sh",
        "dist/debian/postinst",
        "dist/debian/postrm",
    ] {
        let script = format!("{dir}/{script}");
        let syntax = Command::new("bash").args(["-n", &script]).status().unwrap();
        assert!(syntax.success(), "{script}");
        match Command::new("shellcheck").arg(&script).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            ),
            Err(_) => eprintln!("shellcheck not installed; only `bash -n` checked"),
        }
    }
}

#[test]
fn install_sh_stages_upgrades_and_uninstalls() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let out = install(p, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(p.join("usr/local/bin/herald").exists());
    let unit = std::fs::read_to_string(p.join("etc/systemd/system/herald.service")).unwrap();
    assert!(unit.contains("EnvironmentFile=-/etc/herald/admin.env"));
    let config = std::fs::read_to_string(p.join("etc/herald/herald.toml")).unwrap();
    assert!(
        config.contains(r#"db = "/var/lib/herald/herald.db""#),
        "{config}"
    );
    // The token is printed here and kept where only root reads it.
    let env_file = p.join("etc/herald/admin.env");
    let env = std::fs::read_to_string(&env_file).unwrap();
    let token = env
        .trim()
        .strip_prefix("HERALD_ADMIN_TOKEN=")
        .unwrap()
        .to_string();
    assert!(token.starts_with("hadm_") && token.len() >= 40, "{token}");
    assert!(stdout.contains(&token), "{stdout}");
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The staged binary takes that token.
    let ok = Command::new(p.join("usr/local/bin/herald"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(ok.status.success());
    serve_staged(p, &token);

    // A second run (an upgrade) keeps the token and the config.
    std::fs::write(p.join("var/lib/herald/herald.db"), b"").unwrap();
    let again = install(p, &[]);
    assert!(!String::from_utf8_lossy(&again.stdout).contains(&token));
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), env);

    // Uninstall keeps the data and the config; purge removes them.
    install(p, &["--uninstall"]);
    assert!(!p.join("usr/local/bin/herald").exists());
    assert!(!p.join("etc/systemd/system/herald.service").exists());
    assert!(p.join("var/lib/herald/herald.db").exists());
    assert!(p.join("etc/herald/herald.toml").exists());
    install(p, &["--uninstall", "--purge"]);
    assert!(!p.join("var/lib/herald").exists());
    assert!(!p.join("etc/herald").exists());
}

/// Starts the staged binary on the staged config, as the unit does (the admin token from
/// admin.env), with the database moved into the prefix: it listens, answers /healthz and
/// takes the printed token.
fn serve_staged(p: &Path, token: &str) {
    let mut child = Command::new(p.join("usr/local/bin/herald"))
        .arg("serve")
        .arg("--config")
        .arg(p.join("etc/herald/herald.toml"))
        .args(["--listen", "127.0.0.1:0"])
        .env("HERALD_DB", p.join("var/lib/herald/herald.db"))
        .env("HERALD_ADMIN_TOKEN", token)
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let addr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("Herald listening on http://")
                .map(str::to_owned)
        })
        .expect("the staged herald listens");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let health = agent.get(format!("http://{addr}/healthz")).call().unwrap();
    let tenants = agent
        .get(format!("http://{addr}/api/v1/tenants"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health.status(), 200);
    assert_eq!(tenants.status(), 200);
}

/// The exposure `systemd-analyze security --offline=true` gives the installed unit (0 to
/// 10, lower is better); None when systemd-analyze is not installed.
fn exposure(unit: &Path) -> Option<f64> {
    let out = match Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
    {
        Ok(out) => out,
        Err(_) => return None,
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no rating: {text}{}", String::from_utf8_lossy(&out.stderr)));
    let score = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next());
    Some(score.and_then(|s| s.parse().ok()).expect(line))
}

#[test]
fn installed_unit_is_hardened_and_leaves_herald_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &[]);
    let path = dir.path().join("etc/systemd/system/herald.service");
    let unit = std::fs::read_to_string(&path).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/local/bin/herald serve --config /etc/herald/herald.toml\n")
    );

    // What Herald needs is still there: its database directory writable, IPv4/IPv6 for the
    // API and deliveries, AF_UNIX for the resolver and a local PostgreSQL, no network
    // namespace or address filter, and the system calls of an ordinary service.
    let setting = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(setting("ReadWritePaths"), ["/var/lib/herald"]);
    assert_eq!(
        setting("RestrictAddressFamilies"),
        ["AF_INET AF_INET6 AF_UNIX"]
    );
    assert_eq!(setting("SystemCallFilter")[0], "@system-service");
    for absent in [
        "PrivateNetwork",
        "IPAddressDeny",
        "SocketBindDeny",
        "InaccessiblePaths",
    ] {
        assert!(setting(absent).is_empty(), "{absent} would cut Herald off");
    }
    assert_eq!(setting("User"), ["herald"]);

    match exposure(&path) {
        Some(score) => {
            eprintln!("systemd-analyze security: {score}");
            assert!(score <= 2.0, "exposure {score} > 2.0");
        }
        None if std::env::var_os("HERALD_REQUIRE_SYSTEMD_ANALYZE").is_some() => {
            panic!("HERALD_REQUIRE_SYSTEMD_ANALYZE is set but systemd-analyze is not installed")
        }
        None => {
            eprintln!("skipped the rating: systemd-analyze is not installed (apt install systemd)")
        }
    }
}
