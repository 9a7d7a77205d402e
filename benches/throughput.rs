//! Herald's speed, measured (never asserted): `cargo bench --bench throughput`.
//!
//! Starts the release binary over a fresh SQLite file (`durability = full`, private targets
//! allowed, a fixed admin token, `127.0.0.1:0`) and an in-process receiver, then prints:
//! start-up to ready, idle RSS, single publishes/s from 64 keep-alive clients (p50/p99),
//! events/s through the batch endpoint, deliveries/s end to end to 1 endpoint, to 10
//! subscribed endpoints (fan-out), spread over 100 endpoints and to 1 endpoint through a
//! transformation (the JavaScript sandbox on every delivery), single publishes to 100
//! endpoints with payload filters beside 100 without (`routed_publishes`), and publish → arrival
//! latency at a steady 1,000 and 200 events/s on the instance that already carries the
//! history of the throughput runs. Beside every rate it prints Herald's own CPU time (user +
//! system from `/proc/<pid>/stat`) per event, the figure that holds from machine to machine,
//! and the benchmark's own CPU split by role (load generator, receiver), so a reader can see
//! which side was saturated.
//!
//! Knobs: `HERALD_BENCH_SCALE` (default 1.0) scales every size; `HERALD_BENCH_BIN` benches
//! another `herald` binary instead of the one cargo built for this run;
//! `HERALD_BENCH_GEN_THREADS` (default 1, at most 2 makes sense here) sets the load
//! generator's threads. `HERALD_BENCH_DURABILITY=normal` runs Herald without an fsync per
//! commit (what the fsyncs cost; the targets are measured at `full`). `HERALD_BENCH_ONLY=scale` runs only the scale rows (`scale_rows`:
//! deliveries/s and Herald CPU per delivery to 1, 100, 1,000 and 5,000 endpoints, a fresh
//! Herald each). `HERALD_BENCH_PG_URL=<superuser URL>` runs the PostgreSQL figures
//! instead (`postgres_runs`): publishes on one replica, and 1 vs 3 replicas delivering
//! through a 20 ms receiver, each with PostgreSQL's own CPU per event when its server runs
//! on this machine (`PgServer`); `eval "$(HERALD_PG_DURABLE=1 .ci/postgres.sh start)"`
//! starts a private server. Other `HERALD_*` settings in the environment reach Herald as
//! usual.
//!
//! How it is built, and why:
//! - The load generator and the receiver are async (tokio) and speak HTTP/1.1 over
//!   keep-alive connections through the small hand-written client and server below
//!   (`Wire`): request out, status line + `Content-Length` or chunked body back. hyper 1 +
//!   hyper-util + http-body-util would add about a dozen crates to every CI build (clippy
//!   `--all-targets` compiles this file), for nothing this needs.
//! - Only tokio features the crate already builds are used (rt, net, io-util, time, sync), so
//!   dev builds compile tokio, actix and Herald once. Enabling `rt-multi-thread` would
//!   compile them a second time with other features under `cargo test`. Instead each role
//!   runs a current-thread runtime on its own named thread (`bench-gen-N`, `bench-recv`),
//!   which also lets the benchmark read its CPU per role from `/proc/self/task/*/stat`.
//! - The receiver answers 200 at once, counts arrivals and reads the `"seq"` the publisher
//!   wrote into the payload, so publish → arrival latency compares two readings of one
//!   monotonic clock in one process.
//!
//! Generator, receiver and Herald share the machine's cores, so the rates are a floor for
//! what Herald does alone; the CPU-per-event figures are not affected by that sharing.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
/// `durability = full` (every commit fsynced: what the targets are measured with) unless
/// `HERALD_BENCH_DURABILITY=normal` asks otherwise, to show what the fsyncs cost.
fn durability() -> String {
    std::env::var("HERALD_BENCH_DURABILITY").unwrap_or_else(|_| "full".into())
}

/// Keep-alive clients for the single-publish runs (DESIGN.md's figure).
const CLIENTS: usize = 64;
/// Events per request in the batch run.
const BATCH: usize = 500;
/// How long a delivery run may take before the benchmark reports it incomplete.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    let bench = Bench::new();
    bench.header();
    if let Ok(server) = std::env::var("HERALD_BENCH_PG_URL") {
        print_table(&postgres_runs(&bench, &server));
        return;
    }
    if std::env::var("HERALD_BENCH_ONLY").as_deref() == Ok("scale") {
        print_table(&scale_rows(&bench));
        return;
    }
    let mut rows = Vec::new();

    // One long-lived instance: ingest, then deliveries to 1 endpoint; it keeps that history
    // for the latency runs at the end.
    let main = Herald::start(&bench);
    let idle_cpu = bench.idle_cores(&main);
    let idle_rss = main.rss_kib();
    let mut startups = vec![main.started];
    println!(
        "start-up: listening {}, ready (/readyz 200) {}; idle RSS {:.1} MiB, idle CPU {:.3} cores",
        ms0(main.started.listening),
        ms0(main.started.ready),
        idle_rss as f64 / 1024.0,
        idle_cpu
    );
    rows.push(single_publishes(&bench, &main));
    rows.push(batch_publishes(&bench, &main));
    let one = deliveries(
        &bench,
        &main,
        Shape::One,
        "deliveries to 1 endpoint (fed by single publishes)",
    );
    let workers_us = one.1;
    rows.push(one.0);
    rows.push(Row::plain(
        "of which worker threads (sign, HTTP request and answer, verdict)",
        format!("{workers_us:.0} µs per delivery"),
        "—",
    ));
    rows.push(client_requests(&bench));

    let fan = Herald::start(&bench);
    startups.push(fan.started);
    rows.push(
        deliveries(
            &bench,
            &fan,
            Shape::FanOut(10),
            "fan-out: 10 endpoints per publish",
        )
        .0,
    );
    drop(fan);

    let spread = Herald::start(&bench);
    startups.push(spread.started);
    rows.push(
        deliveries(
            &bench,
            &spread,
            Shape::Spread(100),
            "deliveries spread over 100 endpoints",
        )
        .0,
    );
    drop(spread);

    let shaped = Herald::start(&bench);
    startups.push(shaped.started);
    rows.push(
        deliveries(
            &bench,
            &shaped,
            Shape::Transformed,
            "deliveries to 1 endpoint with a transformation",
        )
        .0,
    );
    drop(shaped);

    // Payload filters (issue 21, item 2): the publish cost with 100 endpoints that carry
    // filters, beside 100 that do not, each publish matching exactly one of them.
    for filtered in [false, true] {
        let routed = Herald::start(&bench);
        startups.push(routed.started);
        rows.push(routed_publishes(&bench, &routed, filtered));
    }

    rows.extend(scale_rows(&bench));

    println!(
        "\nthe first instance again, idle after its delivery run: Herald CPU {:.3} cores",
        bench.idle_cores(&main)
    );
    rows.push(latency(&bench, &main, 1_000.0, scale(5_000), 1));
    rows.push(latency(&bench, &main, 200.0, scale(2_000), 2));
    let loaded_rss = main.rss_kib();
    println!("RSS after load: {:.1} MiB", loaded_rss as f64 / 1024.0);
    drop(main);

    let fastest = startups.iter().map(|s| s.ready).min().unwrap_or_default();
    let slowest = startups.iter().map(|s| s.ready).max().unwrap_or_default();
    let listening = startups
        .iter()
        .map(|s| s.listening)
        .min()
        .unwrap_or_default();
    rows.insert(
        0,
        Row::plain(
            "start-up to ready",
            format!(
                "{}–{} ({} runs; listening from {})",
                ms0(fastest),
                ms0(slowest),
                startups.len(),
                ms0(listening)
            ),
            "< 100 ms",
        ),
    );
    rows.insert(
        1,
        Row::plain(
            "idle RSS",
            format!(
                "{:.1} MiB ({:.1} MiB after load)",
                idle_rss as f64 / 1024.0,
                loaded_rss as f64 / 1024.0
            ),
            "< 15 MB",
        ),
    );
    print_table(&rows);
}

