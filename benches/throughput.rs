//! Herald's speed, measured (never asserted): `cargo bench --bench throughput`.
//!
//! Starts the release binary over a fresh SQLite file with `durability = full`, and a real
//! loopback receiver, then prints: start-up to ready, idle RSS, single publishes/s from 64
//! keep-alive clients (with latency percentiles), events/s through the batch endpoint,
//! deliveries/s end to end to one endpoint and spread over 100 endpoints, and
//! publish-to-arrival latency at a steady 1,000 events/s. Sizes scale with HERALD_BENCH_SCALE
//! (default 1.0). Load generator, server and receiver share the machine, so the figures are
//! a floor for what Herald does on its own.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Receiver, Reply, TestApp, ADMIN_TOKEN};

fn scale(n: usize) -> usize {
    let factor: f64 = std::env::var("HERALD_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * factor) as usize).max(1)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> u16 {
    agent
        .post(url)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .send(body)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn main() {
    let env = [("HERALD_DURABILITY", "full"), ("HERALD_LOG", "error")];
    let spawn_started = Instant::now();
    let app = TestApp::spawn_with(&env);
    let started_in = spawn_started.elapsed();
    let pid = app.pid().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    println!("Herald benchmark (durability = full, release build, loopback)");
    println!("  start-up to listening:          {}", ms(started_in));
    println!("  idle RSS:                        {} KiB", rss_kib(pid));

    publish_singles(&app);
    publish_batches(&app);
    drop(app);

    deliveries_one_endpoint(&env);
    deliveries_spread(&env);
    latency_at_steady_rate(&env);
}

/// 64 clients, keep-alive, one event per request, no endpoints (pure ingest).
fn publish_singles(app: &TestApp) {
    let clients = 64;
    let per_client = scale(20_000) / clients;
    let url = app.url("/api/v1/events");
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let url = url.clone();
                s.spawn(move || {
                    let agent = agent();
                    let mut lat = Vec::with_capacity(per_client);
                    for i in 0..per_client {
                        let body = format!(r#"{{"event":"bench.single","c":{c},"i":{i}}}"#);
                        let t = Instant::now();
                        assert_eq!(post(&agent, &url, &body), 202);
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    latencies.sort();
    let n = latencies.len();
    println!(
        "  single publishes, 64 clients:    {:>8.0} events/s  (n={n}, p50 {}, p99 {})",
        n as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
}

/// 8 clients posting batches of 500 events.
fn publish_batches(app: &TestApp) {
    let clients = 8;
    let batch = 500;
    let batches_per_client = (scale(200_000) / batch / clients).max(1);
    let url = app.url("/api/v1/events/batch");
    let items: Vec<String> = (0..batch)
        .map(|i| format!(r#"{{"event":"bench.batch","i":{i},"data":{{"ok":true}}}}"#))
        .collect();
    let body = format!(r#"{{"events":[{}]}}"#, items.join(","));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            let (url, body) = (&url, &body);
            s.spawn(move || {
                let agent = agent();
                for _ in 0..batches_per_client {
                    assert_eq!(post(&agent, url, body), 202);
                }
            });
        }
    });
    let n = clients * batches_per_client * batch;
    println!(
        "  batch publishes (500/request):   {:>8.0} events/s  (n={n})",
        n as f64 / started.elapsed().as_secs_f64()
    );
}

/// Publishes `events` through the batch endpoint, then waits until the receiver has them.
fn drain(app: &TestApp, receiver: &Receiver, events: Vec<String>) -> Duration {
    let agent = agent();
    let url = app.url("/api/v1/events/batch");
    let started = Instant::now();
    for chunk in events.chunks(500) {
        let body = format!(r#"{{"events":[{}]}}"#, chunk.join(","));
        assert_eq!(post(&agent, &url, &body), 202);
    }
    let total = events.len();
    common::wait_for(Duration::from_secs(600), "all deliveries", &mut || {
        (receiver.requests.lock().unwrap().len() >= total).then_some(())
    });
    started.elapsed()
}

fn deliveries_one_endpoint(env: &[(&str, &str)]) {
    let app = TestApp::spawn_with(env);
    let receiver = Receiver::ok();
    app.create_webhook(&receiver.url("/one"), &["*"]);
    let n = scale(20_000);
    let events = (0..n)
        .map(|i| format!(r#"{{"event":"bench.deliver","i":{i}}}"#))
        .collect();
    let took = drain(&app, &receiver, events);
    println!(
        "  deliveries, 1 endpoint:          {:>8.0} deliveries/s  (n={n}, endpoint_concurrency default)",
        n as f64 / took.as_secs_f64()
    );
    println!(
        "  RSS after load:                  {} KiB",
        rss_kib(app.pid().unwrap())
    );
}

fn deliveries_spread(env: &[(&str, &str)]) {
    let app = TestApp::spawn_with(env);
    let receiver = Receiver::ok();
    for e in 0..100 {
        app.create_webhook(&receiver.url(&format!("/e{e}")), &[&format!("bench.e{e}")]);
    }
    let n = scale(20_000);
    let events = (0..n)
        .map(|i| format!(r#"{{"event":"bench.e{}","i":{i}}}"#, i % 100))
        .collect();
    let took = drain(&app, &receiver, events);
    println!(
        "  deliveries, 100 endpoints:       {:>8.0} deliveries/s  (n={n})",
        n as f64 / took.as_secs_f64()
    );
}

/// Publishes at a steady 1,000 events/s and measures publish start → arrival.
fn latency_at_steady_rate(env: &[(&str, &str)]) {
    let app = TestApp::spawn_with(env);
    let receiver = Receiver::start(|_, _| Reply::status(200));
    app.create_webhook(&receiver.url("/lat"), &["*"]);
    let n = scale(3_000);
    let rate = 1_000.0;
    let clients = 8;
    let url = app.url("/api/v1/events");
    let started = Instant::now();
    let sent: HashMap<String, Instant> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let url = url.clone();
                s.spawn(move || {
                    let agent = agent();
                    let mut sent = HashMap::new();
                    for i in (c..n).step_by(clients) {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let t = Instant::now();
                        let body = format!(r#"{{"event":"bench.latency","i":{i}}}"#);
                        let response = agent
                            .post(&url)
                            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                            .send(&body)
                            .unwrap()
                            .into_body()
                            .read_to_string()
                            .unwrap();
                        let v: serde_json::Value = serde_json::from_str(&response).unwrap();
                        sent.insert(v["data"]["id"].as_str().unwrap().to_string(), t);
                    }
                    sent
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let got = receiver.wait_for("/lat", n, Duration::from_secs(120));
    let mut latencies: Vec<Duration> = got
        .iter()
        .filter_map(|r| {
            let t = sent.get(r.headers.get("webhook-id")?)?;
            Some(r.at.saturating_duration_since(*t))
        })
        .collect();
    latencies.sort();
    println!(
        "  publish→arrival at 1,000 ev/s:   p50 {}, p99 {}, max {}  (n={})",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        latencies.len()
    );
}
