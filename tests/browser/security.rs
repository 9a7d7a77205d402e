//! Forged forms, hostile input, and the session cookie's flags.

use crate::common::webdriver::{Browser, DESKTOP};
use crate::common::TestApp;
use crate::{login_admin, post_form, with_cookie};

#[test]
fn forms_without_their_csrf_token_are_refused() {
    let app = TestApp::spawn();
    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    let cookie = b.cookie("herald_admin").expect("the session cookie");
    b.goto(&app.url("/admin/tenants"));
    let token = b
        .find("form.card input[name=csrf_token]")
        .attr("value")
        .unwrap();

    for body in [
        "id=evil&name=Evil",
        "id=evil&csrf_token=",
        "id=evil&csrf_token=AAAA",
    ] {
        let (status, page) = post_form(&app, "/admin/tenants", &cookie, body);
        assert_eq!(status, 403, "{body}: {page}");
        assert!(page.contains("Nothing was changed"), "{page}");
    }
    let hook = format!(
        "url=http%3A%2F%2F127.0.0.1%3A9%2F&events=*&csrf_token={}",
        "x".repeat(43)
    );
    let (status, _) = post_form(&app, "/admin/tenants/default/endpoints", &cookie, &hook);
    assert_eq!(status, 403);
    let (status, _) = post_form(&app, "/admin/logout", &cookie, "");
    assert_eq!(status, 403);
    // Without the cookie the token alone is worth nothing either.
    let (status, _) = post_form(
        &app,
        "/admin/tenants",
        "",
        &format!("id=evil&csrf_token={token}"),
    );
    assert_eq!(status, 403);

    assert_eq!(
        app.admin("GET", "/api/v1/tenants/evil", None).0,
        404,
        "no tenant was created"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) FROM endpoints"),
        0,
        "no endpoint was created"
    );
    // The same request with the page's token goes through: the token was the difference.
    let (status, _) = post_form(
        &app,
        "/admin/tenants",
        &cookie,
        &format!("id=evil&csrf_token={token}"),
    );
    assert_eq!(status, 303);
    assert_eq!(app.admin("GET", "/api/v1/tenants/evil", None).0, 200);
    b.goto(&app.url("/admin"));
    assert!(
        b.try_find("#logout").is_some(),
        "the session survived the forged logout"
    );
}

#[test]
fn user_supplied_html_is_shown_escaped() {
    let app = TestApp::spawn();
    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    let evil_url = "http://127.0.0.1:9/x?<script>alert(1)</script>";
    let evil_text = "<script>alert(2)</script><img src=x onerror=alert(3)><b>bold</b>";
    b.goto(&app.url("/admin/tenants/default/endpoints/new"));
    b.fill("#url", evil_url);
    b.fill("#events", "*");
    b.fill("#description", evil_text);
    b.click("#create-endpoint");
    // Refused (not a valid URL), and both the message and the form show it back as text.
    assert!(
        b.text("#problem").contains(evil_url),
        "{}",
        b.text("#problem")
    );
    assert_eq!(b.find("#url").attr("value").as_deref(), Some(evil_url));
    let source = b.source();
    assert!(
        source.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{source}"
    );
    assert!(b.find_all("script").is_empty() && b.find_all("main img, main b").is_empty());
    assert!(!b.alert_open());

    // A valid URL: the description is stored and shown as text on every page.
    b.fill("#url", "http://127.0.0.1:9/x?q='&a=1");
    b.click("#create-endpoint");
    assert!(b.try_find("#revealed").is_some(), "created");
    for page in [
        "/admin/tenants/default/endpoints",
        "/admin/tenants/default/endpoints/1",
    ] {
        b.goto(&app.url(page));
        assert!(b.text("main").contains(evil_text), "{page}");
        assert!(
            b.source().contains("&lt;script&gt;alert(2)&lt;/script&gt;"),
            "{page}"
        );
        assert!(
            b.find_all("script").is_empty() && b.find_all("main img, main b").is_empty(),
            "{page}"
        );
        assert!(!b.alert_open());
    }
    let cookie = b.cookie("herald_admin").expect("session cookie");
    let (status, raw) = with_cookie(&app, "GET", "/admin/tenants/default/endpoints", &cookie, "");
    assert_eq!(status, 200);
    assert!(
        raw.contains("alert(2)") && !raw.contains("<script"),
        "the server never sends a script element"
    );
}

#[test]
fn session_cookies_are_http_only_strict_and_secure_behind_https() {
    let app = TestApp::spawn();
    for (area, proto, secure) in [
        ("admin", "http", false),
        ("admin", "https", true),
        ("portal", "https", true),
    ] {
        let (status, headers, _) = app.call_raw(
            "GET",
            &format!("/{area}/login"),
            None,
            &[("x-forwarded-proto", proto)],
            None,
        );
        assert_eq!(status, 200);
        let cookie = &headers["set-cookie"];
        assert!(cookie.starts_with(&format!("herald_{area}=")), "{cookie}");
        for part in ["HttpOnly", "SameSite=Strict", &format!("Path=/{area}")] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert_eq!(cookie.contains("Secure"), secure, "{proto}: {cookie}");
    }
}