// ---------------------------------------------------------------------------------------
// Scenarios

/// The PostgreSQL backend (`HERALD_BENCH_PG_URL=<superuser URL>`; `.ci/postgres.sh start`
/// gives one): single publishes on one replica, then deliveries through a receiver that
/// takes 20 ms per request with 1 and with 3 replicas on one database. Each replica runs
/// 16 workers, so one replica can have at most 16 requests out (800 deliveries/s at 20 ms)
/// and concurrency, not this machine's CPU, bounds the rate: the replicas' gain is the
/// figure.
fn postgres_runs(bench: &Bench, server: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let db = PgDatabase::create(server);
    let one = Herald::start_on(bench, &db.url, &[]);
    println!(
        "\nPostgreSQL ({}), one replica ready in {}",
        server.rsplit('@').next().unwrap_or(server),
        ms0(one.started.ready)
    );
    let pg = PgServer::find(server);
    let pg_before = pg.ticks();
    let (mut row, published) = single_publishes_counted(bench, &one);
    let pg_us = pg.us_per(pg_before, published, bench.hz);
    println!(
        "  PostgreSQL CPU {} per published event",
        pg_us.map_or("unknown (server process not found)".into(), |us| format!(
            "{us:.0} µs"
        ))
    );
    row.figure = format!("PostgreSQL, 1 replica: {}", row.figure);
    if let Some(us) = pg_us {
        row.cpu = format!("{}; PostgreSQL {us:.0} µs", row.cpu);
    }
    row.target = "≥ 6,000/s; PostgreSQL ≤ 200 µs".into();
    rows.push(row);
    drop(one);
    drop(db);

    let mut rates = Vec::new();
    for replicas in [1, 3] {
        let (row, rate) = slow_receiver_deliveries(bench, server, &pg, replicas);
        rows.push(row);
        rates.push(rate);
    }
    let gain = rates[1] / rates[0].max(1e-9);
    println!("\n3 replicas deliver {gain:.2}x what 1 replica delivers");
    rows.push(Row::plain(
        "PostgreSQL: 3 replicas / 1 replica (20 ms receiver)",
        format!("{gain:.2}x"),
        "≥ 2.5x",
    ));
    rows
}

/// `replicas` Herald processes on a fresh database, 40 endpoints on the 20 ms receiver,
/// events published in batches spread over the replicas; the rate is deliveries over the
/// time from the first arrival to the last.
fn slow_receiver_deliveries(
    bench: &Bench,
    server: &str,
    pg: &PgServer,
    replicas: usize,
) -> (Row, f64) {
    const ENDPOINTS: usize = 40;
    let db = PgDatabase::create(server);
    let key = format!("{:064x}", now_ns() as u128 * 7919);
    let env = [
        ("HERALD_WORKERS", "16"),
        ("HERALD_SECRET_KEY", key.as_str()),
    ];
    let apps: Vec<Herald> = (0..replicas)
        .map(|_| Herald::start_on(bench, &db.url, &env))
        .collect();
    for e in 0..ENDPOINTS {
        let url = format!("http://{}/r{e}", bench.slow_addr);
        bench.create_webhook(apps[0].addr, &url, &format!("bench.r{e}"));
    }
    let events = scale(8_000);
    let batches: Vec<Arc<[u8]>> = (0..events.div_ceil(BATCH))
        .map(|b| {
            let items: Vec<String> = (b * BATCH..((b + 1) * BATCH).min(events))
                .map(|i| format!(r#"{{"event":"bench.r{}","i":{i}}}"#, i % ENDPOINTS))
                .collect();
            format!(r#"{{"events":[{}]}}"#, items.join(","))
                .into_bytes()
                .into()
        })
        .collect();
    let base = bench.arrivals.count.load(SeqCst);
    let first_ns = now_ns();
    let before: Vec<Snapshot> = apps.iter().map(|h| bench.cpu(h)).collect();
    let pg_before = pg.ticks();
    let addrs: Vec<SocketAddr> = apps.iter().map(|h| h.addr).collect();
    let batches = Arc::new(batches);
    let published: usize = bench
        .on_clients(batches.len(), |b| {
            let (batches, addr) = (batches.clone(), addrs[b % addrs.len()]);
            async move {
                let mut client = Client::connect(addr).await.ok()?;
                match client
                    .send("POST", "/api/v1/events/batch", &batches[b])
                    .await
                {
                    Ok((202, _)) => Some(BATCH),
                    _ => None,
                }
            }
        })
        .into_iter()
        .flatten()
        .sum::<usize>()
        .min(events);
    let expected = published as u64;
    let got = bench.wait_arrivals(base + expected, DRAIN_TIMEOUT) - base;
    // Publishes included: the figure is what PostgreSQL spends per delivered event.
    let pg_us = pg.us_per(pg_before, got as usize, bench.hz);
    let last = bench.arrivals.last_ns.load(SeqCst);
    let wall = (last.saturating_sub(first_ns)) as f64 / 1e9;
    let rate = got as f64 / wall.max(1e-9);
    let herald_cores: f64 = apps
        .iter()
        .zip(&before)
        .map(|(h, b)| {
            let u = bench.cpu(h).since(b);
            u.herald / u.wall.max(1e-9)
        })
        .sum();
    let figure = format!(
        "PostgreSQL, {replicas} replica{}: deliveries, 20 ms receiver",
        if replicas == 1 { "" } else { "s" }
    );
    let measured = format!("{} deliveries/s", thousands(rate));
    let pg_figure = pg_us.map_or(String::new(), |us| {
        format!("; PostgreSQL {us:.0} µs per delivery (its publish included)")
    });
    println!(
        "\n{figure}: {measured}  [{got} of {expected} in {wall:.2} s; Herald {herald_cores:.2} cores in all{pg_figure}]"
    );
    if got < expected {
        println!("  INCOMPLETE: {} deliveries missing", expected - got);
    }
    let row = Row {
        figure,
        measured,
        cpu: format!("{herald_cores:.2} cores (all replicas){pg_figure}"),
        bench: "—".into(),
        target: if replicas == 1 {
            "—"
        } else {
            "≥ 2.5x 1 replica"
        }
        .into(),
    };
    (row, rate)
}

/// A fresh database on the benchmark's PostgreSQL server, dropped at the end.
struct PgDatabase {
    server: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(server: &str) -> PgDatabase {
        let name = format!("herald_bench_{}", now_ns());
        let mut c =
            postgres::Client::connect(server, postgres::NoTls).expect("connect to PostgreSQL");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a database");
        let (base, _) = server.rsplit_once('/').expect("a URL with a database name");
        PgDatabase {
            server: server.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The PostgreSQL server the benchmark runs against, when it is on this machine: its
/// CPU is the postmaster's own and its children's (the backends, the WAL writer, the
/// checkpointer), read from /proc. A backend that exits (a connection closed) is counted
/// in the postmaster's `cutime`/`cstime` once reaped, so nothing is lost between readings.
/// The postmaster is found by `postmaster.pid` in `HERALD_BENCH_PG_DATA`, or in
/// `$HERALD_TEST_PG_DIR/data` (what `.ci/postgres.sh start` exports), else by a
/// `postgres` process whose command line names the URL's port.
struct PgServer {
    postmaster: Option<u32>,
}

impl PgServer {
    fn find(url: &str) -> PgServer {
        let data = std::env::var_os("HERALD_BENCH_PG_DATA")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HERALD_TEST_PG_DIR").map(|d| PathBuf::from(d).join("data"))
            });
        let from_pid_file = data
            .and_then(|d| std::fs::read_to_string(d.join("postmaster.pid")).ok())
            .and_then(|t| t.lines().next()?.trim().parse().ok());
        let postmaster = from_pid_file.or_else(|| {
            let port = url
                .rsplit('@')
                .next()?
                .split('/')
                .next()?
                .rsplit(':')
                .next()?
                .to_owned();
            std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
                let pid: u32 = p.file_name().to_str()?.parse().ok()?;
                let cmd = std::fs::read(p.path().join("cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                let named =
                    cmd.contains(&format!("port={port}")) || cmd.contains(&format!("-p {port}"));
                (cmd.contains("postgres") && named).then_some(pid)
            })
        });
        if postmaster.is_none() {
            println!("(PostgreSQL's server process not found on this machine: no PostgreSQL CPU figures)");
        }
        PgServer { postmaster }
    }

    /// The server's user + system ticks so far.
    fn ticks(&self) -> Option<u64> {
        let pm = self.postmaster?;
        let fields = |path: String| -> Option<(u32, Vec<u64>)> {
            let text = std::fs::read_to_string(path).ok()?;
            let rest: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
            // rest[1] is the ppid (field 4); utime, stime, cutime, cstime are fields 14-17.
            let ppid = rest.get(1)?.parse().ok()?;
            let times = rest
                .get(11..15)?
                .iter()
                .filter_map(|f| f.parse().ok())
                .collect();
            Some((ppid, times))
        };
        let (_, own) = fields(format!("/proc/{pm}/stat"))?;
        let mut ticks: u64 = own.iter().sum();
        for p in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, times)) = fields(format!("/proc/{pid}/stat")) {
                if ppid == pm {
                    ticks += times.iter().take(2).sum::<u64>();
                }
            }
        }
        Some(ticks)
    }

    /// µs of the server's CPU per unit of work since `before`.
    fn us_per(&self, before: Option<u64>, units: usize, hz: f64) -> Option<f64> {
        let spent = self.ticks()?.saturating_sub(before?);
        Some(spent as f64 / hz * 1e6 / units.max(1) as f64)
    }
}

/// 64 keep-alive clients, one event per request, no endpoints: pure ingest.
fn single_publishes(bench: &Bench, herald: &Herald) -> Row {
    single_publishes_counted(bench, herald).0
}

/// `single_publishes`, and how many publishes were accepted.
fn single_publishes_counted(bench: &Bench, herald: &Herald) -> (Row, usize) {
    let n = scale(50_000);
    let before = bench.cpu(herald);
    let result = bench.publish_singles(herald.addr, CLIENTS, n, |i| {
        format!(r#"{{"event":"bench.single","i":{i}}}"#)
    });
    let usage = bench.cpu(herald).since(&before);
    let mut lat = result.latencies.clone();
    lat.sort_unstable();
    let rate = result.ok as f64 / usage.wall;
    let measured = format!(
        "{} events/s (p50 {}, p99 {})",
        thousands(rate),
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99))
    );
    println!(
        "\nsingle publishes, {CLIENTS} clients: {measured}  [n={}]",
        result.ok
    );
    result.warn();
    usage.print(result.ok, "published event");
    let row = Row::new(
        "single publishes, 64 keep-alive clients",
        measured,
        &usage,
        result.ok,
        "≥ 20,000/s, p99 < 20 ms",
    );
    (row, result.ok)
}

