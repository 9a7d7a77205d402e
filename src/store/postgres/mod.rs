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
//! - page flash messages and login throttles live in tables of their own.

mod activity;
mod connection;
mod deliveries;
mod endpoints;
mod event_types;
mod events;
pub mod listen;
pub mod migrate;
mod operational;
mod outbox;
mod poll;
mod settings;
mod shared;
mod tenants;

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use postgres::Client;

use super::{
    ApiKey, Attempt, AttemptBucket, AttemptRecord, Backend, ClaimRequest, Claimed, Cursor,
    Delivery, DeliveryQuery, Endpoint, EndpointPatch, Event, EventQuery, EventType, FirstAttempt,
    Gauges, HealthPolicy, NewEndpoint, NewEvent, NewEventType, NewKey, Page, Polled, Published,
    RecentAttempt, Result, StoreError, Tenant, WriterStats,
};
use crate::clock::now_ms;
use crate::domain::EndpointStatus;
use crate::lifecycle::Shutdown;
use crate::pages::flash::Flash;
use crate::throttle::{Door, Failures};
pub use connection::Target;

/// The channel a commit that makes work due notifies (`listen.rs`).
pub const WAKE_CHANNEL: &str = "herald_due";

pub struct PgStore {
    pool: connection::Pool,
    target: Target,
    /// This process's name on the leases it takes: random per start, so a restarted
    /// replica never mistakes a dead run's leases for its own.
    replica: String,
    /// Transactions committed, for /metrics (`writer_stats`).
    commits: AtomicU64,
    leases: Arc<Leases>,
}

/// The lease keeper's shared state: how long a lease lasts (set by the dispatcher's claims;
/// 0 until the first) and when to stop.
#[derive(Default)]
struct Leases {
    lease_ms: AtomicI64,
    stop: Shutdown,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.leases.stop.trigger();
    }
}

/// Renews this replica's leases every third of a lease, so a lease lapses only when the
/// replica is gone (or cannot reach the database for that long).
fn keep_leases(pool: connection::Pool, replica: String, leases: Arc<Leases>) {
    loop {
        let lease_ms = leases.lease_ms.load(Ordering::Relaxed);
        let every = Duration::from_millis((lease_ms / 3).clamp(200, 5_000) as u64);
        if leases.stop.sleep(every) {
            return;
        }
        if lease_ms == 0 {
            continue;
        }
        let renewed = pool
            .get()
            .map_err(unavailable)
            .and_then(|mut c| outbox::renew(&mut c, &replica, now_ms(), lease_ms));
        if let Err(e) = renewed {
            tracing::warn!(error = %e, "cannot renew delivery leases; other replicas may take them over");
        }
    }
}

impl PgStore {
    /// Connects, migrates (once, whichever replica comes first), and opens the pool.
    pub fn open(url: &str) -> Result<PgStore> {
        let target = Target::parse(url)?;
        migrate::migrate(&mut target.connect()?)?;
        let pool = target.pool()?;
        let replica = format!("{:016x}", rand::random::<u64>());
        let leases = Arc::new(Leases::default());
        {
            let (pool, replica, leases) = (pool.clone(), replica.clone(), leases.clone());
            std::thread::Builder::new()
                .name("herald-leases".into())
                .spawn(move || keep_leases(pool, replica, leases))
                .map_err(|e| StoreError::Open(format!("cannot start a thread: {e}")))?;
        }
        Ok(PgStore {
            pool,
            target,
            replica,
            commits: AtomicU64::new(0),
            leases,
        })
    }

    /// Runs `f` on a pooled connection, on the blocking thread pool (the API, the pages).
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Client) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        self.commits.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || f(&mut *pool.get().map_err(unavailable)?))
            .await
            .map_err(|e| StoreError::Backend(format!("a database task failed: {e}")))?
    }

    /// Runs `f` on a pooled connection on the calling thread (the engine, the CLI).
    fn run_blocking<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        self.commits.fetch_add(1, Ordering::Relaxed);
        f(&mut *self.pool.get().map_err(unavailable)?)
    }

    /// This process's lease owner name.
    pub fn replica(&self) -> &str {
        &self.replica
    }
}

/// No connection within the pool's timeout: the database is down or unreachable.
fn unavailable(e: r2d2::Error) -> StoreError {
    StoreError::Backend(format!("no database connection: {e}"))
}

