//! The store's contract (issue 17, item 3): every operation's cases, written once and run
//! against SQLite and PostgreSQL alike. Each case is a plain `fn(&Db)`; `contract!` makes
//! two tests of it, `<file>::sqlite::<case>` on a fresh SQLite file and
//! `<file>::postgres::<case>` on a fresh PostgreSQL database (skipped, saying so, without
//! `HERALD_TEST_PG_URL`; a failure instead with `HERALD_REQUIRE_PG=1`, as `.ci/run` sets).
//! `cargo test --test store postgres` runs one backend's half.
//!
//! - `tenants.rs`: tenants and API keys; `catalogue.rs`: event types;
//! - `endpoints.rs`: create, patch, rotate, delete; `events.rs`: publish fan-out and
//!   idempotency keys; `deliveries.rs`: the delivery lists, polling, retry and recover;
//! - `outbox.rs`: claims and records, driven through the engine's harness (the real
//!   dispatcher and recorder) against a real loopback receiver;
//! - `activity.rs`: the operator's reads; `retention.rs`: pruning;
//! - `replay.rs`: payload filters at publish, and replay of what an endpoint missed;
//!   `shared.rs`: settings, flash messages and throttles.
//!
//! The store's async operations run on a runtime of the `Db` (`db.on(..)`); the engine's
//! blocking ones outside it, as the engine's threads call them.

mod common;

/// Makes `sqlite::<case>` and `postgres::<case>` tests of each `fn case(db: &Db)` named.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $case() {
                super::$case(&crate::Db::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $case() {
                if let Some(db) = crate::Db::postgres() {
                    super::$case(&db);
                }
            })*
        }
    };
}

#[path = "store/activity.rs"]
mod activity;
#[path = "store/catalogue.rs"]
mod catalogue;
#[path = "store/deliveries.rs"]
mod deliveries;
#[path = "store/endpoints.rs"]
mod endpoints;
#[path = "store/events.rs"]
mod events;
#[path = "store/outbox.rs"]
mod outbox;
#[path = "store/replay.rs"]
mod replay;
#[path = "store/retention.rs"]
mod retention;
#[path = "store/shared.rs"]
mod shared;
#[path = "store/tenants.rs"]
mod tenants;

use std::future::Future;
use std::sync::Arc;

use common::PgDatabase;
use herald::clock::ManualClock;
use herald::config::{Config, Database, Durability};
use herald::domain::{EndpointKind, EndpointUrl, EventFilter};
use herald::engine::harness::Harness;
use herald::secrets::secret_key::{self, SecretKey};
use herald::store::{Cursor, NewEndpoint, NewEvent, Published, Store};

/// Where every case's clock starts (2023-11-14): any fixed time will do.
const T0: i64 = 1_700_000_000_000;

/// The tenant every database starts with.
const TENANT: &str = "default";

/// One fresh database and the store opened on it.
struct Db {
    store: Store,
    runtime: tokio::runtime::Runtime,
    /// What the database lives in (a temp dir, or a PostgreSQL database of its own),
    /// dropped after the store.
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::Sqlite(dir.path().join("herald.db"));
        Db::open(&db, Some(dir), None)
    }

    fn postgres() -> Option<Db> {
        let pg = PgDatabase::create_or_skip()?;
        Some(Db::open(&Database::Postgres(pg.url()), None, Some(pg)))
    }

    fn open(db: &Database, dir: Option<tempfile::TempDir>, pg: Option<PgDatabase>) -> Db {
        // As the binary does before it opens the store: endpoint secrets are sealed.
        let key: [u8; 32] = rand::random();
        secret_key::install(SecretKey::from_bytes(key));
        let store = herald::store::open(db, Durability::Full).expect("open the store");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Db {
            store,
            runtime,
            _dir: dir,
            _pg: pg,
        }
    }

    /// Runs one of the store's async operations to its end.
    fn on<F: Future>(&self, operation: F) -> F::Output {
        self.runtime.block_on(operation)
    }

    /// The engine stepped by hand on this store, its clock at `T0`.
    fn harness(&self, config: Config) -> (Harness, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(T0));
        let harness = Harness::new(self.store.clone(), config, clock.clone()).expect("harness");
        (harness, clock)
    }

    /// An active push endpoint of the default tenant at `url`, subscribed to `pattern`.
    fn endpoint(&self, url: &str, pattern: &str) -> i64 {
        self.on(self
            .store
            .create_endpoint(TENANT, endpoint_to(url, pattern), T0))
            .expect("create endpoint")
            .id
    }

    /// Publishes one event of type `kind` at `at` for the default tenant.
    fn publish(&self, kind: &str, at: i64) -> Published {
        let published = self.on(self.store.publish(TENANT, vec![event(kind, None)], at));
        published.expect("publish").remove(0)
    }

    /// The only delivery of an event.
    fn delivery_of(&self, published: &Published) -> i64 {
        let deliveries = self.on(self.store.event_deliveries(TENANT, &published.id));
        let deliveries = deliveries.expect("event deliveries");
        assert_eq!(deliveries.len(), 1, "{deliveries:?}");
        deliveries[0].id
    }
}

