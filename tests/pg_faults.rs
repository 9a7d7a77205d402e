//! PostgreSQL faults (issue 19, items 4-6), with real binaries on the test cluster:
//! - the database cut off (a TCP proxy between Herald and PostgreSQL that the test closes
//!   and opens again): `/readyz` and publishes answer 503 within 200 ms, and publishes
//!   succeed again within a second of its return;
//! - a replica `kill -9`ed while it holds deliveries: the survivor sends them, and new
//!   events to the same endpoint, within 5 s (the heartbeat's bound), not after the lease;
//! - a replica whose wall clock runs 60 s ahead (libfaketime) shares the work, and killing
//!   it stops delivery for no longer than that bound.
//!
//! Runs when `HERALD_TEST_PG_URL` names a PostgreSQL server (`.ci/run` starts one).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PgDatabase, Receiver, Reply, TestApp};
use serde_json::json;

/// A TCP proxy on loopback to the test PostgreSQL server that the test can cut (every
/// connection closed, new ones refused: the port is closed) and restore (the same port).
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            open: Arc::new(AtomicBool::new(true)),
            conns: Arc::default(),
        };
        let (open, conns) = (proxy.open.clone(), proxy.conns.clone());
        std::thread::spawn(move || accept_loop(listener, port, upstream, open, conns));
        proxy
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        // The accept loop drops its listener within 5 ms: connects are refused.
        std::thread::sleep(Duration::from_millis(20));
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: TcpListener,
    port: u16,
    upstream: String,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
) {
    let mut listener = Some(listener);
    loop {
        match (&listener, open.load(Ordering::SeqCst)) {
            (Some(_), false) => listener = None,
            (None, true) => {
                listener = TcpListener::bind(("127.0.0.1", port)).ok();
            }
            _ => {}
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Ok((client, _)) => {
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut all = conns.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// The host:port of a postgres:// URL, and the URL with another port.
fn host_port(url: &str) -> (String, String) {
    let after_at = url.rsplit_once('@').map(|p| p.1).unwrap_or(url);
    let host_port = after_at.split('/').next().unwrap().to_owned();
    (host_port.clone(), url.replacen(&host_port, "{}", 1))
}

fn publish_status(app: &TestApp, n: i64) -> (u16, serde_json::Value) {
    app.admin(
        "POST",
        "/api/v1/events",
        Some(json!({"event": "order.created", "data": {"n": n}})),
    )
}

#[test]
fn postgres_cut_off_answers_503_at_once_and_resumes_within_a_second() {
    let Some(db) = PgDatabase::create_or_skip() else {
        return;
    };
    let (upstream, template) = host_port(&db.url());
    let proxy = Proxy::start(upstream);
    let url = template.replace("{}", &format!("127.0.0.1:{}", proxy.port));
    let key = common::random_secret_key();
    let app = TestApp::spawn_on(&url, &[("HERALD_SECRET_KEY", &key)]);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/hook"), &["order.*"]);
    assert_eq!(publish_status(&app, 0).0, 202);

    proxy.cut();
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        for path in ["/readyz", "/api/v1/events"] {
            let started = Instant::now();
            let (status, body) = if path == "/readyz" {
                app.call("GET", path, None, None)
            } else {
                publish_status(&app, i)
            };
            let took = started.elapsed();
            slowest = slowest.max(took);
            assert_eq!(status, 503, "{path} while PostgreSQL is cut off: {body}");
            assert_eq!(body["success"], false, "{body}");
            assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
            assert!(
                took < Duration::from_millis(200),
                "{path} took {took:?} to answer 503"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    proxy.restore();
    let back = Instant::now();
    let resumed = common::wait_for(Duration::from_secs(10), "a publish to succeed", &mut || {
        (publish_status(&app, 99).0 == 202).then(|| back.elapsed())
    });
    assert!(
        resumed < Duration::from_secs(1),
        "publishes resumed {resumed:?} after PostgreSQL came back"
    );
    let ready = app.call("GET", "/readyz", None, None);
    assert_eq!(ready.0, 200, "{}", ready.1);
    receiver.wait_for("/hook", 2, Duration::from_secs(10));
    eprintln!("cut off: slowest 503 {slowest:?}; publishing resumed {resumed:?} after return");
}

fn replica(url: &str, key: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("HERALD_SECRET_KEY", key),
        ("HERALD_ENDPOINT_CONCURRENCY", "2"),
        ("HERALD_MAX_ENDPOINT_CONCURRENCY", "2"),
    ];
    env.extend_from_slice(extra);
    TestApp::spawn_on(url, &env)
}

/// How soon after a kill the survivor must have taken over (the heartbeat is stale after
/// 3 s; the survivor's next round follows within its 1 s poll).
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);

#[test]
fn a_killed_replicas_deliveries_and_its_endpoints_new_events_go_out_within_5s() {
    let Some(db) = PgDatabase::create_or_skip() else {
        return;
    };
    let key = common::random_secret_key();
    // The first two requests hang (the victim holds both of the endpoint's two slots);
    // every later one is answered at once.
    let receiver = Receiver::start(|_, n| {
        Reply::status(200).delay(if n < 2 {
            Duration::from_secs(25)
        } else {
            Duration::ZERO
        })
    });
    let mut victim = replica(&db.url(), &key, &[]);
    victim.create_webhook(&receiver.url("/hook"), &["order.*"]);
    let held: Vec<String> = (0..2)
        .map(|n| {
            publish_status(&victim, n).1["data"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    receiver.wait_for("/hook", 2, Duration::from_secs(10));
    let survivor = replica(&db.url(), &key, &[]);
    std::thread::sleep(Duration::from_millis(500));

    victim.kill9();
    let killed = Instant::now();
    let fresh = publish_status(&survivor, 2).1["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = receiver.wait_for("/hook", 5, Duration::from_secs(30));
    let after_kill = |id: &str| {
        got.iter()
            .filter(|r| r.headers["webhook-id"] == id && r.at > killed)
            .map(|r| r.at.duration_since(killed))
            .min()
            .unwrap_or_else(|| panic!("{id} was not sent after the kill"))
    };
    let resent: Vec<Duration> = held.iter().map(|id| after_kill(id)).collect();
    let new_event = after_kill(&fresh);
    eprintln!(
        "after kill -9: held deliveries re-sent at {resent:?}, a new event sent at {new_event:?}"
    );
    for took in resent.iter().chain([&new_event]) {
        assert!(
            *took <= TAKEOVER_BOUND,
            "sent {took:?} after the kill (lease 15 s)"
        );
    }
}

/// libfaketime's preload library, where Debian's `faketime` package puts it.
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

/// The `Date` header's time (the process's wall clock, as libfaketime shows it).
fn date_header(app: &TestApp) -> i64 {
    let (_, headers, _) = app.call_raw("GET", "/healthz", None, &[], None);
    let date = httpdate(&headers["date"]);
    date.expect("a Date header")
}

/// Seconds since the epoch of an IMF-fixdate (`Wed, 02 Dec 2026 19:39:56 GMT`).
fn httpdate(s: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(s, format).ok()?;
    Some(t.assume_utc().unix_timestamp())
}

/// Attempts this replica made, from its /metrics.
fn attempts(app: &TestApp) -> f64 {
    let (_, _, text) = app.call_raw("GET", "/metrics", None, &[], None);
    text.lines()
        .filter(|l| l.starts_with("herald_attempts_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_replica_whose_clock_runs_a_minute_ahead_shares_the_work() {
    let Some(db) = PgDatabase::create_or_skip() else {
        return;
    };
    let Some(lib) = libfaketime() else {
        return;
    };
    let key = common::random_secret_key();
    let receiver = Receiver::start(|_, _| Reply::status(200).delay(Duration::from_millis(20)));
    // Two workers each, and more endpoint slots (8 x 2) than one replica claims (4 per
    // worker): neither can take everything by being first, so the split shows the clocks.
    let workers = [("HERALD_WORKERS", "2")];
    let normal = replica(&db.url(), &key, &workers);
    let mut ahead = replica(
        &db.url(),
        &key,
        &[
            workers[0],
            ("LD_PRELOAD", &lib),
            ("FAKETIME", "+60s"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let skew = date_header(&ahead) - date_header(&normal);
    assert!(
        (55..=65).contains(&skew),
        "libfaketime did not take: the replicas' Date headers differ by {skew} s"
    );
    for n in 0..ENDPOINTS {
        normal.create_webhook(&receiver.url(&format!("/hook/{n}")), &["order.*"]);
    }
    // Published through the replica ahead: on its own clock these are due a minute before
    // the other replica's clock says so (a shared clock makes them due for both).
    for round in 0..10 {
        ahead.publish_numbered("order.created", round * 10, round * 10 + 10);
    }
    receiver.wait_for_all(100 * ENDPOINTS, Duration::from_secs(60));
    let (by_normal, by_ahead) = (attempts(&normal), attempts(&ahead));
    eprintln!("attempts: the normal replica {by_normal}, the one {skew} s ahead {by_ahead}");
    let share = by_ahead / (by_normal + by_ahead);
    assert!(
        (0.25..=0.75).contains(&share),
        "the replica {skew} s ahead made {by_ahead} of {} attempts",
        by_normal + by_ahead
    );

    // Killed while busy: the others' deliveries stop for no longer than the takeover bound.
    for round in 10..16 {
        ahead.publish_numbered("order.created", round * 10, round * 10 + 10);
    }
    ahead.kill9();
    let killed = Instant::now();
    normal.publish_numbered("order.created", 1000, 1010);
    let got = receiver.wait_for_distinct(170 * ENDPOINTS, Duration::from_secs(60));
    let mut times: Vec<Instant> = got.iter().map(|r| r.at).filter(|t| *t > killed).collect();
    times.sort();
    let mut gap = times[0].duration_since(killed);
    for pair in times.windows(2) {
        gap = gap.max(pair[1].duration_since(pair[0]));
    }
    eprintln!("after killing the skewed replica: the longest pause in delivery {gap:?}");
    assert!(gap <= TAKEOVER_BOUND, "delivery stopped for {gap:?}");
}

const ENDPOINTS: usize = 8;

trait WaitAll {
    fn wait_for_all(&self, n: usize, timeout: Duration) -> Vec<common::Received>;
    fn wait_for_distinct(&self, n: usize, timeout: Duration) -> Vec<common::Received>;
}

impl WaitAll for Receiver {
    /// Waits for `n` requests on any path.
    fn wait_for_all(&self, n: usize, timeout: Duration) -> Vec<common::Received> {
        common::wait_for(timeout, &format!("{n} requests"), &mut || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
    }

    /// Waits for `n` distinct (path, webhook-id) deliveries.
    fn wait_for_distinct(&self, n: usize, timeout: Duration) -> Vec<common::Received> {
        common::wait_for(timeout, &format!("{n} distinct deliveries"), &mut || {
            let got = self.received();
            let distinct: std::collections::HashSet<(String, String)> = got
                .iter()
                .map(|r| (r.path.clone(), r.headers["webhook-id"].clone()))
                .collect();
            (distinct.len() >= n).then_some(got)
        })
    }
}
