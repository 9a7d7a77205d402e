//! The PostgreSQL backend: one database shared by any number of Herald replicas.
//!
//! Every operation runs on a pooled connection (`connection.rs`), on tokio's blocking pool
//! for the API and on the calling thread for the engine. A write is one transaction that
//! PostgreSQL has committed (with its default `synchronous_commit = on`, flushed to its
//! WAL) before the caller is answered, so what the API acknowledges survives `kill -9` of
//! Herald and of PostgreSQL alike.
//!
//! What SQLite keeps in one process's memory is in the database here, because replicas
//! must agree on it:
//! - claims are leases on the delivery rows (`outbox.rs`): `FOR UPDATE SKIP LOCKED` hands
//!   each due delivery to one replica, and a lease that expires (a replica died mid-request)
//!   makes it claimable again;
//! - a publish wakes every replica through `LISTEN/NOTIFY` (`listen.rs`);
//! - the pruner runs on one replica at a time (an advisory lock);
//! - each replica's heartbeat, which both tells the others it is alive (its leases count)
//!   and sets the process clock to the database's (`liveness.rs`);
//! - page flash messages and login throttles live in tables of their own.

mod activity;
mod connection;
mod deliveries;
mod endpoints;
mod event_types;
mod events;
mod group;
pub mod listen;
mod liveness;
pub mod migrate;
mod operational;
mod ops;
mod outbox;
mod poll;
mod replay;
mod round;
mod settings;
mod shared;
mod subscriptions;
mod tenants;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use postgres::{Client, GenericClient, Row, Transaction};

use super::{Cursor, Page, Result, StoreError};
use crate::clock::now_ms;
use crate::lifecycle::Shutdown;
pub use connection::Target;

/// The channel a commit that makes work due notifies (`listen.rs`).
pub const WAKE_CHANNEL: &str = "herald_due";

pub struct PgStore {
    pool: OffRuntime,
    target: Target,
    /// This process's name on the leases it takes: random per start, so a restarted
    /// replica never mistakes a dead run's leases for its own.
    replica: String,
    /// Transactions committed and operations in them, for /metrics (`writer_stats`).
    counters: Arc<group::Counters>,
    /// Publishes, committed in groups (`group.rs`).
    publisher: group::Publisher,
    leases: Arc<Leases>,
    /// Whether the database is seen down: operations then answer 503 at once.
    live: Arc<liveness::Liveness>,
}

/// The lease keeper's shared state: how long a lease lasts (set by the dispatcher's claims;
/// 0 until the first), the deliveries this replica holds (claimed, not yet recorded or
/// released: only these are renewed, so a claim whose record failed is not kept alive by
/// mistake), and when to stop.
#[derive(Default)]
struct Leases {
    lease_ms: AtomicI64,
    held: std::sync::Mutex<std::collections::HashSet<i64>>,
    stop: Shutdown,
}

impl Leases {
    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i64>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.leases.stop.trigger();
    }
}

/// The pool, dropped on a thread of its own: closing a `postgres` connection blocks on its
/// client's runtime, which panics on a thread that drives a runtime — and the last handle
/// to the store may well be dropped on one (the HTTP server's, at shutdown).
struct OffRuntime(Option<connection::Pool>);

impl std::ops::Deref for OffRuntime {
    type Target = connection::Pool;

    fn deref(&self) -> &connection::Pool {
        self.0
            .as_ref()
            .expect("the pool lives until the store is dropped")
    }
}

impl Drop for OffRuntime {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("herald-pool-close".into())
                .spawn(move || drop(pool))
                .map(|t| t.join());
        }
    }
}

/// Renews this replica's leases every third of a lease, so a lease lapses only when the
/// replica is gone (or cannot reach the database for that long).
fn keep_leases(
    pool: connection::Pool,
    live: Arc<liveness::Liveness>,
    replica: String,
    leases: Arc<Leases>,
) {
    loop {
        let lease_ms = leases.lease_ms.load(Ordering::Relaxed);
        let every = Duration::from_millis((lease_ms / 3).clamp(200, 5_000) as u64);
        if leases.stop.sleep(every) {
            return;
        }
        if lease_ms == 0 {
            continue;
        }
        let held: Vec<i64> = leases.held().iter().copied().collect();
        if held.is_empty() {
            continue;
        }
        let renewed = checkout(&pool, &live)
            .and_then(|mut c| outbox::renew(&mut c, &replica, &held, now_ms(), lease_ms));
        if let Err(e) = renewed {
            tracing::warn!(error = %e, "cannot renew delivery leases; other replicas may take them over");
        }
    }
}