/// Single publishes to an instance with 100 paused endpoints, each publish matching exactly
/// one of them (so both runs insert one delivery per event and send nothing): without
/// filters each endpoint subscribes to its own event type (`bench.r{k}`); with filters all
/// subscribe to `bench.r` and carry `$.data.k == {k} && $.data.amount > 10` (a parse of
/// the payload and 100 evaluations per publish). The difference of the two CPU figures is
/// what the filters cost.
fn routed_publishes(bench: &Bench, herald: &Herald, filtered: bool) -> Row {
    const ENDPOINTS: usize = 100;
    for k in 0..ENDPOINTS {
        let url = format!("http://{}/r{k}", bench.recv_addr);
        let body = if filtered {
            format!(
                r#"{{"url":"{url}","events":["bench.r"],"status":"paused","filter":"$.data.k == {k} && $.data.amount > 10"}}"#
            )
        } else {
            format!(r#"{{"url":"{url}","events":["bench.r{k}"],"status":"paused"}}"#)
        };
        bench.post_created(herald.addr, "/api/v1/webhooks", body);
    }
    let n = scale(30_000);
    let before = bench.cpu(herald);
    let result = bench.publish_singles(herald.addr, CLIENTS, n, move |i| {
        let k = i % ENDPOINTS;
        let kind = if filtered {
            "bench.r".to_string()
        } else {
            format!("bench.r{k}")
        };
        format!(
            r#"{{"event":"{kind}","i":{i},"data":{{"k":{k},"amount":{},"currency":"EUR","customer":{{"id":"c{i}","tier":"gold"}}}}}}"#,
            100 + i % 900
        )
    });
    let usage = bench.cpu(herald).since(&before);
    let mut lat = result.latencies.clone();
    lat.sort_unstable();
    let rate = result.ok as f64 / usage.wall;
    let measured = format!(
        "{} events/s (p50 {}, p99 {})",
        thousands(rate),
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99))
    );
    let figure = if filtered {
        "single publishes, 100 endpoints with payload filters (1 match each)"
    } else {
        "single publishes, 100 endpoints without filters (1 match each)"
    };
    println!(
        "
{figure}: {measured}  [n={}]",
        result.ok
    );
    result.warn();
    usage.print(result.ok, "published event");
    Row::new(
        figure,
        measured,
        &usage,
        result.ok,
        "flat: filters ≈ no filters",
    )
}