/// Stands for an operation still being ported (the trait is implemented whole, so the
/// server starts and answers 503 for these rather than failing to build).
fn not_yet<T>() -> Result<T> {
    Err(StoreError::Backend(
        "not yet implemented on PostgreSQL".into(),
    ))
}

// Until every operation is ported, the stubs leave their arguments unused.
#[allow(unused_variables)]
#[async_trait]
impl Backend for PgStore {
    async fn setting_get_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.run(move |c| settings::get_or_insert(c, &key, &value))
            .await
    }

    async fn setting_get(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.run(move |c| settings::get(c, &key)).await
    }

    async fn setting_increment(&self, key: &str) -> Result<i64> {
        let key = key.to_owned();
        self.run(move |c| settings::increment(c, &key)).await
    }

    async fn heartbeat(&self, now: i64) -> Result<()> {
        // Per replica: it proves this replica's connection takes writes.
        let key = format!("readyz_heartbeat_{}", self.replica);
        self.run(move |c| settings::set(c, &key, &now.to_string()))
            .await
    }

    async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<Tenant> {
        not_yet()
    }

    async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        not_yet()
    }

    async fn tenant_exists(&self, id: &str) -> Result<bool> {
        not_yet()
    }

    async fn list_tenants(&self, cursor: Cursor) -> Result<Page<Tenant>> {
        not_yet()
    }

    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        not_yet()
    }

    async fn delete_tenant(&self, id: &str) -> Result<()> {
        not_yet()
    }

    async fn create_key(&self, new: NewKey, now: i64) -> Result<ApiKey> {
        not_yet()
    }

    async fn list_keys(&self, tenant: &str, cursor: Cursor) -> Result<Page<ApiKey>> {
        not_yet()
    }

    async fn revoke_key(&self, tenant: &str, id: i64, now: i64) -> Result<ApiKey> {
        not_yet()
    }

    async fn active_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        not_yet()
    }

    async fn key_is_active(&self, tenant: &str, key_id: i64) -> Result<bool> {
        not_yet()
    }

    async fn upsert_event_type(&self, new: NewEventType, now: i64) -> Result<EventType> {
        not_yet()
    }

    async fn get_event_type(&self, name: &str) -> Result<EventType> {
        not_yet()
    }

    async fn all_event_types(&self) -> Result<Vec<EventType>> {
        not_yet()
    }

    async fn list_event_types(&self, cursor: Cursor) -> Result<Page<EventType>> {
        not_yet()
    }

    async fn delete_event_type(&self, name: &str) -> Result<()> {
        not_yet()
    }

    async fn create_endpoint(&self, tenant: &str, new: NewEndpoint, now: i64) -> Result<Endpoint> {
        not_yet()
    }

    async fn get_endpoint(&self, tenant: &str, id: i64) -> Result<Endpoint> {
        not_yet()
    }

    async fn list_endpoints(
        &self,
        tenant: &str,
        status: Option<EndpointStatus>,
        cursor: Cursor,
    ) -> Result<Page<Endpoint>> {
        not_yet()
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: i64,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<Endpoint> {
        not_yet()
    }

    async fn poll_deliveries(
        &self,
        tenant: &str,
        endpoint: i64,
        ack: Option<i64>,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Polled>> {
        not_yet()
    }

    async fn delete_endpoint(&self, tenant: &str, id: i64) -> Result<()> {
        not_yet()
    }

    async fn rotate_secret(
        &self,
        tenant: &str,
        id: i64,
        secret: String,
        grace_until: i64,
        now: i64,
    ) -> Result<Endpoint> {
        not_yet()
    }

    async fn troubled_endpoints(&self, limit: usize) -> Result<Vec<Endpoint>> {
        not_yet()
    }

    async fn publish(
        &self,
        tenant: &str,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Published>> {
        not_yet()
    }

    async fn publish_to_endpoint(
        &self,
        tenant: &str,
        endpoint: i64,
        event: NewEvent,
        now: i64,
    ) -> Result<(String, i64)> {
        not_yet()
    }

    async fn get_event(&self, tenant: &str, id: &str) -> Result<Event> {
        not_yet()
    }

    async fn list_events(
        &self,
        tenant: &str,
        q: EventQuery,
        cursor: Cursor,
    ) -> Result<Page<Event>> {
        not_yet()
    }

    async fn get_delivery(&self, tenant: &str, id: i64) -> Result<Delivery> {
        not_yet()
    }

    async fn delivery_with_attempts(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<(Delivery, Vec<Attempt>)> {
        not_yet()
    }

    async fn list_deliveries(
        &self,
        tenant: &str,
        q: DeliveryQuery,
        cursor: Cursor,
    ) -> Result<Page<Delivery>> {
        not_yet()
    }

    async fn event_deliveries(&self, tenant: &str, event_id: &str) -> Result<Vec<Delivery>> {
        not_yet()
    }

    async fn retry_delivery(&self, tenant: &str, id: i64, now: i64) -> Result<Delivery> {
        not_yet()
    }

    async fn recover(&self, tenant: &str, endpoint: i64, since: i64, now: i64) -> Result<usize> {
        not_yet()
    }

    async fn attempt_buckets(&self, since: i64, bucket_ms: i64) -> Result<Vec<AttemptBucket>> {
        not_yet()
    }

    async fn deliveries_failed_since(&self, since: i64) -> Result<i64> {
        not_yet()
    }

    async fn gauges(&self) -> Result<Gauges> {
        not_yet()
    }

    async fn endpoint_recent_attempts(
        &self,
        tenant: &str,
        endpoint: i64,
        limit: usize,
    ) -> Result<Vec<RecentAttempt>> {
        not_yet()
    }

    async fn first_attempts(&self, since: i64, limit: usize) -> Result<Vec<FirstAttempt>> {
        not_yet()
    }

    fn engine_starting(&self) -> Result<usize> {
        // Leases are per replica and expire by themselves; a restarted replica has a new
        // name, so it neither steals a live replica's leases nor waits for its own old ones
        // longer than their lease.
        Ok(0)
    }

    fn claim_due(&self, req: &ClaimRequest) -> Result<Vec<Claimed>> {
        self.leases.lease_ms.store(req.lease_ms, Ordering::Relaxed);
        self.run_blocking(|c| outbox::claim_due(c, &self.replica, req))
    }

    fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
        policy: HealthPolicy,
        now: i64,
    ) -> Result<()> {
        self.run_blocking(|c| outbox::record_attempts(c, &self.replica, &records, policy, now))
    }

    fn release(&self, delivery_ids: &[i64]) -> Result<()> {
        self.run_blocking(|c| outbox::release(c, &self.replica, delivery_ids))
    }

    fn next_due(&self, now: i64) -> Result<Option<i64>> {
        self.run_blocking(|c| outbox::next_due(c, now))
    }

    fn prune(&self, before: i64, batch: usize) -> Result<usize> {
        self.run_blocking(|c| outbox::prune(c, before, batch))
    }

    fn watch_wakeups(
        &self,
        wake: Box<dyn Fn() + Send>,
        shutdown: crate::lifecycle::Shutdown,
    ) -> Result<()> {
        listen::start(self.target.clone(), wake, shutdown)
    }

    fn writer_stats(&self) -> WriterStats {
        let commits = self.commits.load(Ordering::Relaxed);
        WriterStats {
            commits,
            jobs: commits,
        }
    }

    fn backup(&self, _dest: &Path) -> Result<()> {
        Err(StoreError::Conflict(
            "`herald backup` copies a SQLite file; back up PostgreSQL with pg_dump (and keep the secret key file)".into(),
        ))
    }

    async fn flash_room_for_reveal(&self, session: &str, now: i64) -> Result<bool> {
        let session = session.to_owned();
        self.run(move |c| shared::flash_room_for_reveal(c, &session, now))
            .await
    }

    async fn flash_put(&self, session: &str, flash: Flash, now: i64) -> Result<String> {
        let session = session.to_owned();
        self.run(move |c| shared::flash_put(c, &session, &flash, now))
            .await
    }

    async fn flash_take(&self, session: &str, ticket: &str, now: i64) -> Result<Option<Flash>> {
        let (session, ticket) = (session.to_owned(), ticket.to_owned());
        self.run(move |c| shared::flash_take(c, &session, &ticket, now))
            .await
    }

    async fn throttle_begin(&self, door: Door, ip: Option<IpAddr>, now: i64) -> Result<bool> {
        let key = door.key(ip);
        self.run(move |c| shared::throttle_begin(c, door, &key, now))
            .await
    }

    async fn throttle_failed(
        &self,
        door: Door,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Option<Failures>> {
        let key = door.key(ip);
        self.run(move |c| shared::throttle_failed(c, &key, now))
            .await
    }

    async fn throttle_succeeded(&self, door: Door, ip: Option<IpAddr>) -> Result<()> {
        let key = door.key(ip);
        self.run(move |c| shared::throttle_succeeded(c, &key)).await
    }
}
