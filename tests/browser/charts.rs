//! The operator's charts: the overview's activity charts and an endpoint's health, drawn
//! as SVG on the server, checked bar by bar against seeded attempts, at desktop and phone
//! width.

use std::time::Duration;

use crate::common::webdriver::{Browser, DESKTOP, PHONE};
use crate::common::{Receiver, TestApp};
use crate::{login_admin, shots, WAIT};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Adds attempts to delivery 1 as if it had been tried at these times (ms, status), and
/// counts them in the overview's hourly rollup as the recorder would (SQL both backends
/// take: PostgreSQL's rows also name a replica, which its default fills in).
fn seed_attempts(app: &TestApp, attempts: &[(i64, u16)]) {
    let mut statements = Vec::new();
    for (started_at, status) in attempts {
        statements.push(format!(
            "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code, error)
             VALUES (1, {started_at}, 120, {status}, {error})",
            error = if *status >= 300 {
                format!("'HTTP {status}'")
            } else {
                "NULL".into()
            }
        ));
        let hour = started_at.div_euclid(HOUR) * HOUR;
        let (ok, bad) = if *status < 300 { (1, 0) } else { (0, 1) };
        statements.push(format!(
            "UPDATE activity_hours SET succeeded = succeeded + {ok}, failed = failed + {bad}
             WHERE hour = {hour}"
        ));
        statements.push(format!(
            "INSERT INTO activity_hours (hour, succeeded, failed) SELECT {hour}, {ok}, {bad}
             WHERE NOT EXISTS (SELECT 1 FROM activity_hours WHERE hour = {hour})"
        ));
    }
    app.sql_exec(&statements);
}

fn bars(b: &Browser, chart: &str) -> (usize, usize) {
    let all = b.find_all(&format!("#{chart} g.bar")).len();
    let with_data = b.find_all(&format!("#{chart} g.bar:not(.empty)")).len();
    (all, with_data)
}

fn distinct_buckets(times: &[i64], size: i64) -> usize {
    let mut b: Vec<i64> = times.iter().map(|t| t.div_euclid(size)).collect();
    b.sort_unstable();
    b.dedup();
    b.len()
}

