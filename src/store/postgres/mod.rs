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
mod subscriptions;
mod tenants;

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use postgres::{Client, GenericClient, Row, Transaction};

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
use crate::server::throttle::{Check, Door, Failures};
pub use connection::Target;

/// The channel a commit that makes work due notifies (`listen.rs`).
pub const WAKE_CHANNEL: &str = "herald_due";

pub struct PgStore {
    pool: OffRuntime,
    target: Target,
    /// This process's name on the leases it takes: random per start, so a restarted
    /// replica never mistakes a dead run's leases for its own.
    replica: String,
    /// Transactions committed, for /metrics (`writer_stats`).
    commits: AtomicU64,
    leases: Arc<Leases>,
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
        let held: Vec<i64> = leases.held().iter().copied().collect();
        if held.is_empty() {
            continue;
        }
        let renewed = pool
            .get()
            .map_err(unavailable)
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
        drop(first);
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
            pool: OffRuntime(Some(pool)),
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
        self.commits.fetch_add(1, Ordering::Relaxed);
        f(&mut *self.pool.get().map_err(unavailable)?)
    }
}

/// No connection within the pool's timeout: the database is down or unreachable.
fn unavailable(e: r2d2::Error) -> StoreError {
    StoreError::Backend(format!("no database connection: {e}"))
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
        // One row for every replica (a key per replica would leave a row behind at every
        // restart): the write proves this replica's connection takes writes.
        self.run(move |c| settings::set(c, "readyz_heartbeat", &now.to_string()))
            .await
    }

    async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<Tenant> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.write(move |c| tenants::create(c, &id, &name, now))
            .await
    }

    async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        let id = id.to_owned();
        self.run(move |c| tenants::get(c, &id)).await
    }

    async fn tenant_exists(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.run(move |c| tenants::exists(c, &id)).await
    }

    async fn list_tenants(&self, cursor: Cursor) -> Result<Page<Tenant>> {
        self.run(move |c| tenants::list(c, cursor)).await
    }

    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.write(move |c| tenants::rename(c, &id, &name)).await
    }

    async fn delete_tenant(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |c| tenants::delete(c, &id)).await
    }

    async fn create_key(&self, new: NewKey, now: i64) -> Result<ApiKey> {
        self.write(move |c| tenants::create_key(c, &new, now)).await
    }

    async fn list_keys(&self, tenant: &str, cursor: Cursor) -> Result<Page<ApiKey>> {
        let tenant = tenant.to_owned();
        self.run(move |c| {
            tenants::get(c, &tenant)?;
            tenants::list_keys(c, &tenant, cursor)
        })
        .await
    }

    async fn revoke_key(&self, tenant: &str, id: i64, now: i64) -> Result<ApiKey> {
        let tenant = tenant.to_owned();
        self.write(move |c| tenants::revoke_key(c, &tenant, id, now))
            .await
    }

    async fn active_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let hash = key_hash.to_owned();
        self.run(move |c| tenants::active_key(c, &hash)).await
    }

    async fn key_is_active(&self, tenant: &str, key_id: i64) -> Result<bool> {
        let tenant = tenant.to_owned();
        self.run(move |c| tenants::key_is_active(c, &tenant, key_id))
            .await
    }

    async fn upsert_event_type(&self, new: NewEventType, now: i64) -> Result<EventType> {
        self.write(move |c| event_types::upsert(c, &new, now)).await
    }

    async fn get_event_type(&self, name: &str) -> Result<EventType> {
        let name = name.to_owned();
        self.run(move |c| event_types::get(c, &name)).await
    }

    async fn all_event_types(&self) -> Result<Vec<EventType>> {
        self.run(event_types::list).await
    }

    async fn list_event_types(&self, cursor: Cursor) -> Result<Page<EventType>> {
        self.run(move |c| event_types::list_page(c, cursor)).await
    }

    async fn delete_event_type(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |c| event_types::delete(c, &name)).await
    }

    async fn create_endpoint(&self, tenant: &str, new: NewEndpoint, now: i64) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.write(move |c| endpoints::create(c, &tenant, &new, now))
            .await
    }

    async fn get_endpoint(&self, tenant: &str, id: i64) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.run(move |c| endpoints::get(c, &tenant, id)).await
    }

    async fn list_endpoints(
        &self,
        tenant: &str,
        status: Option<EndpointStatus>,
        cursor: Cursor,
    ) -> Result<Page<Endpoint>> {
        let tenant = tenant.to_owned();
        self.run(move |c| endpoints::list(c, &tenant, status, cursor))
            .await
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: i64,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.write(move |c| endpoints::update(c, &tenant, id, &patch, now))
            .await
    }

    async fn poll_deliveries(
        &self,
        tenant: &str,
        endpoint: i64,
        ack: Option<i64>,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Polled>> {
        let tenant = tenant.to_owned();
        self.write(move |c| poll::poll(c, &tenant, endpoint, ack, limit, now))
            .await
    }

    async fn delete_endpoint(&self, tenant: &str, id: i64) -> Result<()> {
        let tenant = tenant.to_owned();
        self.write(move |c| endpoints::delete(c, &tenant, id)).await
    }

    async fn rotate_secret(
        &self,
        tenant: &str,
        id: i64,
        secret: String,
        grace_until: i64,
        now: i64,
    ) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.write(move |c| endpoints::rotate_secret(c, &tenant, id, &secret, grace_until, now))
            .await
    }

    async fn troubled_endpoints(&self, limit: usize) -> Result<Vec<Endpoint>> {
        self.run(move |c| endpoints::troubled(c, limit)).await
    }

    async fn publish(
        &self,
        tenant: &str,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Published>> {
        let tenant = tenant.to_owned();
        // The 202 follows the commit: the events and their deliveries are durable (with
        // `synchronous_commit = on`, in PostgreSQL's flushed WAL) before the API answers.
        self.write(move |c| events::publish(c, &tenant, events, now))
            .await
    }

    async fn publish_to_endpoint(
        &self,
        tenant: &str,
        endpoint: i64,
        event: NewEvent,
        now: i64,
    ) -> Result<(String, i64)> {
        let tenant = tenant.to_owned();
        self.write(move |c| {
            endpoints::get(c, &tenant, endpoint)?;
            events::insert_for_endpoint(c, &tenant, endpoint, &event, now)
        })
        .await
    }

    async fn get_event(&self, tenant: &str, id: &str) -> Result<Event> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.run(move |c| events::get(c, &tenant, &id)).await
    }

    async fn list_events(
        &self,
        tenant: &str,
        q: EventQuery,
        cursor: Cursor,
    ) -> Result<Page<Event>> {
        let tenant = tenant.to_owned();
        self.run(move |c| events::list(c, &tenant, &q, cursor))
            .await
    }

    async fn get_delivery(&self, tenant: &str, id: i64) -> Result<Delivery> {
        let tenant = tenant.to_owned();
        self.run(move |c| deliveries::get(c, &tenant, id)).await
    }

    async fn delivery_with_attempts(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<(Delivery, Vec<Attempt>)> {
        let tenant = tenant.to_owned();
        self.run(move |c| {
            Ok((
                deliveries::get(c, &tenant, id)?,
                deliveries::attempts(c, id)?,
            ))
        })
        .await
    }

    async fn list_deliveries(
        &self,
        tenant: &str,
        q: DeliveryQuery,
        cursor: Cursor,
    ) -> Result<Page<Delivery>> {
        let tenant = tenant.to_owned();
        self.run(move |c| deliveries::list(c, &tenant, &q, cursor))
            .await
    }

    async fn event_deliveries(&self, tenant: &str, event_id: &str) -> Result<Vec<Delivery>> {
        let (tenant, event_id) = (tenant.to_owned(), event_id.to_owned());
        self.run(move |c| deliveries::for_event(c, &tenant, &event_id))
            .await
    }

    async fn retry_delivery(&self, tenant: &str, id: i64, now: i64) -> Result<Delivery> {
        let tenant = tenant.to_owned();
        self.write(move |c| {
            deliveries::get(c, &tenant, id)?;
            if !deliveries::retry(c, &tenant, id, now)? {
                return Err(StoreError::Conflict(
                    "the delivery is already pending; it will be attempted as scheduled".into(),
                ));
            }
            deliveries::get(c, &tenant, id)
        })
        .await
    }

    async fn recover(&self, tenant: &str, endpoint: i64, since: i64, now: i64) -> Result<usize> {
        let tenant = tenant.to_owned();
        self.write(move |c| {
            endpoints::get(c, &tenant, endpoint)?;
            deliveries::recover(c, &tenant, endpoint, since, now)
        })
        .await
    }

    async fn attempt_buckets(&self, since: i64, bucket_ms: i64) -> Result<Vec<AttemptBucket>> {
        self.run(move |c| activity::attempt_buckets(c, since, bucket_ms))
            .await
    }

    async fn deliveries_failed_since(&self, since: i64) -> Result<i64> {
        self.run(move |c| activity::deliveries_failed_since(c, since))
            .await
    }

    async fn gauges(&self) -> Result<Gauges> {
        self.run(activity::gauges).await
    }

    async fn endpoint_recent_attempts(
        &self,
        tenant: &str,
        endpoint: i64,
        limit: usize,
    ) -> Result<Vec<RecentAttempt>> {
        let tenant = tenant.to_owned();
        self.run(move |c| activity::endpoint_recent_attempts(c, &tenant, endpoint, limit))
            .await
    }

    async fn first_attempts(&self, since: i64, limit: usize) -> Result<Vec<FirstAttempt>> {
        self.run(move |c| activity::first_attempts(c, since, limit))
            .await
    }

    fn engine_starting(&self) -> Result<usize> {
        // Leases are per replica and expire by themselves; a restarted replica has a new
        // name, so it neither steals a live replica's leases nor waits for its own old ones
        // longer than their lease.
        Ok(0)
    }

    fn claim_due(&self, req: &ClaimRequest) -> Result<Vec<Claimed>> {
        self.leases.lease_ms.store(req.lease_ms, Ordering::Relaxed);
        let claimed = self.run_blocking(|c| outbox::claim_due(c, &self.replica, req))?;
        self.leases
            .held()
            .extend(claimed.iter().map(|c| c.delivery_id));
        Ok(claimed)
    }

    fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
        policy: HealthPolicy,
        now: i64,
    ) -> Result<()> {
        let ids: Vec<i64> = records.iter().map(|r| r.delivery_id).collect();
        let written =
            self.run_blocking(|c| outbox::record_attempts(c, &self.replica, &records, policy, now));
        if written.is_err() {
            // The attempts are not written: give the claims back (or, if even that fails,
            // let them lapse), and the deliveries are sent again (at-least-once).
            let _ = self.run_blocking(|c| outbox::release(c, &self.replica, &ids));
        }
        let mut held = self.leases.held();
        for id in &ids {
            held.remove(id);
        }
        written
    }

    fn release(&self, delivery_ids: &[i64]) -> Result<()> {
        {
            let mut held = self.leases.held();
            for id in delivery_ids {
                held.remove(id);
            }
        }
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
            "`herald backup` copies a SQLite file; back up PostgreSQL with pg_dump, and the secret key file too, kept apart from the dump".into(),
        ))
    }

    async fn flash_room_for_reveal(
        &self,
        session: &str,
        principal: &str,
        now: i64,
    ) -> Result<bool> {
        let (session, principal) = (session.to_owned(), principal.to_owned());
        self.run(move |c| shared::flash_room_for_reveal(c, &session, &principal, now))
            .await
    }

    async fn flash_put(
        &self,
        session: &str,
        principal: &str,
        flash: Flash,
        now: i64,
    ) -> Result<String> {
        let (session, principal) = (session.to_owned(), principal.to_owned());
        self.run(move |c| shared::flash_put(c, &session, &principal, &flash, now))
            .await
    }

    async fn flash_take(&self, session: &str, ticket: &str, now: i64) -> Result<Option<Flash>> {
        let (session, ticket) = (session.to_owned(), ticket.to_owned());
        self.run(move |c| shared::flash_take(c, &session, &ticket, now))
            .await
    }

    async fn throttle_begin(&self, door: Door, ip: Option<IpAddr>, now: i64) -> Result<Check> {
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
        self.run(move |c| {
            if door == Door::Api {
                shared::throttle_hold(c, &key, now)?;
            }
            shared::throttle_failed(c, &key, now)
        })
        .await
    }

    async fn throttle_succeeded(&self, door: Door, ip: Option<IpAddr>) -> Result<()> {
        if door == Door::Api {
            return Ok(()); // the API's door took no slot (`shared::throttle_begin`)
        }
        let key = door.key(ip);
        self.run(move |c| shared::throttle_succeeded(c, &key)).await
    }
}
