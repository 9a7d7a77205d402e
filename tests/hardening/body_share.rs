// Security review (issue 23, item 3): a body took its declared `Content-Length` from the
// shared budget before anyone was authenticated, and the login form took 256 KiB from the
// anonymous login-page session: 256 connections announcing 256 KiB logins took the whole
// 64 MiB, and every other client's publish got 503 `busy`. Now an API body reserves only
// after `Auth`, a login form (and anything an anonymous session posts) takes at most
// 4 KiB, and one client address holds at most an eighth of the budget.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::pages_http::Pages;
use crate::common::{TestApp, ADMIN_TOKEN};

fn connect_from(source: &str, addr: &str) -> TcpStream {
    let target: SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&target.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Sends a head announcing `length` bytes and `body` (possibly less than announced).
fn send(stream: &mut TcpStream, path: &str, headers: &str, length: usize, body: &[u8]) {
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: herald\r\n{headers}Content-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let _ = stream.write_all(body);
}

/// The answer's status line (empty if the connection closed without one).
fn status_line(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 8192];
    let n = stream.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

fn api_headers(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\nContent-Type: application/json\r\n")
}

fn event(length: usize) -> Vec<u8> {
    let head = r#"{"event": "big.one", "pad": ""#;
    format!("{head}{}\"}}", "x".repeat(length - head.len() - 2)).into_bytes()
}

#[test]
fn one_address_takes_only_its_share_and_strangers_reserve_nothing() {
    // 8 MiB in all: an address may hold 1 MiB (four 256 KiB bodies).
    let app = TestApp::spawn_with(&[
        ("HERALD_MAX_BODY_MEMORY", "8MiB"),
        ("HERALD_MAX_PAYLOAD", "256KiB"),
    ]);
    let big = 256 * 1024;
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect_from("127.0.0.1", &app.addr);
            send(
                &mut s,
                "/api/v1/events",
                &api_headers(ADMIN_TOKEN),
                big,
                b"{",
            );
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Its share is used up: a fifth is busy, though the budget has 7 MiB left.
    let mut fifth = connect_from("127.0.0.1", &app.addr);
    send(
        &mut fifth,
        "/api/v1/events",
        &api_headers(ADMIN_TOKEN),
        big,
        b"{",
    );
    let answer = status_line(&mut fifth);
    assert!(answer.contains(" 503"), "{answer}");
    // A wrong token from the same address is refused for the token, not the budget: it
    // reserved nothing.
    let mut stranger = connect_from("127.0.0.1", &app.addr);
    send(
        &mut stranger,
        "/api/v1/events",
        &api_headers("hk_garbage"),
        big,
        b"",
    );
    let answer = status_line(&mut stranger);
    assert!(answer.contains(" 401"), "{answer}");
    // Another address is served in full.
    let mut other = connect_from("127.0.0.2", &app.addr);
    send(
        &mut other,
        "/api/v1/events",
        &api_headers(ADMIN_TOKEN),
        big,
        &event(big),
    );
    let answer = status_line(&mut other);
    assert!(answer.contains(" 202"), "{answer}");
    held.clear();
}

#[test]
fn a_login_form_takes_a_few_kib_at_most() {
    let app = TestApp::spawn_with(&[("HERALD_MAX_BODY_MEMORY", "8MiB")]);
    let pages = Pages::new(&app);
    let anon = pages.get("/portal/login", "").cookie.unwrap();
    // 64 logins from several addresses announcing 256 KiB (16 MiB in all) and sending none.
    let started = Instant::now();
    let mut logins: Vec<TcpStream> = (0..64)
        .map(|i| {
            let mut s = connect_from(&format!("127.0.0.{}", 10 + i % 8), &app.addr);
            let headers =
                format!("Cookie: {anon}\r\nContent-Type: application/x-www-form-urlencoded\r\n");
            send(&mut s, "/portal/login", &headers, 256 * 1024, b"");
            s
        })
        .collect();
    for login in &mut logins {
        let answer = status_line(login);
        assert!(answer.contains(" 413"), "{answer}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the logins were held {:?}",
        started.elapsed()
    );
    // A tenant's publish still fits.
    app.publish(serde_json::json!({"event": "small.one"}));
}
