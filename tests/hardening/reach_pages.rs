// Reaching receivers in the pages (issue 20, items 1 and 4): the endpoint form takes a
// client certificate and key, a CA bundle and a proxy, in the admin pages and the portal;
// the page shows the certificate's subject, fingerprint and expiry (marked when close),
// never the key or the proxy's password; saving the form again with the key left empty
// and the password masked keeps both.

use std::process::Command;

use serde_json::json;

use super::pages_http::Pages;
use crate::common::TestApp;

const PROXY_PASSWORD: &str = "pr0xy-pass";

/// A self-signed client certificate and its key that expire in 7 days.
fn soon_expiring_pair(dir: &std::path::Path) -> (String, String) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "soon.key",
            "-out",
            "soon.crt",
            "-subj",
            "/CN=pages-client",
            "-days",
            "7",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("soon.crt"), read("soon.key"))
}

fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(csrf: &str, fields: &[(&str, &str)]) -> String {
    let mut out = format!("csrf_token={}", form_encode(csrf));
    for (k, v) in fields {
        out.push_str(&format!("&{k}={}", form_encode(v)));
    }
    out
}

#[test]
fn the_endpoint_form_sets_certificates_and_proxies_and_never_shows_their_secrets() {
    let app = TestApp::spawn();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = soon_expiring_pair(dir.path());
    let key_line = key.lines().nth(1).unwrap().to_owned();
    let proxy = format!("http://herald:{PROXY_PASSWORD}@127.0.0.1:3128");
    assert_eq!(
        app.admin(
            "POST",
            "/api/v1/tenants",
            Some(json!({"id": "acme", "name": "Acme"}))
        )
        .0,
        201
    );
    let (_, issued) = app.admin("POST", "/api/v1/tenants/acme/keys", Some(json!({})));
    let tenant_key = issued["data"]["token"].as_str().unwrap().to_owned();

    let pages = Pages::new(&app);
    for (area, token) in [
        ("admin", crate::common::ADMIN_TOKEN),
        ("portal", tenant_key.as_str()),
    ] {
        let session = pages.login(area, token);
        let base = match area {
            "admin" => "/admin/tenants/default".to_owned(),
            _ => "/portal".to_owned(),
        };
        let new = pages.get(&format!("{base}/endpoints/new"), &session);
        assert_eq!(new.status, 200);
        assert!(
            new.body.contains("name=\"client_certificate\""),
            "the form has the fields"
        );
        let created = pages.post(
            &format!("{base}/endpoints"),
            &session,
            &form(
                &new.csrf(),
                &[
                    ("url", "https://localhost:9/hook"),
                    ("events", "*"),
                    ("client_certificate", &cert),
                    ("client_key", &key),
                    ("proxy", &proxy),
                ],
            ),
        );
        assert_eq!(created.status, 303, "{}", created.body);
        let page = pages.get(&created.location, &session);
        assert_eq!(page.status, 200, "{}", created.location);
        assert!(page.body.contains("CN=pages-client"), "{}", page.body);
        assert!(
            page.body.contains("Expires soon"),
            "a near expiry is marked"
        );
        assert!(page.body.contains("SHA-256"), "the fingerprint is shown");
        assert!(!page.body.contains(&key_line), "the key is never shown");
        assert!(
            !page.body.contains(PROXY_PASSWORD),
            "the proxy password is never shown"
        );
        assert!(page.body.contains("http://herald:********@127.0.0.1:3128"));

        // Saved again as shown (the key empty, the password masked): both are kept.
        let id: i64 = created
            .location
            .split("/endpoints/")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("an endpoint id in {}", created.location));
        let saved = pages.post(
            &format!("{base}/endpoints/{id}"),
            &session,
            &form(
                &page.csrf(),
                &[
                    ("url", "https://localhost:9/hook"),
                    ("events", "*"),
                    ("description", "saved again"),
                    ("client_certificate", &cert),
                    ("client_key", ""),
                    ("proxy", "http://herald:********@127.0.0.1:3128"),
                ],
            ),
        );
        assert_eq!(saved.status, 303, "{}", saved.body);
        let tenant = if area == "admin" { "default" } else { "acme" };
        let (_, got) = app.admin(
            "GET",
            &format!("/api/v1/webhooks/{id}?tenant={tenant}"),
            None,
        );
        assert_eq!(got["data"]["description"], "saved again", "{got}");
        assert_eq!(
            got["data"]["client_certificate"]["subject"],
            "CN=pages-client"
        );

        // A bad pair is refused on the form with the reason.
        let new = pages.get(&format!("{base}/endpoints/new"), &session);
        let refused = pages.post(
            &format!("{base}/endpoints"),
            &session,
            &form(
                &new.csrf(),
                &[
                    ("url", "https://localhost:9/hook"),
                    ("events", "*"),
                    ("client_certificate", &cert),
                    ("client_key", ""),
                ],
            ),
        );
        assert_eq!(refused.status, 400);
        assert!(
            refused.body.contains("client key: required"),
            "{}",
            refused.body
        );
    }
    assert!(!app.stored_anywhere(&key_line), "the key is sealed at rest");
    assert!(
        !app.stored_anywhere(PROXY_PASSWORD),
        "the proxy password is sealed"
    );
}
