// Security review (issue 10): a body sent at 1 byte/s held its connection open for as
// long as the client liked (`POST /portal/login` 40 s+, `POST /api/v1/events` 120 s+),
// before authentication too. A whole request now has to arrive within a bound.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::pages_http::Pages;
use crate::common::{TestApp, ADMIN_TOKEN};

/// Sends `head` (which announces a 200,000-byte body), then one body byte a second; returns
/// how long until Herald answered and closed the connection, or `None` after 40 s.
fn trickle(addr: &str, head: String) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        while writer.write_all(b"x").is_ok() && started.elapsed() < Duration::from_secs(45) {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(started.elapsed()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(started.elapsed()),
        Err(_) => None,
    }
}

#[test]
fn a_one_byte_per_second_body_is_cut_off_while_others_stay_fast() {
    let app = TestApp::spawn();
    let pages = Pages::new(&app);
    let login = pages.get("/portal/login", "");
    let cookie = login.cookie.clone().unwrap();
    let api_head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n"
    );
    let login_head = format!(
        "POST /portal/login HTTP/1.1\r\nHost: herald\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200000\r\n\r\n"
    );
    std::thread::scope(|s| {
        let api = s.spawn(|| trickle(&app.addr, api_head));
        let login = s.spawn(|| trickle(&app.addr, login_head));
        std::thread::sleep(Duration::from_secs(3));
        let started = Instant::now();
        assert_eq!(app.admin("GET", "/api/v1/webhooks", None).0, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a normal request waited"
        );
        for (what, took) in [
            ("api", api.join().unwrap()),
            ("login", login.join().unwrap()),
        ] {
            let took = took.unwrap_or_else(|| panic!("{what}: still open after 40 s"));
            assert!(
                took < Duration::from_secs(14),
                "{what}: cut off after {took:?}"
            );
        }
    });
}
