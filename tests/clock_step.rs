//! A wall-clock step while Herald runs (issue 19, item 6): the system clock stepped back an
//! hour between a failed attempt and its retry (libfaketime's `FAKETIME_TIMESTAMP_FILE`,
//! re-read on every call with `FAKETIME_NO_CACHE=1`; the monotonic clock left alone) changes
//! the wall time the process sees, and not when the retry goes out. On SQLite; PostgreSQL's
//! shared clock is in tests/pg_faults.rs.

mod common;

use std::time::{Duration, Instant};

use common::{Receiver, Reply, TestApp};
use serde_json::json;

fn libfaketime() -> Option<String> {
    let found = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(str::to_owned);
    if found.is_none() {
        assert!(
            std::env::var("HERALD_REQUIRE_FAKETIME").as_deref() != Ok("1"),
            "HERALD_REQUIRE_FAKETIME=1, but libfaketime is not installed"
        );
        eprintln!("skipped: libfaketime is not installed (apt-get install faketime)");
    }
    found
}

/// Seconds since the epoch of the `Date` header (the process's wall clock).
fn date_header(app: &TestApp) -> i64 {
    let (_, headers, _) = app.call_raw("GET", "/healthz", None, &[], None);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(&headers["date"], format)
        .expect("a Date header")
        .assume_utc()
        .unix_timestamp()
}

#[test]
fn a_retry_goes_out_on_schedule_when_the_wall_clock_steps_back_an_hour() {
    let Some(lib) = libfaketime() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let offset_file = dir.path().join("faketime");
    std::fs::write(&offset_file, "+0\n").unwrap();
    let offset = offset_file.display().to_string();
    // Fails once, then succeeds.
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 500 } else { 200 }));
    let app = TestApp::spawn_sqlite(&[
        ("HERALD_RETRY_SCHEDULE", "3s"),
        ("LD_PRELOAD", &lib),
        ("FAKETIME_TIMESTAMP_FILE", &offset),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]);
    app.create_webhook(&receiver.url("/hook"), &["order.*"]);
    let before = date_header(&app);
    let event = app.publish(json!({"event": "order.created", "data": {"n": 1}}));
    let first = receiver.wait_for("/hook", 1, Duration::from_secs(10))[0].at;
    // The failure recorded (its retry's due time written on the clock before the step).
    let event_id = event["id"].as_str().unwrap();
    app.wait_for(Duration::from_secs(5), "the first attempt recorded", || {
        let d = common::delivery::delivery_of_event(&app, event_id);
        (!common::delivery::attempt_codes(&d).is_empty()).then_some(())
    });

    std::fs::write(&offset_file, "-3600\n").unwrap();
    // actix renews its Date header every 500 ms.
    std::thread::sleep(Duration::from_millis(1_100));
    let stepped = date_header(&app);
    assert!(
        (3_500..=3_700).contains(&(before - stepped)),
        "the wall clock did not step back (libfaketime not in effect?): {before} then {stepped}"
    );

    let got = receiver.wait_for("/hook", 2, Duration::from_secs(15));
    let gap = got[1].at.duration_since(first);
    eprintln!(
        "wall clock stepped back 1 h; the 3 s retry went out {gap:?} after the first attempt"
    );
    assert!(
        gap >= Duration::from_millis(2_900) && gap < Duration::from_secs(6),
        "retry {gap:?} after the first attempt"
    );
    assert!(Instant::now().duration_since(first) < Duration::from_secs(20));
}