impl PgStore {
    /// Connects, migrates (once, whichever replica comes first), and opens the pool.
    pub fn open(url: &str) -> Result<PgStore> {
        let target = Target::parse(url)?;
        let mut first = target.connect()?;
        migrate::migrate(&mut first)?;
        let sealed = endpoints::reseal(&mut first)?;
        if sealed > 0 {
            tracing::info!(
                endpoints = sealed,
                "sealed endpoint secrets for their endpoint (stored in clear or the older way)"
            );
        }
        let replica = format!("{:016x}", rand::random::<u64>());
        // Before anything is claimed or stamped: this replica's clock is the database's,
        // and the others see it alive.
        liveness::beat(&mut first, &replica)?;
        drop(first);
        let live = Arc::new(liveness::Liveness::default());
        let pool = target.pool(Box::new(liveness::PoolErrors(live.clone())))?;
        let leases = Arc::new(Leases::default());
        {
            let (pool, live, replica, leases) =
                (pool.clone(), live.clone(), replica.clone(), leases.clone());
            spawn("herald-leases", move || {
                keep_leases(pool, live, replica, leases)
            })?;
        }
        {
            let (target, replica, live) = (target.clone(), replica.clone(), live.clone());
            let stop = leases.stop.clone();
            spawn("herald-liveness", move || {
                liveness::watch(target, replica, live, stop)
            })?;
        }
        let counters = Arc::new(group::Counters::default());
        let publisher = group::Publisher::start(pool.clone(), live.clone(), counters.clone())?;
        Ok(PgStore {
            pool: OffRuntime(Some(pool)),
            target,
            replica,
            counters,
            publisher,
            leases,
            live,
        })
    }

    /// Runs `f` on a pooled connection, on the blocking thread pool (the API, the pages).
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Client) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (pool, live) = (self.pool.clone(), self.live.clone());
        self.counted();
        tokio::task::spawn_blocking(move || on_connection(&pool, &live, f))
            .await
            .map_err(|e| StoreError::Backend(format!("a database task failed: {e}")))?
    }

    /// Runs `f` in one transaction on a pooled connection, on the blocking thread pool, and
    /// commits it before answering: what the API acknowledges is committed (and, with
    /// PostgreSQL's default `synchronous_commit = on`, flushed to its WAL). An error rolls
    /// the whole transaction back.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |c| {
            let mut tx = c.transaction()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` on a pooled connection on the calling thread (the engine, the CLI).
    fn run_blocking<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        self.counted();
        on_connection(&self.pool, &self.live, f)
    }
}

impl PgStore {
    /// One operation, one transaction (publishes count theirs in `group.rs`).
    fn counted(&self) {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.counters.jobs.fetch_add(1, Ordering::Relaxed);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| StoreError::Open(format!("cannot start a thread: {e}")))
}

/// Runs `f` on a pooled connection; a connection that closed under it marks the database
/// down (the liveness thread decides when it is back).
fn on_connection<T, E: From<StoreError>>(
    pool: &connection::Pool,
    live: &liveness::Liveness,
    f: impl FnOnce(&mut Client) -> Result<T, E>,
) -> Result<T, E> {
    let mut c = checkout(pool, live)?;
    let out = f(&mut c);
    if out.is_err() && c.is_closed() {
        live.mark_down("the connection closed during a statement");
    }
    out
}

/// How often a waiting checkout looks whether the database has been seen down.
const CHECKOUT_SLICE: Duration = Duration::from_millis(50);

/// A pooled connection: at once `Unreachable` while the database is seen down, and while
/// waiting for one (the pool opening a connection, or all of them busy), given up as soon
/// as it is seen down (a refused connect, a lost connection: `liveness.rs`), else after
/// the pool's checkout timeout.
fn checkout(
    pool: &connection::Pool,
    live: &liveness::Liveness,
) -> Result<r2d2::PooledConnection<connection::Manager>> {
    let started = std::time::Instant::now();
    loop {
        if live.is_down() {
            return Err(StoreError::Unreachable);
        }
        match pool.get_timeout(CHECKOUT_SLICE) {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() >= connection::CHECKOUT_TIMEOUT => {
                return Err(StoreError::Backend(format!("no database connection: {e}")))
            }
            Err(_) => {}
        }
    }
}

/// Wakes every replica's dispatcher when the caller's transaction commits (`listen.rs`):
/// run by every write that makes work due (a publish, a retry, a recover, a resumed
/// endpoint). PostgreSQL delivers it only on commit, and folds repeats within one
/// transaction into one.
fn notify_due(c: &mut impl GenericClient) -> Result<()> {
    c.batch_execute(&format!("SELECT pg_notify('{WAKE_CHANNEL}', '')"))?;
    Ok(())
}

/// A list query's `LIMIT`: one row more than the page, to tell whether there is more.
fn limit_plus_one(cursor: Cursor) -> i64 {
    cursor.limit as i64 + 1
}

/// Cuts the rows of a list query (newest first, `LIMIT limit_plus_one`) into a page.
fn page<T>(
    rows: Vec<Row>,
    row: impl Fn(&Row) -> Result<T>,
    cursor: Cursor,
    key: impl Fn(&T) -> i64,
) -> Result<Page<T>> {
    let items = rows.iter().map(row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, cursor.limit, key))
}
