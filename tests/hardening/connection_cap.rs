// Security review (issue 10): one address could open as many connections as the process
// had file descriptors (1,100 stalled ones made normal requests time out). Each client
// address may now hold `max_connections_per_client` open; more are closed at once, while
// the address's existing connections and other addresses are served as usual.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::TestApp;

/// A keep-alive connection that has been answered once (so Herald has counted it).
fn open(stream: TcpStream) -> TcpStream {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(ask(&stream), "a connection under the cap is served");
    stream
}

/// Sends `GET /healthz` over `stream`; true when a 200 came back.
fn ask(mut stream: &TcpStream) -> bool {
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    if reader.read_line(&mut status).unwrap_or(0) == 0 || !status.contains(" 200 ") {
        return false;
    }
    // Read the rest of the answer (headers, then the Content-Length body).
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).is_ok()
}

/// A connection from another loopback address (127.0.0.2).
fn connect_from(source: &str, addr: &str) -> TcpStream {
    let target: SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&target.into()).unwrap();
    socket.into()
}

#[test]
fn the_connection_over_the_cap_is_refused_while_the_others_are_served() {
    let app = TestApp::spawn_with(&[("HERALD_MAX_CONNECTIONS_PER_CLIENT", "4")]);
    let held: Vec<TcpStream> = (0..4)
        .map(|_| open(TcpStream::connect(&app.addr).unwrap()))
        .collect();
    // The fifth from the same address is closed without an answer.
    let fifth = TcpStream::connect(&app.addr).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(!ask(&fifth), "the fifth connection was served");
    // The four keep being served, and another address is not affected.
    assert!(
        held.iter().all(ask),
        "a connection under the cap was dropped"
    );
    let other = connect_from("127.0.0.2", &app.addr);
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(ask(&other), "another address was refused");
    // A closed connection gives its place back.
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        let stream = TcpStream::connect(&app.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        if ask(&stream) {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        served,
        "the address stayed refused after closing its connections"
    );
}

/// Trusted proxies carry many clients: they are not capped.
#[test]
fn trusted_proxies_are_exempt() {
    let app = TestApp::spawn_with(&[
        ("HERALD_MAX_CONNECTIONS_PER_CLIENT", "2"),
        ("HERALD_TRUSTED_PROXIES", "127.0.0.1"),
    ]);
    let held: Vec<TcpStream> = (0..5)
        .map(|_| open(TcpStream::connect(&app.addr).unwrap()))
        .collect();
    assert!(held.iter().all(ask));
}