/// A small engine, as the engine's own suite uses: a board of 16, 2 in flight per endpoint.
fn engine_config() -> Config {
    Config {
        allow_private_targets: true,
        workers: 4,
        endpoint_concurrency: 2,
        // PostgreSQL's leases lapse on the round's (manual) clock: longer than any step.
        lease: std::time::Duration::from_secs(86_400),
        ..Config::default()
    }
}

/// An engine with room for 4 in flight per endpoint: a round's claims of a few deliveries
/// stay within every backend's share.
fn roomy_config() -> Config {
    Config {
        endpoint_concurrency: 4,
        ..engine_config()
    }
}

/// Rounds until one sends nothing; returns how many attempts were made and recorded.
fn drain(engine: &mut Harness) -> usize {
    let mut sent = 0;
    loop {
        let claimed = engine.step().expect("a round");
        let records = engine.send_ready();
        if claimed == 0 && records.is_empty() {
            return sent;
        }
        sent += records.len();
        engine.record(records);
    }
}

fn endpoint_to(url: &str, pattern: &str) -> NewEndpoint {
    NewEndpoint {
        kind: EndpointKind::Push,
        secret: herald::wire::signing::generate_secret(),
        settings: herald::store::EndpointSettings::new(
            Some(EndpointUrl::parse(url, true).expect("url")),
            EventFilter::parse(&[pattern.to_string()]).expect("filter"),
        ),
    }
}

/// An event of type `kind` as the API would store it (canonical JSON).
fn event(kind: &str, idempotency_key: Option<&str>) -> NewEvent {
    NewEvent {
        event_type: kind.into(),
        body: format!(r#"{{"event":"{kind}"}}"#),
        idempotency_key: idempotency_key.map(str::to_owned),
        traceparent: None,
    }
}

/// The first page of `limit` rows.
fn first(limit: usize) -> Cursor {
    Cursor {
        before: None,
        limit,
    }
}

/// Walks a list page by page (`limit` rows each) through its `next_cursor`; returns each
/// page's keys. `list` answers one page as (keys, next cursor).
fn pages(
    limit: usize,
    mut list: impl FnMut(Cursor) -> (Vec<i64>, Option<String>),
) -> Vec<Vec<i64>> {
    let mut cursor = first(limit);
    let mut all = Vec::new();
    loop {
        let (keys, next) = list(cursor);
        assert!(
            keys.len() <= limit,
            "a page of {} for a limit of {limit}",
            keys.len()
        );
        all.push(keys);
        match next {
            Some(next) => cursor.before = Some(next.parse().expect("a numeric cursor")),
            None => return all,
        }
    }
}

/// Asserts that a list walked by `pages` gave every key once, newest (highest) first.
fn assert_newest_first_once(pages: &[Vec<i64>], expected: usize) {
    let keys: Vec<i64> = pages.concat();
    assert_eq!(keys.len(), expected, "{pages:?}");
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {pages:?}"
    );
}
