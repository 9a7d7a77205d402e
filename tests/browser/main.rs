//! The admin pages and the tenant portal in a real browser: headless Chromium driven over
//! WebDriver against the real binary, with a real receiver on loopback. Screenshots of the
//! main pages (desktop and phone width) land in target/screenshots/.
//!
//! Needs `chromium` and `chromium-driver` (Debian); without them these tests fail, loudly.
//! `admin` walks through the admin pages, `portal` checks that a tenant sees only its own
//! data, `security` checks CSRF refusals, escaping and cookie flags.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod charts;
mod endpoint_form;
mod one_time_messages;
#[allow(dead_code)]
#[path = "../hardening/pages_http.rs"]
mod pages_http;
mod portal;
mod routing;
mod security;
mod tenant_pages;
mod transformation;

use std::path::PathBuf;
use std::time::Duration;

use common::webdriver::{Browser, DESKTOP, PHONE};
use common::{TestApp, ADMIN_TOKEN};

const WAIT: Duration = Duration::from_secs(20);

fn shot(b: &Browser, name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(format!("{name}.png"));
    b.screenshot(&path);
}

/// Desktop and phone-width screenshots of the page the browser is on.
pub fn shots(b: &Browser, name: &str) {
    shot(b, &format!("{name}-desktop"));
    b.set_size(PHONE);
    shot(b, &format!("{name}-phone"));
    b.set_size(DESKTOP);
}

pub fn login_admin(b: &Browser, app: &TestApp) {
    b.goto(&app.url("/admin"));
    b.fill("#token", ADMIN_TOKEN);
    b.click("#login");
    assert!(
        b.try_find("#logout").is_some(),
        "logged in: {}",
        b.current_url()
    );
}

pub fn flash(b: &Browser) -> String {
    b.text("#flash")
}

/// A request with the admin session cookie the browser holds, outside the browser;
/// redirects are not followed. A POST without the page's token is what a forged
/// cross-site form would send.
pub fn with_cookie(
    app: &TestApp,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(app.url(path))
        .header("cookie", format!("herald_admin={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .unwrap();
    let mut response = agent.run(request).expect("request to herald");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

pub fn post_form(app: &TestApp, path: &str, cookie: &str, body: &str) -> (u16, String) {
    with_cookie(app, "POST", path, cookie, body)
}
