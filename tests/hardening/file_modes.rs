// Security review (issue 10): `herald.db`, its `-wal`/`-shm` and `herald backup` output were
// created 0644, so anyone on the machine could copy the secrets. Now 0600 whatever the
// umask (the secret key file beside it too), and a readable database is warned about.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::ADMIN_TOKEN;

/// `herald <args>` run under `umask 000`, the loosest a careless service manager could set.
fn herald_umask_000(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_herald"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HERALD_LOG", "warn")
        .env_remove("HERALD_LISTEN");
    cmd
}

/// Kills the server even when an assertion fails first.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn database_wal_shm_and_backups_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let mut child = Killed(
        herald_umask_000(&db, &["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start herald"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("herald exited").unwrap();
        if let Some(rest) = line.strip_prefix("Herald listening on http://") {
            break rest.trim().to_string();
        }
    };
    // A write, so the WAL and its index certainly exist.
    let status = ureq::post(&format!("http://{addr}/api/v1/tenants"))
        .header("authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .config()
        .http_status_as_error(false)
        .build()
        .content_type("application/json")
        .send(r#"{"id": "modes", "name": "Modes"}"#)
        .expect("request")
        .status();
    assert_eq!(status, 201);
    for name in ["herald.db", "herald.db-wal", "herald.db-shm", "herald.key"] {
        let path = dir.path().join(name);
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }

    let backup = dir.path().join("copy.db");
    let out = herald_umask_000(&db, &["backup", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&backup), 0o600, "backup");
    drop(child);

    // An existing database someone made readable is used, with a warning.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = herald_umask_000(&db, &["backup", dir.path().join("b2.db").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readable by other users"),
        "no warning: {stderr}"
    );
}
