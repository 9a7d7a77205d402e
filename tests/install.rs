//! install.sh, staged into a temp dir with `--prefix` (no user, no systemd): a first install
//! writes the files and a root-only admin token it prints, a second keeps that token, an
//! uninstall keeps the data, a purge removes it. Plus `bash -n`, and shellcheck when present.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

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
fn install_sh_parses_and_passes_shellcheck() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
    let syntax = Command::new("bash").args(["-n", script]).status().unwrap();
    assert!(syntax.success());
    match Command::new("shellcheck").arg(script).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => eprintln!("shellcheck not installed; only `bash -n` checked"),
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
