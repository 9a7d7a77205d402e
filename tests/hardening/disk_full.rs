//! A full disk: Herald on a 3 MiB tmpfs (CI runs as root; elsewhere the test says why it
//! cannot run) is filled by publishes. Every publish it cannot store answers 503
//! `storage_full`, never 202; everything it answered 202 for is there; `/readyz` says so
//! meanwhile; and once space returns, publishing resumes without a restart.

use std::process::Command;

use serde_json::json;

use crate::common::{TestApp, ADMIN_TOKEN};

struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_answers_503_storage_full_and_loses_nothing_acknowledged() {
    let mount_point = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(mount_point.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let tmpfs = Tmpfs(mount_point); // unmounted last, after Herald has stopped
    let dir = tempfile::tempdir_in(tmpfs.0.path()).unwrap();
    // Ballast, freed later to give the space back.
    let ballast = tmpfs.0.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1024 * 1024]).unwrap();
    let app = TestApp::spawn_in(dir, &[]);

    let blob = "x".repeat(60_000);
    let mut stored = Vec::new();
    let mut full = 0;
    for i in 0..200 {
        let (status, body) = app.admin(
            "POST",
            "/api/v1/events",
            Some(json!({"event": "disk.fill", "i": i, "blob": blob})),
        );
        match status {
            202 => stored.push(body["data"]["id"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                full += 1;
                if full == 3 {
                    break;
                }
            }
            other => panic!("publish {i}: {other} {body}"),
        }
    }
    assert!(full == 3, "the disk never filled ({} stored)", stored.len());
    let (status, body) = app.call("GET", "/readyz", None, None);
    assert_eq!(status, 503, "{body}");
    for id in &stored {
        let (status, _) = app.call(
            "GET",
            &format!("/api/v1/events/{id}"),
            Some(ADMIN_TOKEN),
            None,
        );
        assert_eq!(status, 200, "acknowledged event {id} is stored");
    }

    std::fs::remove_file(&ballast).unwrap();
    let (status, body) = app.admin("POST", "/api/v1/events", Some(json!({"event": "disk.ok"})));
    assert_eq!(status, 202, "publishing resumes once space returns: {body}");
    let (status, body) = app.call("GET", "/readyz", None, None);
    assert_eq!(status, 200, "{body}");
    drop(app);
}
