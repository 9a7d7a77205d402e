// Security review (issue 10): `TRACE` on an API route got 405 without `Allow`, and the
// OpenAPI document left such answers undocumented. A wrong method on a known route is now
// 405 in the JSON envelope with `Allow` naming the route's methods; unknown paths stay 404.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::common::{TestApp, ADMIN_TOKEN};

/// One request over a fresh connection: status, lower-cased headers, body.
pub fn raw(addr: &str, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_wrong_method_is_405_with_allow_in_the_envelope() {
    let app = TestApp::spawn();
    let cases = [
        ("TRACE", "/api/v1/events", "GET, HEAD, POST"),
        ("PUT", "/api/v1/events", "GET, HEAD, POST"),
        ("DELETE", "/api/v1/openapi.json", "GET, HEAD"),
        ("TRACE", "/api/v1/webhooks/1", "GET, HEAD, PATCH, DELETE"),
        ("PUT", "/api/webhooks/1", "GET, HEAD, PATCH, DELETE"),
        ("GET", "/api/v1/events/batch", "POST"),
        ("OPTIONS", "/api/v1/tenants/x/keys/1", "DELETE"),
        ("FROB", "/api/v1/deliveries", "GET, HEAD"),
        ("TRACE", "/healthz", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let (status, headers, body) = raw(&app.addr, method, path);
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(header(&headers, "allow"), Some(allow), "{method} {path}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
        assert_eq!(body["success"], false, "{method} {path}");
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }
}

#[test]
fn unknown_paths_stay_404_and_known_methods_still_work() {
    let app = TestApp::spawn();
    for method in ["TRACE", "GET", "DELETE"] {
        let (status, headers, body) = raw(&app.addr, method, "/api/v1/nothing-here");
        assert_eq!(status, 404, "{method}: {body}");
        assert!(header(&headers, "allow").is_none());
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    assert_eq!(raw(&app.addr, "GET", "/api/v1/events").0, 200);
    assert_eq!(raw(&app.addr, "HEAD", "/api/v1/events").0, 200);
    assert_eq!(raw(&app.addr, "GET", "/api/v1/openapi.json").0, 200);
}

/// The pages too: a method a page does not take is 405 with `Allow` (plain text, as pages
/// are not JSON), while its own methods keep working.
#[test]
fn pages_answer_a_wrong_method_with_allow() {
    let app = TestApp::spawn();
    let cases = [
        ("TRACE", "/admin/login", "GET, HEAD, POST"),
        ("PUT", "/portal/login", "GET, HEAD, POST"),
        ("DELETE", "/admin/tenants/default/delete", "GET, HEAD, POST"),
        ("GET", "/admin/tenants/default/deliveries/1/retry", "POST"),
        ("GET", "/portal/deliveries/1/retry", "POST"),
        ("TRACE", "/admin/static/herald.css", "GET, HEAD"),
        ("PATCH", "/portal/endpoints", "GET, HEAD, POST"),
    ];
    for (method, path, allow) in cases {
        let (status, headers, body) = raw(&app.addr, method, path);
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(header(&headers, "allow"), Some(allow), "{method} {path}");
    }
    assert_eq!(raw(&app.addr, "GET", "/admin/login").0, 200);
    assert_eq!(raw(&app.addr, "GET", "/admin/static/herald.css").0, 200);
}
