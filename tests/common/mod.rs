//! Test helpers: `TestApp` runs the real `herald` binary on a random loopback port over a
//! SQLite file in a temp dir; `Receiver` is a real HTTP server that records what Herald
//! delivers. Nothing of Herald is mocked.
//!
//! With `HERALD_TEST_BACKEND=postgres`, each `TestApp` gets a fresh database of its own on
//! the PostgreSQL server `HERALD_TEST_PG_URL` names (a superuser URL; `.ci/run` starts a
//! private cluster and sets both), dropped when the app is.
#![allow(dead_code)]

pub mod delivery;
pub mod webdriver;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A running Herald.
pub struct TestApp {
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    agent: ureq::Agent,
    /// The PostgreSQL database this app runs on, when the suite runs on PostgreSQL.
    pub pg: Option<PgDatabase>,
    /// A database URL given by the test (a replica of a database another app created).
    db_url: Option<String>,
}

fn test_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A secret key for `HERALD_SECRET_KEY` (64 hex digits), for replicas that must share one.
pub fn random_secret_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// True when the suite runs on PostgreSQL (`HERALD_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("HERALD_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A database of its own on the test PostgreSQL server, dropped with it.
pub struct PgDatabase {
    server: String,
    pub name: String,
}

impl PgDatabase {
    /// The test PostgreSQL server, if one is configured (`HERALD_TEST_PG_URL`).
    pub fn server() -> Option<String> {
        std::env::var("HERALD_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }

    /// A fresh database, or `None` (saying the test is skipped) without a test server;
    /// with `HERALD_REQUIRE_PG=1` (as `.ci/run` sets) a missing server fails the test, so
    /// the PostgreSQL half of a suite can never pass by skipping.
    pub fn create_or_skip() -> Option<PgDatabase> {
        if Self::server().is_none() {
            assert!(
                std::env::var("HERALD_REQUIRE_PG").as_deref() != Ok("1"),
                "HERALD_REQUIRE_PG=1, but HERALD_TEST_PG_URL is not set"
            );
            eprintln!("skipped: HERALD_TEST_PG_URL is not set (bash .ci/run starts PostgreSQL)");
            return None;
        }
        Some(Self::create())
    }

    pub fn create() -> PgDatabase {
        let server = Self::server()
            .expect("HERALD_TEST_BACKEND=postgres needs HERALD_TEST_PG_URL (a superuser URL)");
        let name = format!("herald_test_{:016x}", rand::random::<u64>());
        let mut client = postgres::Client::connect(&server, postgres::NoTls)
            .expect("connect to the test PostgreSQL server");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        PgDatabase { server, name }
    }

    /// The URL Herald is given (`--db`).
    pub fn url(&self) -> String {
        let (base, _) = self.server.rsplit_once('/').expect("a URL with a database");
        format!("{base}/{}", self.name)
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("connect to the test db")
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

impl TestApp {
    /// Starts Herald with private targets allowed (receivers run on loopback) and `env`
    /// as extra `HERALD_*` settings.
    pub fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        Self::spawn_in(tempfile::tempdir().expect("temp dir"), env)
    }

    /// Like `spawn_with`, with the database in `dir` (a small filesystem, say).
    pub fn spawn_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> TestApp {
        Self::spawn_backend(dir, env, on_postgres())
    }

    /// Starts Herald on a SQLite file whatever the suite's backend (`herald migrate`'s
    /// source, say).
    pub fn spawn_sqlite(env: &[(&str, &str)]) -> TestApp {
        Self::spawn_backend(tempfile::tempdir().expect("temp dir"), env, false)
    }

    fn spawn_backend(dir: tempfile::TempDir, env: &[(&str, &str)], postgres: bool) -> TestApp {
        let mut all: Vec<(String, String)> = vec![
            ("HERALD_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("HERALD_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
            ("HERALD_DURABILITY".into(), "normal".into()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let agent = test_agent();
        if postgres {
            // The key file's default is beside the SQLite file; a database URL has no
            // directory, so each app keeps its key in its temp dir.
            let key = dir.path().join("herald.key").display().to_string();
            all.insert(0, ("HERALD_SECRET_KEY_FILE".into(), key));
        }
        let mut app = TestApp {
            addr: String::new(),
            dir,
            env: all,
            child: None,
            agent,
            pg: postgres.then(PgDatabase::create),
            db_url: None,
        };
        app.start();
        app
    }

    /// Starts Herald on the database at `url` (a replica: several apps on one PostgreSQL
    /// database), with `env` as extra `HERALD_*` settings; the database outlives it.
    pub fn spawn_on(url: &str, env: &[(&str, &str)]) -> TestApp {
        let mut all: Vec<(String, String)> = vec![
            ("HERALD_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("HERALD_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut app = TestApp {
            addr: String::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            env: all,
            child: None,
            agent: test_agent(),
            pg: None,
            db_url: Some(url.to_owned()),
        };
        app.start();
        app
    }

    pub fn spawn() -> TestApp {
        Self::spawn_with(&[])
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The SQLite file (on PostgreSQL, where it would have been: tests that read the file
    /// itself run on SQLite only).
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("herald.db")
    }

    /// What `--db` names: the SQLite file, or the PostgreSQL database's URL.
    pub fn db_arg(&self) -> String {
        match (&self.db_url, &self.pg) {
            (Some(url), _) => url.clone(),
            (None, Some(pg)) => pg.url(),
            (None, None) => self.db_path().display().to_string(),
        }
    }

    /// Starts (or restarts) the process on the same database file.
    pub fn start(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(self.db_arg())
            .env_remove("HERALD_LISTEN")
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start herald");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("herald exited before listening")
                .expect("read stdout");
            if let Some(rest) = line.strip_prefix("Herald listening on http://") {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.addr = addr;
        self.child = Some(child);
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().expect("wait")
    }

    /// Waits up to `timeout` for the process to end on its own; its exit status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request with a token (None = no Authorization) and returns status + JSON.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, _, text) = self.call_raw(method, path, token, &[], body);
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// The full form: extra headers in, status + headers + raw body out.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, HashMap<String, String>, String) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        let request = match token {
            Some(t) => request.header("authorization", format!("Bearer {t}")),
            None => request,
        };
        let request = headers
            .iter()
            .fold(request, |r, (k, v)| r.header(*k, *v))
            .header("content-type", "application/json");
        let result = match body {
            Some(b) => self.agent.run(request.body(b.to_string()).unwrap()),
            None => self.agent.run(request.body(()).unwrap()),
        };
        let mut response = result.expect("request to herald");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, headers, text)
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call(method, path, Some(ADMIN_TOKEN), body.as_deref())
    }

    /// Creates a webhook for the default tenant and returns its JSON `data`.
    pub fn create_webhook(&self, url: &str, events: &[&str]) -> Value {
        let (status, body) = self.admin(
            "POST",
            "/api/v1/webhooks",
            Some(serde_json::json!({ "url": url, "events": events })),
        );
        assert_eq!(status, 201, "{body}");
        body["data"].clone()
    }

    /// Publishes a payload for the default tenant; returns the event's `data`.
    pub fn publish(&self, payload: Value) -> Value {
        let (status, body) = self.admin("POST", "/api/v1/events", Some(payload));
        assert_eq!(status, 202, "{body}");
        body["data"].clone()
    }

    /// Publishes events of type `kind` numbered `from..to` (field `i`) in one batch request.
    pub fn publish_numbered(&self, kind: &str, from: i64, to: i64) {
        let events: Vec<Value> = (from..to)
            .map(|i| serde_json::json!({"event": kind, "i": i}))
            .collect();
        let (status, body) = self.admin(
            "POST",
            "/api/v1/events/batch",
            Some(serde_json::json!({ "events": events })),
        );
        assert_eq!(status, 202, "{body}");
    }

    /// Polls `check` until it returns Some, or panics after `timeout`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        wait_for(timeout, what, &mut check)
    }

    /// A connection to the app's PostgreSQL database, when it runs on one.
    fn pg_client(&self) -> Option<postgres::Client> {
        match (&self.db_url, &self.pg) {
            (Some(url), _) => {
                Some(postgres::Client::connect(url, postgres::NoTls).expect("connect to the db"))
            }
            (None, Some(pg)) => Some(pg.client()),
            (None, None) => None,
        }
    }

    /// Writes straight into the database, in one transaction: for states the API cannot
    /// make (a history seeded for the charts). The SQL must suit the backend in use.
    pub fn sql_exec(&self, statements: &[String]) {
        if let Some(mut client) = self.pg_client() {
            let mut tx = client.transaction().expect("begin");
            for sql in statements {
                tx.batch_execute(sql).expect("statement");
            }
            tx.commit().expect("commit");
            return;
        }
        let mut conn = rusqlite::Connection::open(self.db_path()).expect("open db");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let tx = conn.transaction().expect("begin");
        for sql in statements {
            tx.execute_batch(sql).expect("statement");
        }
        tx.commit().expect("commit");
    }

    /// The id of the row the last INSERT in this transaction gave `table` (for `sql_exec`).
    pub fn sql_last_id(&self, table: &str) -> String {
        if self.pg_client().is_some() {
            format!("currval(pg_get_serial_sequence('{table}', 'id'))")
        } else {
            "last_insert_rowid()".into()
        }
    }

    /// Whether `needle` is anywhere a copy of the database would hold it: every byte of the
    /// SQLite file and its WAL (free pages and old frames included), or, on PostgreSQL,
    /// any endpoint row's text (where endpoint settings live). For "a copied database
    /// reveals no credential" checks.
    pub fn stored_anywhere(&self, needle: &str) -> bool {
        if let Some(mut client) = self.pg_client() {
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM endpoints e WHERE strpos(e::text, $1) > 0",
                    &[&needle],
                )
                .expect("query")
                .get(0);
            return n > 0;
        }
        let path = self.db_path();
        let mut files = vec![path.clone()];
        for suffix in ["-wal", "-journal"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            files.push(p.into());
        }
        files.iter().any(|f| {
            std::fs::read(f)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
    }

    /// A read-only look into the database, for assertions the API cannot make.
    pub fn sql_count(&self, sql: &str) -> i64 {
        if let Some(mut client) = self.pg_client() {
            return client.query_one(sql, &[]).expect("query").get(0);
        }
        let conn = rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open db");
        conn.query_row(sql, [], |r| r.get(0)).expect("query")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn wait_for<T>(timeout: Duration, what: &str, check: &mut dyn FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The body's bytes as sent (`body` is their lossy UTF-8; an OTLP export is protobuf).
    pub raw: Vec<u8>,
    pub at: Instant,
}

/// How the receiver answers: status, extra headers, and a delay before answering.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Script = dyn Fn(&str, usize) -> Reply + Send + Sync;

/// A real HTTP server on 127.0.0.1 that records every request. `script(path, n)` decides
/// the reply to the n-th request (0-based) on that path.
pub struct Receiver {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn ok() -> Receiver {
        Self::start(|_, _| Reply::status(200))
    }

    pub fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().unwrap().to_string();
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = requests.clone();
        let script: Arc<Script> = Arc::new(script);
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
                actix_web::HttpServer::new(move || {
                    let (seen, script, counts) = (seen.clone(), script.clone(), counts.clone());
                    actix_web::App::new().default_service(actix_web::web::to(
                        move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                            let (seen, script, counts) =
                                (seen.clone(), script.clone(), counts.clone());
                            async move {
                                let path = req.path().to_string();
                                let n = {
                                    let mut c = counts.lock().unwrap();
                                    let e = c.entry(path.clone()).or_insert(0);
                                    *e += 1;
                                    *e - 1
                                };
                                seen.lock().unwrap().push(Received {
                                    method: req.method().as_str().to_owned(),
                                    path: path.clone(),
                                    headers: req
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_string(),
                                                v.to_str().unwrap_or("").to_string(),
                                            )
                                        })
                                        .collect(),
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                    raw: body.to_vec(),
                                    at: Instant::now(),
                                });
                                let reply = script(&path, n);
                                if !reply.delay.is_zero() {
                                    actix_web::rt::time::sleep(reply.delay).await;
                                }
                                let mut response = actix_web::HttpResponse::build(
                                    actix_web::http::StatusCode::from_u16(reply.status).unwrap(),
                                );
                                for (k, v) in &reply.headers {
                                    response.insert_header((k.as_str(), v.as_str()));
                                }
                                response.body("ok")
                            }
                        },
                    ))
                })
                .workers(2)
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .ok();
            });
        });
        Receiver { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    pub fn on_path(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until at least `n` requests arrived on `path`.
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        wait_for(timeout, &format!("{n} requests on {path}"), &mut || {
            let got = self.on_path(path);
            (got.len() >= n).then_some(got)
        })
    }
}
