// Security review (issue 23, item 1): actix bounds only a connection's *first* request head
// (`client_request_timeout`): after one `GET /healthz`, a connection that sent `G` and
// nothing more stayed open past 90 s, and ~1,000 of them filled the process's descriptors.
// Every connection idle between requests or in a half-sent head is now closed after
// `IDLE_TIMEOUT` (10 s: the 5 s keep-alive plus 5 s for a head).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::TestApp;

/// Sends `request` and reads one whole answer (the head, then `Content-Length` bytes).
fn ask(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// Waits until the server closes `stream` (end of stream or reset); how long that took.
fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue, // an error answer before closing is fine
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

#[test]
fn a_half_sent_head_after_the_first_request_is_cut_off() {
    let app = TestApp::spawn();
    let healthz = "GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n";
    let mut stalled = TcpStream::connect(&app.addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(ask(&mut stalled, healthz).starts_with("HTTP/1.1 200"));
    // The first byte of a second request, then nothing.
    stalled.write_all(b"G").unwrap();

    // A connection that keeps asking is never cut off: it is idle only between answers.
    let mut busy = TcpStream::connect(&app.addr).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(13) {
        assert!(ask(&mut busy, healthz).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(500));
    }

    let closed = closed_after(&mut stalled, Duration::from_secs(10));
    let waited = started.elapsed();
    assert!(
        closed.is_some(),
        "a half-sent head was still open after {} s",
        waited.as_secs()
    );
    assert!(
        waited < Duration::from_secs(16),
        "closed only after {waited:?}"
    );
}

#[test]
fn an_idle_keep_alive_connection_and_a_trickled_first_head_are_closed() {
    let app = TestApp::spawn();
    // A first head sent a byte a second: bounded by the head timeout (5 s) even though
    // bytes keep arriving.
    let mut trickle = TcpStream::connect(&app.addr).unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    for byte in head.iter() {
        if trickle.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        if started.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    let closed = closed_after(&mut trickle, Duration::from_secs(5));
    assert!(
        closed.is_some() && started.elapsed() < Duration::from_secs(16),
        "a trickled head kept its connection for {:?}",
        started.elapsed()
    );
}