#[test]
fn charts_show_one_bar_per_slot_with_the_seeded_attempts() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "")]);
    let receiver = Receiver::ok();
    let hook = app.create_webhook(&receiver.url("/hook"), &["*"]);
    app.publish(serde_json::json!({"event": "order.created"}));
    receiver.wait_for("/hook", 1, WAIT);
    // A first attempt that succeeds is kept in its delivery's row, not in attempts.
    let first = app.wait_for(WAIT, "the attempt to be recorded", || {
        let n = app.sql_count("SELECT count(*) FROM deliveries WHERE sent_at IS NOT NULL");
        (n == 1).then(|| app.sql_count("SELECT sent_at FROM deliveries"))
    });
    assert_eq!(app.sql_count("SELECT count(*) FROM attempts"), 0);
    let now = now_ms();
    // The failure and the success five hours ago share an hour whatever the minute now:
    // both sit 20 and 21 minutes into that hour.
    let five_hours_ago = (now.div_euclid(HOUR) - 5) * HOUR + 20 * 60_000;
    let seeded = [
        (now - 2 * HOUR, 200),
        (five_hours_ago, 500),
        (five_hours_ago + 60_000, 200),
        (now - 3 * DAY, 200),
    ];
    seed_attempts(&app, &seeded);
    let in_24h: Vec<i64> = [first]
        .into_iter()
        .chain(seeded.iter().map(|(t, _)| *t))
        .filter(|t| *t >= (now.div_euclid(HOUR) - 23) * HOUR)
        .collect();
    let all_times: Vec<i64> = [first]
        .into_iter()
        .chain(seeded.iter().map(|(t, _)| *t))
        .collect();

    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    assert_eq!(
        bars(&b, "chart-hourly"),
        (24, distinct_buckets(&in_24h, HOUR))
    );
    assert_eq!(
        bars(&b, "chart-daily"),
        (7, distinct_buckets(&all_times, DAY))
    );
    // The only first attempt is the real one.
    assert_eq!(bars(&b, "chart-latency"), (24, 1));

    // The cards count attempts and deliveries apart, and agree with the hourly chart.
    assert_eq!(b.text("#attempts-succeeded-24h"), "3");
    assert_eq!(b.text("#attempts-failed-24h"), "1");
    assert_eq!(b.text("#success-rate"), "75.0 %");
    assert_eq!(b.text("#failed-24h"), "0");
    assert_eq!(b.text("#queue-depth"), "0");

    // Accessible: the SVG names itself, and every bar tells its figures.
    let svg = b.find("#chart-hourly svg");
    assert_eq!(svg.attr("role").as_deref(), Some("img"));
    let title = b
        .find("#chart-hourly-title")
        .property("textContent")
        .unwrap();
    assert_eq!(title, "Attempts per hour, last 24 h");
    let desc = b
        .find("#chart-hourly-desc")
        .property("textContent")
        .unwrap();
    assert!(desc.contains("3 succeeded and 1 failed"), "{desc}");
    let titles: Vec<String> = b
        .find_all("#chart-hourly g.bar:not(.empty) > title")
        .iter()
        .map(|t| t.property("textContent").unwrap())
        .collect();
    assert!(
        titles.iter().any(|t| t.ends_with("1 succeeded, 1 failed")),
        "{titles:?}"
    );
    shots(&b, "overview-charts");

    // Readable on a phone: the charts shrink to the screen instead of overflowing it.
    b.set_size(PHONE);
    b.goto(&app.url("/admin"));
    let page_width = b.find("main").rect().2;
    for chart in ["#chart-hourly", "#chart-daily", "#chart-latency"] {
        let (x, _, width, height) = b.find(&format!("{chart} svg")).rect();
        assert!(
            x >= 0.0 && x + width <= page_width + 1.0,
            "{chart}: {x}+{width} > {page_width}"
        );
        assert!(height > 80.0, "{chart} is {height}px high");
    }
    b.set_size(DESKTOP);

    // The endpoint's page: its attempts, response times, success rate, last failures.
    b.goto(&app.url(&format!("/admin/tenants/default/endpoints/{}", hook["id"])));
    assert_eq!(
        bars(&b, "chart-endpoint-attempts"),
        (24, distinct_buckets(&in_24h, HOUR))
    );
    assert_eq!(
        bars(&b, "chart-endpoint-response"),
        (24, distinct_buckets(&in_24h, HOUR))
    );
    assert!(
        b.text("#endpoint-success-rate").contains("75.0 %"),
        "{}",
        b.text("#endpoint-success-rate")
    );
    let failures = b.text("#last-failures");
    assert!(failures.contains("HTTP 500"), "{failures}");
    shots(&b, "endpoint-charts");

    // The New endpoint form leaves Events empty (a typed `book.*` stays `book.*`).
    b.goto(&app.url("/admin/tenants/default/endpoints/new"));
    let events = b.find("#events");
    assert_eq!(events.property("value").as_deref(), Some(""));
    assert!(events.attr("placeholder").unwrap().contains('*'));
}