/// 8 clients posting 500-event batches, no endpoints.
fn batch_publishes(bench: &Bench, herald: &Herald) -> Row {
    let clients = 8;
    let requests = (scale(200_000) / BATCH).max(clients);
    let items: Vec<String> = (0..BATCH)
        .map(|i| format!(r#"{{"event":"bench.batch","i":{i},"data":{{"ok":true}}}}"#))
        .collect();
    let body: Arc<[u8]> = format!(r#"{{"events":[{}]}}"#, items.join(","))
        .into_bytes()
        .into();
    let addr = herald.addr;
    let next = Arc::new(AtomicUsize::new(0));
    let before = bench.cpu(herald);
    let results = bench.on_clients(clients, |_| {
        let (next, body) = (next.clone(), body.clone());
        async move {
            let mut out = Outcome::default();
            let Some(mut client) = out.connect(addr).await else {
                return out;
            };
            while next.fetch_add(1, SeqCst) < requests {
                match client.send("POST", "/api/v1/events/batch", &body).await {
                    Ok((202, _)) => out.ok += BATCH,
                    Ok((status, body)) => out.failed(status, &body),
                    Err(e) => match out.reconnect(addr, e).await {
                        Some(c) => client = c,
                        None => break,
                    },
                }
            }
            out
        }
    });
    let usage = bench.cpu(herald).since(&before);
    let result = Outcome::merge(results);
    let measured = format!("{} events/s", thousands(result.ok as f64 / usage.wall));
    println!(
        "\nbatch publishes ({BATCH}/request, {clients} clients): {measured}  [n={}]",
        result.ok
    );
    result.warn();
    usage.print(result.ok, "published event");
    Row::new(
        "batch publishes (500 per request)",
        measured,
        &usage,
        result.ok,
        "≥ 50,000/s",
    )
}

/// How the cost grows with the number of endpoints (issue 22, item 5): for 1, 100, 1,000
/// and 5,000 endpoints, all subscribed to every event, a fresh Herald takes batch publishes
/// of about 40,000 deliveries in all (at scale 1.0: 40,000 events to one endpoint, 8 to
/// each of 5,000), and the clock stops at the last arrival. Herald's CPU per delivery over
/// that window, beside the 1-endpoint row's, is the figure: a dispatcher whose rounds walked
/// every endpoint shows it growing with the count.
fn scale_rows(bench: &Bench) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut base_us = None;
    for endpoints in [1, 100, 1_000, 5_000] {
        let herald = Herald::start(bench);
        bench.create_webhooks(herald.addr, endpoints);
        let events = (scale(40_000) / endpoints).max(1);
        let expected = (events * endpoints) as u64;
        let expected_base = bench.arrivals.count.load(SeqCst);
        let before = bench.cpu(&herald);
        let result = bench.publish_batches(herald.addr, events, "bench.scale");
        let got = bench.wait_arrivals(expected_base + expected, DRAIN_TIMEOUT) - expected_base;
        let last = bench.arrivals.last_ns.load(SeqCst);
        let mut usage = bench.cpu(&herald).since(&before);
        if got == expected {
            usage.wall = (last.saturating_sub(before.ns)) as f64 / 1e9;
        }
        let rate = got as f64 / usage.wall;
        let us = usage.per_event_us(got as usize);
        let base = *base_us.get_or_insert(us);
        let measured = format!(
            "{} deliveries/s, {:.2}× the 1-endpoint CPU",
            thousands(rate),
            us / base.max(1e-9)
        );
        let figure = format!(
            "scale: {} endpoints, all subscribed ({events} events)",
            thousands(endpoints as f64)
        );
        println!("\n{figure}: {measured}  [{got} deliveries of {expected} expected]");
        if got < expected {
            println!(
                "  INCOMPLETE: {} deliveries missing after {DRAIN_TIMEOUT:?}",
                expected - got
            );
        }
        result.warn();
        usage.print(got as usize, "delivery");
        let target = match endpoints {
            1 => "≤ 100 µs",
            100 => "≤ 110 µs",
            1_000 => "flat",
            _ => "≥ 10,000/s; ≤ 120 µs",
        };
        rows.push(Row::new(&figure, measured, &usage, got as usize, target));
    }
    rows
}

#[derive(Clone, Copy)]
enum Shape {
    /// Every event to one endpoint.
    One,
    /// Every event to each of N endpoints.
    FanOut(usize),
    /// Event `i` to endpoint `i % N` only (one event type per endpoint).
    Spread(usize),
    /// Every event to one endpoint whose transformation reshapes it (README: Transformations).
    Transformed,
}

/// The transformation of `Shape::Transformed`: a new body, a header, as a Slack relay would.
const BENCH_TRANSFORMATION: &str = "function handler(w) { w.payload = { text: w.eventType + ' #' + w.payload.i }; w.headers['X-Bench'] = 'shaped'; return w; }";

/// Registers endpoints on the receiver, then 64 clients publish single events as fast as
/// Herald takes them; the clock stops when the last delivery arrives. CPU per event is
/// Herald's CPU over that whole window (publish and delivery) divided by deliveries.
fn deliveries(bench: &Bench, herald: &Herald, shape: Shape, figure: &str) -> (Row, f64) {
    let (endpoints, publishes, per_publish) = match shape {
        Shape::One => (1, scale(30_000), 1),
        Shape::FanOut(k) => (k, scale(5_000), k),
        Shape::Spread(k) => (k, scale(30_000), 1),
        Shape::Transformed => (1, scale(30_000), 1),
    };
    for e in 0..endpoints {
        let filter = match shape {
            Shape::Spread(_) => format!("bench.s{e}"),
            _ => "*".to_string(),
        };
        let url = format!("http://{}/e{e}", bench.recv_addr);
        match shape {
            Shape::Transformed => bench.create_webhook_with(
                herald.addr,
                &url,
                &filter,
                &format!(
                    r#","transformation":{}"#,
                    serde_json::json!(BENCH_TRANSFORMATION)
                ),
            ),
            _ => bench.create_webhook(herald.addr, &url, &filter),
        }
    }
    let expected_base = bench.arrivals.count.load(SeqCst);
    let connections_base = bench.arrivals.connections.load(SeqCst);
    let before = bench.cpu(herald);
    let result = bench.publish_singles(herald.addr, CLIENTS, publishes, move |i| match shape {
        Shape::Spread(k) => format!(r#"{{"event":"bench.s{}","i":{i}}}"#, i % k),
        _ => format!(r#"{{"event":"bench.deliver","i":{i}}}"#),
    });
    let published_in = before.at.elapsed().as_secs_f64();
    let expected = (result.ok * per_publish) as u64;
    let got = bench.wait_arrivals(expected_base + expected, DRAIN_TIMEOUT) - expected_base;
    let after = bench.cpu(herald);
    let last = bench.arrivals.last_ns.load(SeqCst);
    let mut usage = after.since(&before);
    if got == expected {
        // The poll above lags the last arrival by a few ms; the rate uses the arrival.
        usage.wall = (last.saturating_sub(before.ns)) as f64 / 1e9;
    }
    let rate = got as f64 / usage.wall;
    let measured = match shape {
        Shape::FanOut(_) => format!(
            "{} deliveries/s ({} publishes/s)",
            thousands(rate),
            thousands(rate / per_publish as f64)
        ),
        _ => format!("{} deliveries/s", thousands(rate)),
    };
    println!("\n{figure}: {measured}  [{got} deliveries of {expected} expected]");
    println!(
        "  publishing took {:.2} s ({} publishes/s), last delivery at {:.2} s",
        published_in,
        thousands(result.ok as f64 / published_in),
        usage.wall
    );
    if got < expected {
        println!(
            "  INCOMPLETE: {} deliveries missing after {DRAIN_TIMEOUT:?}",
            expected - got
        );
    }
    result.warn();
    usage.print(got as usize, "delivery");
    if per_publish > 1 {
        println!(
            "  Herald CPU per publish (with its {per_publish} deliveries): {:.0} µs",
            usage.herald * 1e6 / result.ok.max(1) as f64
        );
    }
    let workers_us = usage.role("herald-worker") * 1e6 / got.max(1) as f64;
    println!(
        "  worker threads (sign, HTTP request and answer, verdict): {workers_us:.0} µs per \
         delivery; the receiver accepted {} connections",
        bench.arrivals.connections.load(SeqCst) - connections_base
    );
    let target = match shape {
        Shape::One => "≥ 10,000/s; ≤ 100 µs CPU/event",
        Shape::FanOut(_) => "—",
        Shape::Spread(_) => "≥ 10,000/s",
        Shape::Transformed => "— (beside the 1-endpoint row)",
    };
    (
        Row::new(figure, measured, &usage, got as usize, target),
        workers_us,
    )
}

/// ureq's cost per request on its own, through Herald's client path (`engine::http`: its
/// agent, TCP transport and response handling) from this thread to the in-process
/// receiver, one request after another on one keep-alive connection, with a delivery's
/// body and headers; and the signing of one delivery beside it. CPU is this thread's
/// (schedstat), so the receiver's share is not in it; the workers' figure in the delivery
/// rows adds their hand-offs to the board and the recorder.
fn client_requests(bench: &Bench) -> Row {
    use herald::wire::signing::{self, HeaderNames, Scheme, SignInput};
    let n = scale(20_000).max(1_000);
    let config = herald::config::Config {
        allow_private_targets: true,
        ..Default::default()
    };
    let agent = herald::engine::http::agent(&config);
    let url = format!("http://{}/client", bench.recv_addr);
    let body = format!(
        r#"{{"event":"bench.deliver","timestamp":"2026-12-03T12:00:00Z","data":{{"i":1,"s":"{}"}}}}"#,
        "x".repeat(200)
    );
    let secret = signing::generate_secret();
    let names = HeaderNames::default();
    let sign = |i: usize| {
        signing::sign(
            &[Scheme::Standard],
            &names,
            &SignInput {
                event_id: "evt_01J9Z6Q4N3XK8R2V5T7W0YB1CD",
                timestamp: 1_764_763_200 + i as i64,
                body: body.as_bytes(),
                secret: &secret,
                previous_secret: None,
            },
        )
    };
    let thread_ns = || {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let warm = herald::engine::http::post(&agent, &url, &sign(0), &body, None);
    assert_eq!(warm.status, Some(200), "{:?}", warm.error);
    let connections = bench.arrivals.connections.load(SeqCst);
    let (cpu0, t0) = (thread_ns(), Instant::now());
    for i in 0..n {
        let r = herald::engine::http::post(&agent, &url, &sign(i), &body, None);
        assert_eq!(r.status, Some(200), "{:?}", r.error);
    }
    let (cpu, wall) = (thread_ns() - cpu0, t0.elapsed());
    let sign0 = thread_ns();
    for i in 0..n {
        std::hint::black_box(sign(i));
    }
    let signing = thread_ns() - sign0;
    let per = |ns: u64| ns as f64 / 1e3 / n as f64;
    let measured = format!(
        "{:.1} µs CPU ({:.1} µs wall) per request, of which signing {:.1} µs; {} new connections",
        per(cpu),
        per(wall.as_nanos() as u64),
        per(signing),
        bench.arrivals.connections.load(SeqCst) - connections
    );
    println!(
        "
one request through Herald's HTTP client, sequential, keep-alive: {measured}  [n={n}]"
    );
    Row::plain(
        "one request through Herald's HTTP client (ureq), sequential",
        measured,
        "—",
    )
}

/// Publishes `n` events at a steady `rate` from 16 keep-alive connections and measures
/// publish (request written) → arrival at the receiver, matched by the payload's `seq`.
fn latency(bench: &Bench, herald: &Herald, rate: f64, n: usize, round: u64) -> Row {
    let conns = 16;
    let seq_base = round * 1_000_000_000;
    let addr = herald.addr;
    let base = bench.arrivals.count.load(SeqCst);
    bench.arrivals.seqs.lock().unwrap().clear();
    let before = bench.cpu(herald);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let sent: Vec<Vec<(u64, u64, u64)>> = bench.on_clients(conns, |c| async move {
        let mut sent = Vec::new();
        let mut client = Client::connect(addr).await.expect("connect to herald");
        for i in (c..n).step_by(conns) {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
            let seq = seq_base + i as u64;
            let body = format!(r#"{{"event":"bench.latency","seq":{seq}}}"#);
            let t = now_ns();
            match client.send("POST", "/api/v1/events", body.as_bytes()).await {
                Ok((202, _)) => sent.push((seq, t, now_ns() - t)),
                Ok((status, body)) => {
                    eprintln!("publish: {status} {}", String::from_utf8_lossy(&body))
                }
                Err(e) => {
                    eprintln!("publish: {e}");
                    client = Client::connect(addr).await.expect("reconnect to herald");
                }
            }
        }
        sent
    });
    let sent: Vec<(u64, u64, u64)> = sent.into_iter().flatten().collect();
    let mut acks: Vec<u64> = sent.iter().map(|s| s.2).collect();
    acks.sort_unstable();
    let sent: HashMap<u64, u64> = sent.iter().map(|s| (s.0, s.1)).collect();
    let got = bench.wait_arrivals(base + sent.len() as u64, Duration::from_secs(30)) - base;
    let usage = bench.cpu(herald).since(&before);
    let mut lat: Vec<u64> = {
        let arrived = bench.arrivals.seqs.lock().unwrap();
        let mut first: HashMap<u64, u64> = HashMap::new();
        for &(seq, at) in arrived.iter() {
            first.entry(seq).or_insert(at);
        }
        first
            .iter()
            .filter_map(|(seq, at)| Some(at.saturating_sub(*sent.get(seq)?)))
            .collect()
    };
    lat.sort_unstable();
    let slow = lat.iter().filter(|&&l| l > 100_000_000).count();
    let measured = format!(
        "p50 {}, p99 {}, max {}",
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or(0))
    );
    let figure = if round == 1 {
        format!("publish → arrival at {} events/s", thousands(rate))
    } else {
        format!(
            "publish → arrival at {} events/s, with history",
            thousands(rate)
        )
    };
    println!(
        "\n{figure}: {measured}  [n={}, {slow} over 100 ms, {} not arrived]",
        lat.len(),
        sent.len() as u64 - got.min(sent.len() as u64)
    );
    println!(
        "  of which the publish request (write → 202): p50 {}, p99 {}, max {}",
        ms(pct(&acks, 0.50)),
        ms(pct(&acks, 0.99)),
        ms(acks.last().copied().unwrap_or(0))
    );
    usage.print(lat.len(), "published-and-delivered event");
    let target = if round == 1 {
        "p50 < 2 ms, p99 < 20 ms"
    } else {
        "p99 < 20 ms"
    };
    Row::new(&figure, measured, &usage, lat.len(), target)
}

// ---------------------------------------------------------------------------------------
// The harness: runtimes, Herald's process, CPU accounting

struct Bench {
    /// One current-thread runtime per generator thread.
    gen: Vec<Handle>,
    recv_addr: SocketAddr,
    /// A receiver that answers each request after 20 ms (same arrival counts).
    slow_addr: SocketAddr,
    arrivals: Arc<Arrivals>,
    bin: PathBuf,
    /// Clock ticks per second for `/proc/*/stat`.
    hz: f64,
}

impl Bench {
    fn new() -> Bench {
        now_ns(); // fix the epoch
        let threads: usize = std::env::var("HERALD_BENCH_GEN_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1usize)
            .max(1);
        let gen: Vec<Handle> = (0..threads)
            .map(|i| runtime_thread(&format!("bench-gen-{i}")))
            .collect();
        let recv = runtime_thread("bench-recv");
        let arrivals = Arc::new(Arrivals::default());
        let listener = run_on(&recv, async { TcpListener::bind("127.0.0.1:0").await })
            .expect("bind the receiver");
        let recv_addr = listener.local_addr().unwrap();
        recv.spawn(receive(listener, arrivals.clone(), Duration::ZERO));
        let slow = run_on(&recv, async { TcpListener::bind("127.0.0.1:0").await })
            .expect("bind the slow receiver");
        let slow_addr = slow.local_addr().unwrap();
        recv.spawn(receive(slow, arrivals.clone(), Duration::from_millis(20)));
        let bin = std::env::var_os("HERALD_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_herald")));
        Bench {
            gen,
            recv_addr,
            slow_addr,
            arrivals,
            bin,
            hz: clock_ticks(),
        }
    }

    fn header(&self) {
        println!(
            "Herald throughput benchmark — durability = {}, loopback only",
            durability()
        );
        println!(
            "binary {}, scale {}, {} generator thread(s) + 1 receiver thread, {} CPUs, {} clock ticks/s",
            self.bin.display(),
            scale_factor(),
            self.gen.len(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.hz
        );
        let inherited: Vec<String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("HERALD_") && !k.starts_with("HERALD_BENCH_"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !inherited.is_empty() {
            println!("inherited settings: {}", inherited.join(" "));
        }
        println!(
            "load average at start: {}",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
    }

    /// Runs `task(c)` for c in 0..clients, spread over the generator threads; returns the
    /// results once all have finished.
    fn on_clients<T, Fut>(&self, clients: usize, task: impl Fn(usize) -> Fut) -> Vec<T>
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let handles: Vec<_> = (0..clients)
            .map(|c| self.gen[c % self.gen.len()].spawn(task(c)))
            .collect();
        run_on(&self.gen[0], async move {
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(h.await.expect("a client task panicked"));
            }
            out
        })
    }

    /// `clients` keep-alive connections publish events 0..n, one per request, each taking
    /// the next index from a shared counter.
    fn publish_singles(
        &self,
        addr: SocketAddr,
        clients: usize,
        n: usize,
        body: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> Outcome {
        let next = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(body);
        let results = self.on_clients(clients, |_| {
            let (next, body) = (next.clone(), body.clone());
            async move {
                let mut out = Outcome::default();
                let Some(mut client) = out.connect(addr).await else {
                    return out;
                };
                loop {
                    let i = next.fetch_add(1, SeqCst);
                    if i >= n {
                        break;
                    }
                    let payload = body(i);
                    let t = now_ns();
                    match client
                        .send("POST", "/api/v1/events", payload.as_bytes())
                        .await
                    {
                        Ok((202, _)) => {
                            out.ok += 1;
                            out.latencies.push(now_ns() - t);
                        }
                        Ok((status, body)) => out.failed(status, &body),
                        Err(e) => match out.reconnect(addr, e).await {
                            Some(c) => client = c,
                            None => break,
                        },
                    }
                }
                out
            }
        });
        Outcome::merge(results)
    }

    /// Publishes `events` events of type `event` through the batch endpoint, at most `BATCH`
    /// per request, from 8 keep-alive clients.
    fn publish_batches(&self, addr: SocketAddr, events: usize, event: &str) -> Outcome {
        let next = Arc::new(AtomicUsize::new(0));
        let event: Arc<str> = event.into();
        let results = self.on_clients(8, |_| {
            let (next, event) = (next.clone(), event.clone());
            async move {
                let mut out = Outcome::default();
                let Some(mut client) = out.connect(addr).await else {
                    return out;
                };
                loop {
                    let from = next.fetch_add(BATCH, SeqCst);
                    if from >= events {
                        break;
                    }
                    let n = BATCH.min(events - from);
                    let items: Vec<String> = (from..from + n)
                        .map(|i| format!(r#"{{"event":"{event}","i":{i}}}"#))
                        .collect();
                    let body = format!(r#"{{"events":[{}]}}"#, items.join(","));
                    match client
                        .send("POST", "/api/v1/events/batch", body.as_bytes())
                        .await
                    {
                        Ok((202, _)) => out.ok += n,
                        Ok((status, body)) => out.failed(status, &body),
                        Err(e) => match out.reconnect(addr, e).await {
                            Some(c) => client = c,
                            None => break,
                        },
                    }
                }
                out
            }
        });
        Outcome::merge(results)
    }

    /// Registers `n` endpoints on the receiver (`/e0`…), each subscribed to every event,
    /// from 8 keep-alive clients so the creates share the writer's commits.
    fn create_webhooks(&self, addr: SocketAddr, n: usize) {
        let next = Arc::new(AtomicUsize::new(0));
        let recv = self.recv_addr;
        let results = self.on_clients(8, |_| {
            let next = next.clone();
            async move {
                let mut out = Outcome::default();
                let Some(mut client) = out.connect(addr).await else {
                    return out;
                };
                loop {
                    let e = next.fetch_add(1, SeqCst);
                    if e >= n {
                        break;
                    }
                    let body = format!(r#"{{"url":"http://{recv}/e{e}","events":["*"]}}"#);
                    match client
                        .send("POST", "/api/v1/webhooks", body.as_bytes())
                        .await
                    {
                        Ok((201, _)) => out.ok += 1,
                        Ok((status, body)) => out.failed(status, &body),
                        Err(e) => match out.reconnect(addr, e).await {
                            Some(c) => client = c,
                            None => break,
                        },
                    }
                }
                out
            }
        });
        let created = Outcome::merge(results);
        created.warn();
        assert_eq!(created.ok, n, "create {n} webhooks");
    }

    /// POSTs a JSON body that must answer 201.
    fn post_created(&self, addr: SocketAddr, path: &'static str, body: String) {
        let (status, reply) = run_on(&self.gen[0], async move {
            let mut client = Client::connect(addr).await?;
            client.send("POST", path, body.as_bytes()).await
        })
        .expect("a POST");
        assert_eq!(
            status,
            201,
            "POST {path}: {}",
            String::from_utf8_lossy(&reply)
        );
    }

    fn create_webhook(&self, addr: SocketAddr, url: &str, filter: &str) {
        self.create_webhook_with(addr, url, filter, "");
    }

    /// `create_webhook` with more fields (`extra`: `,"name":value…`, already JSON).
    fn create_webhook_with(&self, addr: SocketAddr, url: &str, filter: &str, extra: &str) {
        let body = format!(r#"{{"url":"{url}","events":["{filter}"]{extra}}}"#);
        let (status, reply) = run_on(&self.gen[0], async move {
            let mut client = Client::connect(addr).await?;
            client
                .send("POST", "/api/v1/webhooks", body.as_bytes())
                .await
        })
        .expect("create a webhook");
        assert_eq!(
            status,
            201,
            "create webhook: {}",
            String::from_utf8_lossy(&reply)
        );
    }

    /// Waits until the receiver has counted `target` arrivals in all, or `timeout`;
    /// returns the count.
    fn wait_arrivals(&self, target: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.arrivals.count.load(SeqCst);
            if n >= target || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Herald's CPU over one idle second, in cores.
    fn idle_cores(&self, herald: &Herald) -> f64 {
        let before = self.cpu(herald);
        std::thread::sleep(Duration::from_secs(1));
        let usage = self.cpu(herald).since(&before);
        usage.herald / usage.wall
    }

    fn cpu(&self, herald: &Herald) -> Snapshot {
        let (_, herald_user, herald_sys) =
            stat_ticks(&format!("/proc/{}/stat", herald.pid)).unwrap_or_default();
        let mut s = Snapshot {
            at: Instant::now(),
            ns: now_ns(),
            hz: self.hz,
            herald: herald_user + herald_sys,
            herald_sys,
            me: stat_ticks("/proc/self/stat").map_or(0, |(_, u, s)| u + s),
            gen: 0,
            recv: 0,
            roles: Default::default(),
            waited: 0,
        };
        (s.roles, s.waited) = herald_roles(herald.pid, self.hz);
        for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
            let Ok(task) = task else { continue };
            let Some((comm, user, sys)) = stat_ticks(&format!("{}/stat", task.path().display()))
            else {
                continue;
            };
            let ticks = user + sys;
            if comm.starts_with("bench-gen") {
                s.gen += ticks;
            } else if comm == "bench-recv" {
                s.recv += ticks;
            }
        }
        s
    }
}

/// A thread named `name` driving a current-thread tokio runtime; tasks reach it through
/// the returned handle.
fn runtime_thread(name: &str) -> Handle {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            tx.send(rt.handle().clone()).unwrap();
            rt.block_on(std::future::pending::<()>());
        })
        .expect("spawn a runtime thread");
    rx.recv().unwrap()
}

/// Runs `fut` on the runtime behind `handle` and blocks this (orchestrating) thread until
/// it is done.
fn run_on<T: Send + 'static>(handle: &Handle, fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("a benchmark task panicked")
}

#[derive(Clone, Copy)]
struct Startup {
    listening: Duration,
    ready: Duration,
}

/// A running Herald over a fresh database in a temp dir; killed on drop.
struct Herald {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    started: Startup,
    _dir: tempfile::TempDir,
}

impl Herald {
    fn start(bench: &Bench) -> Herald {
        Self::start_on(bench, "", &[])
    }

    /// Starts Herald on `db` (a PostgreSQL URL; "" = a fresh SQLite file) with `env`.
    fn start_on(bench: &Bench, db: &str, env: &[(&str, &str)]) -> Herald {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = if db.is_empty() {
            dir.path().join("herald.db").display().to_string()
        } else {
            db.to_owned()
        };
        let t0 = Instant::now();
        let mut child = Command::new(&bench.bin)
            .arg("serve")
            .envs(env.iter().copied())
            .env("HERALD_SECRET_KEY_FILE", dir.path().join("herald.key"))
            .env("HERALD_DB", db)
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .env("HERALD_DURABILITY", durability())
            .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
            .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "HERALD_LOG",
                std::env::var("HERALD_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bench.bin.display()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr: SocketAddr = loop {
            let line = lines
                .next()
                .expect("herald exited before listening")
                .expect("read herald's stdout");
            if let Some(rest) = line.strip_prefix("Herald listening on http://") {
                break rest.trim().parse().expect("a socket address");
            }
        };
        let listening = t0.elapsed();
        // Keep draining stdout so Herald never blocks on a full pipe.
        std::thread::Builder::new()
            .name("herald-stdout".into())
            .spawn(move || lines.for_each(drop))
            .unwrap();
        run_on(&bench.gen[0], async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(mut c) = Client::connect(addr).await {
                    if let Ok((200, _)) = c.send("GET", "/readyz", b"").await {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "herald never became ready");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let ready = t0.elapsed();
        let pid = child.id();
        Herald {
            child,
            pid,
            addr,
            started: Startup { listening, ready },
            _dir: dir,
        }
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `getconf CLK_TCK` (the crate has no libc dependency for `sysconf`); 100 if that fails,
/// which is what Linux uses on every common architecture.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, utime, stime) from a `/proc/.../stat` file: fields 14 and 15, counted after
/// the parenthesised command name, which may itself hold spaces.
fn stat_ticks(path: &str) -> Option<(String, u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let comm = text[open + 1..close].to_string();
    // After ") " comes field 3 (state); utime is field 14, stime field 15.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime, stime))
}

/// CPU tick counters at one instant.
struct Snapshot {
    at: Instant,
    ns: u64,
    hz: f64,
    /// Herald's user + system ticks.
    herald: u64,
    herald_sys: u64,
    me: u64,
    gen: u64,
    recv: u64,
    /// Herald's CPU ns per thread role (the thread name without its number).
    roles: std::collections::BTreeMap<String, u64>,
    /// The ns Herald's threads spent runnable but waiting for a CPU (schedstat's second
    /// field: the run queue).
    waited: u64,
}

/// Herald's CPU per thread role, in nanoseconds: `herald-worker-12` counts as
/// `herald-worker`, the HTTP server's threads as `actix-rt`. This is the profile README
/// quotes for what limits a figure. Read from `/proc/<pid>/task/*/schedstat` (time on CPU
/// in ns): the clock ticks of `stat` would round each of 64 workers' share down to 10 ms.
/// A thread's `stat` gives its name; where `schedstat` is missing its ticks stand in.
/// Also returns the ns all of them waited in the run queue.
fn herald_roles(pid: u32, hz: f64) -> (std::collections::BTreeMap<String, u64>, u64) {
    let mut roles = std::collections::BTreeMap::new();
    let mut waited = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let Ok(task) = task else { continue };
        let dir = task.path().display().to_string();
        let Some((comm, user, sys)) = stat_ticks(&format!("{dir}/stat")) else {
            continue;
        };
        let schedstat = std::fs::read_to_string(format!("{dir}/schedstat")).unwrap_or_default();
        let mut fields = schedstat.split_whitespace().map(|f| f.parse::<u64>().ok());
        let ns = fields
            .next()
            .flatten()
            .unwrap_or(((user + sys) as f64 * 1e9 / hz) as u64);
        waited += fields.next().flatten().unwrap_or(0);
        let role = comm
            .split('|')
            .next()
            .unwrap_or(&comm)
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_string();
        *roles.entry(role).or_default() += ns;
    }
    (roles, waited)
}

impl Snapshot {
    fn since(&self, before: &Snapshot) -> Usage {
        let secs = |a: u64, b: u64| a.saturating_sub(b) as f64 / self.hz;
        Usage {
            wall: self.at.duration_since(before.at).as_secs_f64(),
            herald: secs(self.herald, before.herald),
            herald_sys: secs(self.herald_sys, before.herald_sys),
            me: secs(self.me, before.me),
            gen: secs(self.gen, before.gen),
            recv: secs(self.recv, before.recv),
            roles: self
                .roles
                .iter()
                .map(|(role, ns)| {
                    let was = before.roles.get(role).copied().unwrap_or(0);
                    (role.clone(), ns.saturating_sub(was) as f64 / 1e9)
                })
                .filter(|(_, s)| *s > 0.0)
                .collect(),
            waited: self.waited.saturating_sub(before.waited) as f64 / 1e9,
        }
    }
}

/// CPU seconds spent over a window of `wall` seconds.
struct Usage {
    wall: f64,
    /// Herald's user + system time.
    herald: f64,
    herald_sys: f64,
    /// The whole benchmark process: generator + receiver + orchestration.
    me: f64,
    gen: f64,
    recv: f64,
    roles: Vec<(String, f64)>,
    /// Seconds Herald's threads spent runnable, waiting for a CPU.
    waited: f64,
}

impl Usage {
    /// One role's CPU seconds (0 when it did not run).
    fn role(&self, name: &str) -> f64 {
        self.roles
            .iter()
            .find(|(r, _)| r == name)
            .map_or(0.0, |(_, s)| *s)
    }
}

impl Usage {
    fn per_event_us(&self, events: usize) -> f64 {
        self.herald * 1e6 / events.max(1) as f64
    }

    fn print(&self, events: usize, unit: &str) {
        let cores = |s: f64| s / self.wall.max(1e-9);
        println!(
            "  Herald CPU {:.2} s ({:.0} % system) = {:.2} cores over {:.2} s → {:.0} µs per {unit}",
            self.herald,
            100.0 * self.herald_sys / self.herald.max(1e-9),
            cores(self.herald),
            self.wall,
            self.per_event_us(events)
        );
        let mut roles = self.roles.clone();
        roles.sort_by(|a, b| b.1.total_cmp(&a.1));
        let roles: Vec<String> = roles
            .iter()
            .map(|(role, s)| format!("{role} {:.0}", s * 1e6 / events.max(1) as f64))
            .collect();
        let threads: f64 = self.roles.iter().map(|(_, s)| s).sum();
        println!(
            "  Herald µs per {unit} by thread (schedstat; the threads' sum is {:.0} % of the \
             process's CPU): {}",
            100.0 * threads / self.herald.max(1e-9),
            roles.join(", ")
        );
        println!(
            "  Herald's threads waited for a CPU (run queue, schedstat) {:.0} µs per {unit}, \
             {:.2} threads on average",
            self.waited * 1e6 / events.max(1) as f64,
            self.waited / self.wall.max(1e-9)
        );
        println!(
            "  bench CPU {:.2} cores (generator {:.2}, receiver {:.2}; a thread near 1.00 is saturated)",
            cores(self.me),
            cores(self.gen),
            cores(self.recv)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Client results

#[derive(Default)]
struct Outcome {
    ok: usize,
    latencies: Vec<u64>,
    failures: usize,
    first_failure: Option<String>,
}

impl Outcome {
    fn failed(&mut self, status: u16, body: &[u8]) {
        self.note(format!("HTTP {status}: {}", String::from_utf8_lossy(body)));
    }

    fn note(&mut self, what: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(what);
    }

    async fn connect(&mut self, addr: SocketAddr) -> Option<Client> {
        match Client::connect(addr).await {
            Ok(c) => Some(c),
            Err(e) => {
                self.note(format!("connect: {e}"));
                None
            }
        }
    }

    async fn reconnect(&mut self, addr: SocketAddr, e: io::Error) -> Option<Client> {
        self.note(format!("request: {e}"));
        self.connect(addr).await
    }

    fn merge(all: Vec<Outcome>) -> Outcome {
        all.into_iter().fold(Outcome::default(), |mut acc, o| {
            acc.ok += o.ok;
            acc.latencies.extend(o.latencies);
            acc.failures += o.failures;
            if acc.first_failure.is_none() {
                acc.first_failure = o.first_failure;
            }
            acc
        })
    }

    fn warn(&self) {
        if let Some(first) = &self.first_failure {
            println!("  FAILURES: {} (first: {first})", self.failures);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Minimal HTTP/1.1 over tokio: enough for Herald's API and for ureq's deliveries

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on the benchmark's monotonic clock.
fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One HTTP/1.1 message: its start line and its (de-chunked) body.
struct Message {
    start: String,
    body: Vec<u8>,
}

/// A buffered connection that reads whole HTTP/1.1 messages, keeping any bytes that
/// follow one for the next.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    fn new(stream: TcpStream) -> Wire {
        let _ = stream.set_nodelay(true);
        Wire {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        self.buf.reserve(8 * 1024);
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    async fn need(&mut self, len: usize) -> io::Result<()> {
        while self.buf.len() < len {
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }

    /// The index just past the first CRLF at or after `from`.
    async fn line_end(&mut self, from: usize) -> io::Result<usize> {
        loop {
            if let Some(i) = find(&self.buf[from..], b"\r\n") {
                return Ok(from + i + 2);
            }
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The next message, or None if the peer closed the connection between messages.
    async fn read(&mut self) -> io::Result<Option<Message>> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await? {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
        };
        let (start, length, chunked) = {
            let head = std::str::from_utf8(&self.buf[..head_end])
                .map_err(|_| invalid("message head is not UTF-8"))?;
            let mut lines = head.split("\r\n");
            let start = lines.next().unwrap_or_default().to_string();
            let (mut length, mut chunked) = (0, false);
            for (name, value) in lines.filter_map(|l| l.split_once(':')) {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid("content-length"))?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.to_ascii_lowercase().contains("chunked");
                }
            }
            (start, length, chunked)
        };
        let (body, end) = if chunked {
            self.chunked_body(head_end).await?
        } else {
            self.need(head_end + length).await?;
            (
                self.buf[head_end..head_end + length].to_vec(),
                head_end + length,
            )
        };
        self.buf.drain(..end);
        Ok(Some(Message { start, body }))
    }

    async fn chunked_body(&mut self, mut at: usize) -> io::Result<(Vec<u8>, usize)> {
        let mut body = Vec::new();
        loop {
            let end = self.line_end(at).await?;
            let line = std::str::from_utf8(&self.buf[at..end - 2])
                .map_err(|_| invalid("chunk size is not UTF-8"))?;
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid("chunk size"))?;
            at = end;
            if size == 0 {
                // Trailers, if any, up to an empty line.
                loop {
                    let end = self.line_end(at).await?;
                    let empty = end == at + 2;
                    at = end;
                    if empty {
                        return Ok((body, at));
                    }
                }
            }
            self.need(at + size + 2).await?;
            body.extend_from_slice(&self.buf[at..at + size]);
            at += size + 2;
        }
    }
}

/// A keep-alive client connection to Herald, authenticated as the admin.
struct Client {
    wire: Wire,
    host: String,
}

impl Client {
    async fn connect(addr: SocketAddr) -> io::Result<Client> {
        Ok(Client {
            wire: Wire::new(TcpStream::connect(addr).await?),
            host: addr.to_string(),
        })
    }

    /// Sends one request and returns status and body.
    async fn send(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let mut request = Vec::with_capacity(256 + body.len());
        write!(
            request,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.host,
            body.len()
        )?;
        request.extend_from_slice(body);
        self.wire.stream.write_all(&request).await?;
        let message = self
            .wire
            .read()
            .await?
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let status = message
            .start
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("status line"))?;
        Ok((status, message.body))
    }
}

/// What the receiver saw.
#[derive(Default)]
struct Arrivals {
    count: AtomicU64,
    /// Connections accepted (Herald's keep-alive reuse: a handful for thousands of
    /// deliveries).
    connections: AtomicU64,
    /// `now_ns()` of the latest arrival.
    last_ns: AtomicU64,
    /// (seq, `now_ns()` at arrival) for payloads that carry a `"seq"`.
    seqs: Mutex<Vec<(u64, u64)>>,
}

/// Every delivery gets this: small, like most real receivers' answer.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";

/// The receiver: answers every request on every keep-alive connection with 200, after
/// `delay` (none: at once).
async fn receive(listener: TcpListener, arrivals: Arc<Arrivals>, delay: Duration) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        arrivals.connections.fetch_add(1, SeqCst);
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let mut wire = Wire::new(stream);
            while let Ok(Some(message)) = wire.read().await {
                let at = now_ns();
                if let Some(seq) = seq_of(&message.body) {
                    arrivals.seqs.lock().unwrap().push((seq, at));
                }
                arrivals.last_ns.fetch_max(at, SeqCst);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                arrivals.count.fetch_add(1, SeqCst);
                if wire.stream.write_all(OK).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The number after `"seq":` in a JSON body.
fn seq_of(body: &[u8]) -> Option<u64> {
    let at = find(body, b"\"seq\":")? + 6;
    let digits: String = body[at..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Sizes, formatting, the table

fn scale_factor() -> f64 {
    std::env::var("HERALD_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scale(n: usize) -> usize {
    ((n as f64 * scale_factor()) as usize).max(1)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn ms0(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// 12345.6 → "12,346".
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Row {
    figure: String,
    measured: String,
    cpu: String,
    /// The benchmark's own cores over the same window (terminal table only).
    bench: String,
    target: String,
}

impl Row {
    fn new(figure: &str, measured: String, usage: &Usage, events: usize, target: &str) -> Row {
        Row {
            figure: figure.to_string(),
            measured,
            cpu: format!(
                "{:.0} µs ({:.2} cores)",
                usage.per_event_us(events),
                usage.herald / usage.wall.max(1e-9)
            ),
            bench: format!(
                "{:.2} (gen {:.2}, recv {:.2})",
                usage.me / usage.wall.max(1e-9),
                usage.gen / usage.wall.max(1e-9),
                usage.recv / usage.wall.max(1e-9)
            ),
            target: target.to_string(),
        }
    }

    fn plain(figure: &str, measured: String, target: &str) -> Row {
        Row {
            figure: figure.to_string(),
            measured,
            cpu: "—".to_string(),
            bench: "—".to_string(),
            target: target.to_string(),
        }
    }
}

fn print_table(rows: &[Row]) {
    let head = Row {
        figure: "figure".into(),
        measured: "measured".into(),
        cpu: "Herald CPU/event".into(),
        bench: "bench cores".into(),
        target: "target".into(),
    };
    let width = |f: fn(&Row) -> &String| {
        rows.iter()
            .chain([&head])
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
    };
    let w = [
        width(|r| &r.figure),
        width(|r| &r.measured),
        width(|r| &r.cpu),
        width(|r| &r.bench),
    ];
    let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
    println!(
        "\nSummary. Herald CPU per event = its user + system time from /proc over the run / \
         events delivered (published, where nothing is delivered); cores = CPU s / wall s."
    );
    for r in std::iter::once(&head).chain(rows) {
        println!(
            "  {}  {}  {}  {}  {}",
            pad(&r.figure, w[0]),
            pad(&r.measured, w[1]),
            pad(&r.cpu, w[2]),
            pad(&r.bench, w[3]),
            r.target
        );
    }
    println!("\nFor README's Performance table:\n");
    println!("| figure | measured | Herald CPU per event | target |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.figure, r.measured, r.cpu, r.target
        );
    }
}
