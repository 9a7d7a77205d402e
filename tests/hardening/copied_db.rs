// Security review (issue 10): from a copied database, `settings.session_key` and
// `admin_token_sha256` were enough to forge an admin session cookie (and its CSRF token).
// The session key now derives from a secret key kept outside the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::pages_http::Pages;
use crate::common::{TestApp, ADMIN_TOKEN};

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

#[test]
fn a_cookie_forged_from_a_copied_database_is_refused() {
    let app = TestApp::spawn();
    let pages = Pages::new(&app);
    // A page request: the old code created its session key in the database then.
    assert_eq!(pages.get("/admin/login", "").status, 200);
    // Everything the database holds (read in place: a copy of the main file alone would
    // miss what still sits in the WAL).
    let conn = rusqlite::Connection::open_with_flags(
        app.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = 'session_key'",
            [],
            |r| r.get(0),
        )
        .ok();
    // What the database offers (or, with nothing there, any guess).
    let session_key = stored.map_or(vec![7u8; 32], |h| hex::decode(h.trim()).unwrap());
    let token_hash = hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes()));
    let bound = hmac(&session_key, &[b"admin-token|", token_hash.as_bytes()]);
    let payload = format!("admin|{}|forgednonce|0", i64::MAX / 2);
    let tag = hmac(&bound, &[b"session|", payload.as_bytes()]);
    let cookie = format!(
        "herald_admin={}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag)
    );
    let page = pages.get("/admin/tenants", &cookie);
    assert_eq!(page.status, 303, "a forged cookie opened an admin page");

    // The genuine way in still works.
    let real = pages.login("admin", ADMIN_TOKEN);
    assert_eq!(pages.get("/admin/tenants", &real).status, 200);
}
