//! The circuit breaker against the real binary and a real receiver (issue 19, item 3): a
//! receiver failing half its requests at random drains a backlog of 2,000 within twice the
//! time it takes with the breaker off, and a dead receiver gets only probes once the
//! circuit is open. Retries are 100 ms apart so the runs take seconds (SQLite) to half a
//! minute (PostgreSQL); both times are printed (`--nocapture`).

use std::time::{Duration, Instant};

use crate::common::{Receiver, Reply, TestApp};

const BACKLOG: i64 = 2_000;

/// Twelve retries 100 ms apart: at 50 % a delivery fails for good once in 8,000.
const RETRIES: &str = "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms";

/// The endpoint's circuit state, as its API object shows it.
fn circuit_state(app: &TestApp, path: &str) -> String {
    let (status, body) = app.admin("GET", path, None);
    assert_eq!(status, 200, "{body}");
    body["data"]["circuit"]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Publishes the backlog to a receiver failing half its requests at random and waits until
/// nothing is pending; returns how long that took, how many succeeded, and whether the
/// circuit ever opened.
fn drain_half_failing(circuit_threshold: &str) -> (Duration, i64, bool) {
    let app = TestApp::spawn_with(&[
        ("HERALD_RETRY_SCHEDULE", RETRIES),
        ("HERALD_CIRCUIT_THRESHOLD", circuit_threshold),
        ("HERALD_CIRCUIT_BACKOFF", "1s"),
    ]);
    let receiver =
        Receiver::start(|_, _| Reply::status(if rand::random::<bool>() { 200 } else { 500 }));
    let hook = app.create_webhook(&receiver.url("/flaky"), &["job.*"]);
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    let started = Instant::now();
    for from in (0..BACKLOG).step_by(500) {
        app.publish_numbered("job.done", from, from + 500);
    }
    let mut opened = false;
    app.wait_for(Duration::from_secs(120), "the backlog to drain", || {
        opened |= circuit_state(&app, &path) != "closed";
        let pending = app.sql_count("SELECT count(*) FROM deliveries WHERE status = 'pending'");
        (pending == 0).then_some(())
    });
    let took = started.elapsed();
    let succeeded = app.sql_count("SELECT count(*) FROM deliveries WHERE status = 'succeeded'");
    (took, succeeded, opened)
}

#[test]
fn a_half_failing_receiver_drains_within_twice_the_breaker_off_time() {
    // Side by side, each with its own Herald and receiver: the same machine load for both,
    // and half the wall time (PostgreSQL's run takes about 30 s).
    let ((off, off_ok, _), (on, on_ok, opened)) = std::thread::scope(|s| {
        let off = s.spawn(|| drain_half_failing("0"));
        let on = s.spawn(|| drain_half_failing("5"));
        (off.join().unwrap(), on.join().unwrap())
    });
    eprintln!(
        "{BACKLOG} deliveries to a receiver failing 50 % at random: breaker off {off:?} \
         ({off_ok} succeeded), breaker on {on:?} ({on_ok} succeeded, circuit opened: {opened})"
    );
    for ok in [off_ok, on_ok] {
        assert!(ok >= BACKLOG - 5, "{ok} of {BACKLOG} succeeded");
    }
    assert!(!opened, "the circuit of a half-working receiver opened");
    assert!(on <= off * 2, "breaker on {on:?}, off {off:?}");
}

#[test]
fn a_dead_receiver_gets_only_probes_once_the_circuit_is_open() {
    let app = TestApp::spawn_with(&[
        ("HERALD_RETRY_SCHEDULE", RETRIES),
        ("HERALD_CIRCUIT_BACKOFF", "1s"),
    ]);
    let receiver = Receiver::start(|_, _| Reply::status(500));
    let hook = app.create_webhook(&receiver.url("/dead"), &["job.*"]);
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    app.publish_numbered("job.done", 0, 200);
    app.wait_for(Duration::from_secs(20), "the circuit to open", || {
        (circuit_state(&app, &path) == "open").then_some(())
    });
    // What was claimed before it opened (at most a few caps) still goes; then only probes,
    // 1 s after opening, then 2 s, then 4 s after the one before.
    std::thread::sleep(Duration::from_millis(500));
    let settled = receiver.on_path("/dead").len();
    std::thread::sleep(Duration::from_millis(6_000));
    let got = receiver.on_path("/dead");
    let probes = &got[settled..];
    eprintln!(
        "dead receiver: {settled} requests until the circuit opened and settled, then {} \
         probes in 6 s (200 deliveries x 13 attempts without a breaker)",
        probes.len()
    );
    assert!(settled < 100, "{settled} requests before the circuit held");
    assert!(
        (1..=3).contains(&probes.len()),
        "{} requests in 6 s of an open circuit",
        probes.len()
    );
    for pair in probes.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(1_500), "probes {gap:?} apart");
    }
}
