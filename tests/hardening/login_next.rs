// Review finding: a `next` with control characters (CR/LF, DEL) passes `safe_next`, and
// `see_other` then fails to build the `Location` header: the login answers a plain-text
// 500 instead of a redirect (or a 400).

use crate::common::{TestApp, ADMIN_TOKEN};

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let end = start + html[start..].find('"').expect("end of csrf value");
    html[start..end].to_string()
}

fn cookie_of(headers: &std::collections::HashMap<String, String>) -> String {
    let set = headers.get("set-cookie").expect("set-cookie");
    set.split(';').next().unwrap().to_string()
}

#[test]
fn login_with_control_characters_in_next_is_not_a_500() {
    let app = TestApp::spawn();
    let (status, headers, html) = app.call_raw("GET", "/admin/login", None, &[], None);
    assert_eq!(status, 200);
    let anon = cookie_of(&headers);
    let form = format!(
        "csrf_token={}&token={}&next=/admin/%0D%0AX-Injected:%201",
        csrf_of(&html),
        ADMIN_TOKEN
    );
    let (status, _, body) = app.call_raw(
        "POST",
        "/admin/login",
        None,
        &[("cookie", anon.as_str())],
        Some(&form),
    );
    assert_ne!(status, 500, "login answered 500: {body}");
}
