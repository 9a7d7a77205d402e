//! The delivery engine stepped by hand (issue 13, item 5): the real store on a temporary
//! SQLite file, the real dispatcher, board, worker and recorder code driven one round at a
//! time through `engine::harness::Harness`, a `ManualClock` the test moves, and a real
//! loopback receiver from `tests/common`. Nothing runs between two calls, so each test says
//! exactly what was claimed, sent and written, without waiting on the wall clock (one test
//! runs the dispatcher's real loop on its thread, to show a wake-up beats its poll).
//!
//! - `breaker.rs`: a half-failing endpoint keeps flowing, a dead one gets only probes;
//! - `claiming.rs`: a publish is claimed at once, fairness across endpoints, the
//!   per-endpoint cap;
//! - `failures.rs`: retries on the fake clock, auto-disable at its boundary, a delivery
//!   whose endpoint is deleted mid-flight;
//! - `index.rs`: the dispatcher's due-time index among a thousand idle endpoints: a retry
//!   after a long idle stretch, a publish to a cold endpoint, a FIFO head, a resume;
//! - `writes.rs`: group commit isolation, one `Idempotency-Key` published concurrently,
//!   ids never reused.
//!
//! The harness's calls block (the recorder waits for its commit), so they run outside the
//! tokio runtime; the store's async operations run inside it through `Rig::block_on`.
//!
//! With `HERALD_TEST_BACKEND=postgres` every case runs on a fresh PostgreSQL database of
//! its own instead (`HERALD_TEST_PG_URL`; `.ci/run`'s second pass), except the few about
//! SQLite's writer thread, which say they are skipped (`Rig::sqlite`).

mod common;

#[path = "engine/breaker.rs"]
mod breaker;
#[path = "engine/claiming.rs"]
mod claiming;
#[path = "engine/controls.rs"]
mod controls;
#[path = "engine/failures.rs"]
mod failures;
#[path = "engine/index.rs"]
mod index;
#[path = "engine/writes.rs"]
mod writes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{PgDatabase, Receiver};
use herald::clock::{Clock, ManualClock};
use herald::config::{Config, Database, Durability};
use herald::domain::{EndpointUrl, EventFilter};
use herald::engine::harness::Harness;
use herald::store::sqlite::SqliteStore;
use herald::store::{Attempt, Delivery, EndpointSettings, NewEndpoint, NewEvent, Published, Store};

/// Where the manual clock starts: 2023-11-14, any fixed time will do.
const T0: i64 = 1_700_000_000_000;

/// The tenant every database starts with.
const TENANT: &str = "default";

/// A small engine: 4 workers (a board of 16), 2 requests in flight per endpoint.
fn config() -> Config {
    Config {
        allow_private_targets: true,
        workers: 4,
        endpoint_concurrency: 2,
        durability: Durability::Normal,
        // PostgreSQL's claims are leases that lapse on the round's clock (the manual one
        // here) while its lease keeper renews them on the wall clock: a test that moves the
        // clock past a lease before the first renewal would see held deliveries claimed
        // again, as if their replica had died. A day outlasts every step of these tests.
        lease: Duration::from_secs(86_400),
        ..Config::default()
    }
}

/// Everything one test needs, torn down in field order (the database last).
struct Rig {
    harness: Harness,
    /// On SQLite, the same store as `harness.store`, with its test-only raw SQL door.
    sqlite: Option<Arc<SqliteStore>>,
    clock: Arc<ManualClock>,
    receiver: Receiver,
    runtime: tokio::runtime::Runtime,
    /// On PostgreSQL, the test's own database (dropped after the store).
    pg: Option<PgDatabase>,
    dir: tempfile::TempDir,
}