/// Writes README's screenshots (docs/screenshot-overview.png, docs/screenshot-endpoint.png)
/// from a week of made-up traffic: `cargo test --test browser readme_screenshots -- --ignored`.
#[test]
#[ignore]
fn readme_screenshots() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "")]);
    let ok = Receiver::ok();
    let broken = Receiver::start(|_, _| crate::common::Reply::status(503));
    let hook = app.create_webhook(&ok.url("/orders"), &["order.*"]);
    app.create_webhook(&broken.url("/billing"), &["invoice.*"]);
    app.publish(serde_json::json!({"event": "order.created"}));
    app.publish(serde_json::json!({"event": "invoice.paid"}));
    broken.wait_for("/billing", 1, WAIT);
    ok.wait_for("/orders", 1, WAIT);
    std::thread::sleep(Duration::from_millis(300));

    // A week of deliveries to the first endpoint: a daily rhythm, a few failures, and an
    // incident three hours ago.
    let mut statements = Vec::new();
    let delivery = app.sql_last_id("deliveries");
    let mut hours = std::collections::BTreeMap::new();
    let mut latencies = std::collections::BTreeMap::new();
    let mut seed: u64 = 7;
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let now = now_ms();
    for h in (1..(7 * 24)).rev() {
        let hour = (now.div_euclid(HOUR) - h) * HOUR;
        let rhythm = 12 + ((hour / HOUR) % 24 - 12).unsigned_abs() * 3;
        for _ in 0..rhythm + rand(10) {
            let created = hour + rand(HOUR as u64 - 10_000) as i64;
            let latency = 15 + rand(60) as i64 + if rand(40) == 0 { 1_500 } else { 0 };
            let incident = h == 3;
            let status = if incident || rand(30) == 0 { 500 } else { 200 };
            let started = created + latency;
            let duration = 40 + rand(90) as i64;
            // As the recorder writes them: a success in its delivery row, a failure in an
            // attempts row, both counted in the rollups.
            let sent = if status == 200 {
                format!("{started}, {duration}, 200")
            } else {
                "NULL, NULL, NULL".into()
            };
            statements.push(format!(
                "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status, attempts,
                     created_at, updated_at, sent_at, sent_duration_ms, sent_status_code)
                 VALUES (1, {endpoint}, 'default', '{state}', 1, {created}, {created}, {sent})",
                endpoint = hook["id"].as_i64().unwrap(),
                state = if status == 200 { "succeeded" } else { "failed" },
            ));
            if status != 200 {
                statements.push(format!(
                    "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code, error)
                     VALUES ({delivery}, {started}, {duration}, {status}, 'HTTP {status}')"
                ));
            }
            let hour_of = started.div_euclid(HOUR) * HOUR;
            let counts = hours.entry(hour_of).or_insert((0, 0));
            if status == 200 {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
            *latencies
                .entry((hour_of, herald::store::latency_bucket(latency)))
                .or_insert(0) += 1;
        }
    }
    for (hour, (ok, bad)) in hours {
        statements.push(format!(
            "INSERT INTO activity_hours (hour, succeeded, failed) VALUES ({hour}, {ok}, {bad})"
        ));
    }
    for ((hour, bucket), n) in latencies {
        statements.push(format!(
            "INSERT INTO latency_hours (hour, bucket, count) VALUES ({hour}, {bucket}, {n})"
        ));
    }
    app.sql_exec(&statements);

    let docs = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    let b = Browser::start((1280, 1500));
    login_admin(&b, &app);
    b.screenshot(&docs.join("screenshot-overview.png"));
    b.goto(&app.url(&format!("/admin/tenants/default/endpoints/{}", hook["id"])));
    b.screenshot(&docs.join("screenshot-endpoint.png"));
    b.set_size((390, 1400));
    b.goto(&app.url("/admin"));
    b.screenshot(&docs.join("screenshot-overview-phone.png"));
}

/// Security review (issue 23, item 5): on SQLite, an hour whose attempts all got no HTTP
/// answer summed to NULL, the overview's read failed and `/admin` said the database was
/// unavailable — the dashboard broke exactly during an outage.
#[test]
fn the_overview_works_when_no_attempt_got_an_http_answer() {
    let app = TestApp::spawn_with(&[("HERALD_RETRY_SCHEDULE", "")]);
    // A port nothing listens on: bound, then freed, so the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    app.create_webhook(&format!("http://127.0.0.1:{port}/hook"), &["*"]);
    app.publish(serde_json::json!({"event": "order.created"}));
    app.wait_for(WAIT, "the refused attempt to be recorded", || {
        let n = app.sql_count("SELECT count(*) FROM attempts WHERE status_code IS NULL");
        (n == 1).then_some(())
    });
    assert_eq!(app.sql_count("SELECT count(*) FROM attempts"), 1);

    let b = Browser::start(DESKTOP);
    login_admin(&b, &app);
    assert!(b.text("h1").contains("Overview"), "{}", b.text("main"));
    assert_eq!(b.text("#attempts-succeeded-24h"), "0");
    assert_eq!(b.text("#attempts-failed-24h"), "1");
    assert_eq!(bars(&b, "chart-hourly"), (24, 1));
}
