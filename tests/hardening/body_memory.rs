// Security review (issue 10): 300 stalled ~1 MiB API bodies took the RSS from 41 to 477 MiB.
// Bodies being read now share one budget (`max_body_memory`): a body that does not fit is
// answered 503 `busy` with Retry-After before any of it is buffered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{TestApp, ADMIN_TOKEN};

/// Announces a `length`-byte publish and sends `send` bytes of it, then waits.
fn start_body(addr: &str, length: usize, send: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/events HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    // Herald may answer (and close) before the bytes are all sent: that is the point.
    let _ = stream.write_all(&vec![b' '; send]);
    stream
}

/// The answer's head, once it comes (empty if the connection closed without one).
fn answer(mut stream: TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

fn padded_event(length: usize) -> String {
    let head = r#"{"event": "big.one", "pad": ""#;
    format!("{head}{}\"}}", "x".repeat(length - head.len() - 2))
}

#[test]
fn a_body_over_the_budget_is_busy_and_others_still_pass() {
    let app = TestApp::spawn_with(&[
        ("HERALD_MAX_BODY_MEMORY", "1MiB"),
        ("HERALD_MAX_PAYLOAD", "512KiB"),
    ]);
    // Two stalled 400 KB bodies hold 800 KB of the 1 MiB.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| start_body(&app.addr, 400_000, 1_000))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let third = answer(start_body(&app.addr, 400_000, 0));
    assert!(third.starts_with("HTTP/1.1 503"), "{third}");
    assert!(
        third.to_ascii_lowercase().contains("retry-after: 1"),
        "{third}"
    );
    assert!(third.contains(r#""code":"busy""#), "{third}");
    // A small publish still fits.
    app.publish(serde_json::json!({"event": "small.one"}));
    // Once the stalled bodies are gone, a large one is accepted again.
    drop(held);
    let started = Instant::now();
    let big = padded_event(400_000);
    loop {
        let (status, body) = app.call("POST", "/api/v1/events", Some(ADMIN_TOKEN), Some(&big));
        if status == 202 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(started.elapsed() < Duration::from_secs(5), "still busy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 64 clients each send all but the last KiB of a 1 MiB body and stall: without the budget
/// Herald would hold ~64 MiB; with an 8 MiB budget most are refused unread.
#[test]
fn stalled_large_bodies_cannot_grow_memory_past_the_budget() {
    let app = TestApp::spawn_with(&[("HERALD_MAX_BODY_MEMORY", "8MiB")]);
    let pid = app.pid().unwrap();
    app.publish(serde_json::json!({"event": "warm.up"}));
    let before = rss_kib(pid);
    let length = 1024 * 1024;
    let streams: Vec<TcpStream> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|_| s.spawn(|| start_body(&app.addr, length, length - 1024)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    std::thread::sleep(Duration::from_millis(500));
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    let answers: Vec<String> = streams.into_iter().map(answer).collect();
    let busy = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .count();
    assert!(
        grown_mib < 32,
        "RSS grew by {grown_mib} MiB ({busy} refused)"
    );
    assert!(busy >= 50, "only {busy} of 64 were refused");
}

/// A chunked body declares no length: it takes its share as the chunks arrive, and is cut
/// off with 503 once the budget is spent, however it is framed.
#[test]
fn a_chunked_body_is_held_to_the_budget_as_it_arrives() {
    let app = TestApp::spawn_with(&[
        ("HERALD_MAX_BODY_MEMORY", "256KiB"),
        ("HERALD_MAX_PAYLOAD", "1MiB"),
    ]);
    let send = |total: usize| {
        let mut stream = TcpStream::connect(&app.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /api/v1/events HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .unwrap();
        let body = padded_event(total);
        for chunk in body.as_bytes().chunks(16 * 1024) {
            if write!(stream, "{:x}\r\n", chunk.len()).is_err()
                || stream.write_all(chunk).is_err()
                || stream.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        answer(stream)
    };
    let over = send(300_000);
    assert!(over.starts_with("HTTP/1.1 503"), "{over}");
    assert!(over.contains(r#""code":"busy""#), "{over}");
    let under = send(100_000);
    assert!(under.starts_with("HTTP/1.1 202"), "{under}");
}