impl Rig {
    /// A rig on the suite's backend: SQLite, or PostgreSQL with `HERALD_TEST_BACKEND=postgres`.
    fn new(config: Config, receiver: Receiver) -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, sqlite, pg): (Store, _, _) = if common::on_postgres() {
            let pg = PgDatabase::create();
            let db = Database::Postgres(pg.url());
            let store = herald::store::open(&db, config.durability).expect("open store");
            (store, None, Some(pg))
        } else {
            let sqlite = Arc::new(
                SqliteStore::open(&dir.path().join("herald.db"), config.durability)
                    .expect("open store"),
            );
            (sqlite.clone(), Some(sqlite), None)
        };
        let clock = Arc::new(ManualClock::at(T0));
        let harness = Harness::new(store, config, clock.clone()).expect("harness");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Rig {
            harness,
            sqlite,
            clock,
            receiver,
            runtime,
            pg,
            dir,
        }
    }

    /// The SQLite store, for what is about its writer thread; `None` (saying that part is
    /// skipped) on PostgreSQL, which has no writer thread to hold or group commits to share.
    fn sqlite(&self) -> Option<Arc<SqliteStore>> {
        if self.sqlite.is_none() {
            eprintln!("skipped on PostgreSQL: what is about SQLite's writer thread");
        }
        self.sqlite.clone()
    }

    /// How many in-flight caps a round gives an endpoint in all, in flight and queued on
    /// the board (the planner's `depth`): 4 where the outbox is this process's own
    /// (SQLite), 1 where replicas share it (PostgreSQL: what one claims counts for all).
    fn depth(&self) -> usize {
        if self.store().shared() {
            1
        } else {
            4
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("herald.db")
    }

    fn store(&self) -> &Store {
        &self.harness.store
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// An active endpoint of the default tenant at `path` of the receiver, subscribed to
    /// `pattern`; returns its id.
    fn endpoint(&self, path: &str, pattern: &str) -> i64 {
        let new = endpoint_to(&self.receiver.url(path), pattern);
        self.block_on(self.store().create_endpoint(TENANT, new, self.now()))
            .expect("create endpoint")
            .id
    }

    /// Publishes `n` events of type `kind` now, in one call (as one batch request would).
    fn publish(&self, kind: &str, n: usize) -> Vec<Published> {
        let events = (0..n).map(|i| event(kind, i, None)).collect();
        self.block_on(self.store().publish(TENANT, events, self.now()))
            .expect("publish")
    }

    /// Publishes one event as if at `at`: its deliveries come due then.
    fn publish_at(&self, kind: &str, at: i64) -> Published {
        let mut published = self
            .block_on(self.store().publish(TENANT, vec![event(kind, 0, None)], at))
            .expect("publish");
        published.pop().expect("one event")
    }

    /// The ids of an event's deliveries, oldest first.
    fn deliveries_of(&self, event_id: &str) -> Vec<i64> {
        self.block_on(self.store().event_deliveries(TENANT, event_id))
            .expect("event deliveries")
            .iter()
            .map(|d| d.id)
            .collect()
    }

    fn delivery(&self, id: i64) -> (Delivery, Vec<Attempt>) {
        self.block_on(self.store().delivery_with_attempts(TENANT, id))
            .expect("delivery")
    }

    /// One number from the database, for what no operation shows (`?1` is `id`).
    fn sql_count(&self, sql: &'static str, id: i64) -> i64 {
        if let Some(pg) = &self.pg {
            let sql = sql.replace("?1", "$1");
            return pg.client().query_one(&sql, &[&id]).expect("count").get(0);
        }
        let sqlite = self.sqlite.as_ref().expect("a SQLite store");
        sqlite
            .write_raw_for_tests(move |c| Ok(c.query_row(sql, [id], |r| r.get(0))?))
            .expect("count")
    }
}

fn endpoint_to(url: &str, pattern: &str) -> NewEndpoint {
    NewEndpoint {
        kind: herald::domain::EndpointKind::Push,
        secret: herald::wire::signing::generate_secret(),
        settings: EndpointSettings::new(
            Some(EndpointUrl::parse(url, true).expect("url")),
            EventFilter::parse(&[pattern.to_string()]).expect("filter"),
        ),
    }
}

/// The `i`-th event of type `kind`, as the API would store it (canonical JSON).
fn event(kind: &str, i: usize, idempotency_key: Option<&str>) -> NewEvent {
    NewEvent {
        event_type: kind.into(),
        body: format!(r#"{{"event":"{kind}","i":{i}}}"#),
        idempotency_key: idempotency_key.map(str::to_owned),
        traceparent: None,
    }
}
