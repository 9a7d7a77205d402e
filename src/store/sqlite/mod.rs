//! The SQLite backend: one file, WAL, one writer thread, a pool of read-only connections.
//!
//! Reads run on pooled read-only connections (WAL lets them run beside the writer), on
//! tokio's blocking pool for the API and on the calling thread for the engine. Every write
//! goes through the writer thread (`writer.rs`), which batches concurrent writes into one
//! transaction per commit: a caller is answered only after that COMMIT returned, and with
//! `synchronous=FULL` SQLite returns from COMMIT only once the WAL is fsynced.
//!
//! Claims live in memory (`claims.rs`): one process owns the file, so a claimed delivery
//! needs no durable lease. If the process dies, nothing was written about the claim and the
//! delivery is simply due again at the next start: at-least-once, with no fsync between a
//! publish and its first attempt.

mod activity;
mod checkpoint;
mod claims;
mod connection;
mod deliveries;
mod endpoints;
mod event_types;
mod events;
mod migrate;
pub mod operational;
mod outbox;
mod poll;
mod settings;
mod subscriptions;
mod tenants;
mod writer;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::{
    ApiKey, Attempt, AttemptBucket, AttemptRecord, Backend, ClaimRequest, Claimed, Cursor,
    Delivery, DeliveryQuery, Endpoint, EndpointPatch, Event, EventQuery, EventType, FirstAttempt,
    Gauges, HealthPolicy, NewEndpoint, NewEvent, NewEventType, NewKey, Page, Polled, Published,
    RecentAttempt, Result, StoreError, Tenant, WriterStats,
};
use crate::config::Durability;
use crate::domain::EndpointStatus;
use crate::pages::flash::{self, Flash};
use crate::server::throttle::{self, Check, Door, Failures};

type Pool = r2d2::Pool<SqliteConnectionManager>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::Full;
        }
        StoreError::Backend(e.to_string())
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Backend(format!("connection pool: {e}"))
    }
}

pub struct SqliteStore {
    pool: Pool,
    writer: writer::Writer,
    claims: claims::Claims,
    path: PathBuf,
    _checkpointer: checkpoint::Checkpointer,
    /// One process serves every page and request, so flash messages and throttle counts
    /// stay in its memory: no write per login attempt.
    flashes: Mutex<flash::Memory>,
    throttles: Mutex<throttle::Memory>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, migrates it, and starts the writer.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let mut conn = connection::open_writer(path, durability)?;
        migrate::migrate(&mut conn)?;
        let sealed = endpoints::reseal(&conn)?;
        if sealed > 0 {
            tracing::info!(
                endpoints = sealed,
                "sealed endpoint secrets for their endpoint (stored in clear or the older way)"
            );
        }
        let pool = connection::read_pool(path)?;
        Ok(SqliteStore {
            pool,
            writer: writer::Writer::start(conn, durability == Durability::Full),
            claims: claims::Claims::default(),
            path: path.to_owned(),
            _checkpointer: checkpoint::Checkpointer::start(path)?,
            flashes: Mutex::default(),
            throttles: Mutex::default(),
        })
    }

    fn flashes(&self) -> MutexGuard<'_, flash::Memory> {
        self.flashes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn throttles(&self) -> MutexGuard<'_, throttle::Memory> {
        self.throttles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a pooled read-only connection, on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&*pool.get()?))
            .await
            .map_err(|e| StoreError::Backend(format!("a read task failed: {e}")))?
    }

    /// Runs `f` on a pooled read-only connection on the calling thread (engine, CLI).
    fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&*self.pool.get()?)
    }

    /// Queues `f` for the writer thread; resolves once its transaction has committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit(f)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Like `write`, blocking the calling thread (engine threads).
    fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit(f)?
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Like `write_blocking` for writes a power cut may lose harmlessly (see
    /// `Writer::submit_relaxed`).
    fn write_relaxed_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer
            .submit_relaxed(f)?
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` in the writer with raw SQL: for tests that set up states the API cannot
    /// reach (a backdated failure, an injected fault).
    #[doc(hidden)]
    pub fn write_raw_for_tests<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_blocking(f)
    }
}

#[async_trait]
impl Backend for SqliteStore {
    async fn setting_get_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |c| settings::get_or_insert(c, &key, &value))
            .await
    }

    async fn setting_get(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |c| settings::get(c, &key)).await
    }

    async fn setting_increment(&self, key: &str) -> Result<i64> {
        let key = key.to_owned();
        self.write(move |c| settings::increment(c, &key)).await
    }

    async fn heartbeat(&self, now: i64) -> Result<()> {
        if self.writer.is_full() {
            // After a full disk, a tiny write proves little (it may fit where an event does
            // not): ready again only once an event-sized durable write commits.
            let probe = "x".repeat(64 * 1024);
            return self
                .write(move |c| settings::set(c, "readyz_probe", &probe))
                .await;
        }
        // Relaxed: it proves the file takes writes; nobody needs it after a power cut.
        self.writer
            .submit_relaxed(move |c| settings::set(c, "readyz_heartbeat", &now.to_string()))?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<Tenant> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.write(move |c| tenants::create(c, &id, &name, now))
            .await
    }

    async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        let id = id.to_owned();
        self.read(move |c| tenants::get(c, &id)).await
    }

    async fn tenant_exists(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.read(move |c| tenants::exists(c, &id)).await
    }

    async fn list_tenants(&self, cursor: Cursor) -> Result<Page<Tenant>> {
        self.read(move |c| tenants::list(c, cursor)).await
    }

    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.write(move |c| tenants::rename(c, &id, &name)).await
    }

    async fn delete_tenant(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |c| {
            subscriptions::invalidate();
            tenants::delete(c, &id)
        })
        .await
    }

    async fn create_key(&self, new: NewKey, now: i64) -> Result<ApiKey> {
        self.write(move |c| tenants::create_key(c, &new, now)).await
    }

    async fn list_keys(&self, tenant: &str, cursor: Cursor) -> Result<Page<ApiKey>> {
        let tenant = tenant.to_owned();
        self.read(move |c| {
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
        self.read(move |c| tenants::active_key(c, &hash)).await
    }

    async fn key_is_active(&self, tenant: &str, key_id: i64) -> Result<bool> {
        let tenant = tenant.to_owned();
        self.read(move |c| tenants::key_is_active(c, &tenant, key_id))
            .await
    }

    async fn upsert_event_type(&self, new: NewEventType, now: i64) -> Result<EventType> {
        self.write(move |c| event_types::upsert(c, &new, now)).await
    }

    async fn get_event_type(&self, name: &str) -> Result<EventType> {
        let name = name.to_owned();
        self.read(move |c| event_types::get(c, &name)).await
    }

    async fn all_event_types(&self) -> Result<Vec<EventType>> {
        self.read(event_types::list).await
    }

    async fn list_event_types(&self, cursor: Cursor) -> Result<Page<EventType>> {
        self.read(move |c| event_types::list_page(c, cursor)).await
    }

    async fn delete_event_type(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |c| event_types::delete(c, &name)).await
    }

    async fn create_endpoint(&self, tenant: &str, new: NewEndpoint, now: i64) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.write(move |c| {
            subscriptions::invalidate();
            endpoints::create(c, &tenant, &new, now)
        })
        .await
    }

    async fn get_endpoint(&self, tenant: &str, id: i64) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.read(move |c| endpoints::get(c, &tenant, id)).await
    }

    async fn list_endpoints(
        &self,
        tenant: &str,
        status: Option<EndpointStatus>,
        cursor: Cursor,
    ) -> Result<Page<Endpoint>> {
        let tenant = tenant.to_owned();
        self.read(move |c| endpoints::list(c, &tenant, status, cursor))
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
        self.write(move |c| {
            subscriptions::invalidate();
            endpoints::update(c, &tenant, id, &patch, now)
        })
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
        self.write(move |c| {
            subscriptions::invalidate();
            endpoints::delete(c, &tenant, id)
        })
        .await
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
        self.read(move |c| endpoints::troubled(c, limit)).await
    }

    async fn publish(
        &self,
        tenant: &str,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Published>> {
        let tenant = tenant.to_owned();
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
        self.read(move |c| events::get(c, &tenant, &id)).await
    }

    async fn list_events(
        &self,
        tenant: &str,
        q: EventQuery,
        cursor: Cursor,
    ) -> Result<Page<Event>> {
        let tenant = tenant.to_owned();
        self.read(move |c| events::list(c, &tenant, &q, cursor))
            .await
    }

    async fn get_delivery(&self, tenant: &str, id: i64) -> Result<Delivery> {
        let tenant = tenant.to_owned();
        self.read(move |c| deliveries::get(c, &tenant, id)).await
    }

    async fn delivery_with_attempts(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<(Delivery, Vec<Attempt>)> {
        let tenant = tenant.to_owned();
        self.read(move |c| {
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
        self.read(move |c| deliveries::list(c, &tenant, &q, cursor))
            .await
    }

    async fn event_deliveries(&self, tenant: &str, event_id: &str) -> Result<Vec<Delivery>> {
        let (tenant, event_id) = (tenant.to_owned(), event_id.to_owned());
        self.read(move |c| deliveries::for_event(c, &tenant, &event_id))
            .await
    }

    async fn retry_delivery(&self, tenant: &str, id: i64, now: i64) -> Result<Delivery> {
        let tenant = tenant.to_owned();
        self.write(move |c| {
            deliveries::get(c, &tenant, id)?;
            if !outbox::retry(c, &tenant, id, now)? {
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
            outbox::recover(c, &tenant, endpoint, since, now)
        })
        .await
    }

    async fn attempt_buckets(&self, since: i64, bucket_ms: i64) -> Result<Vec<AttemptBucket>> {
        self.read(move |c| activity::attempt_buckets(c, since, bucket_ms))
            .await
    }

    async fn deliveries_failed_since(&self, since: i64) -> Result<i64> {
        self.read(move |c| activity::deliveries_failed_since(c, since))
            .await
    }

    async fn gauges(&self) -> Result<Gauges> {
        self.read(activity::gauges).await
    }

    async fn endpoint_recent_attempts(
        &self,
        tenant: &str,
        endpoint: i64,
        limit: usize,
    ) -> Result<Vec<RecentAttempt>> {
        let tenant = tenant.to_owned();
        self.read(move |c| activity::endpoint_recent_attempts(c, &tenant, endpoint, limit))
            .await
    }

    async fn first_attempts(&self, since: i64, limit: usize) -> Result<Vec<FirstAttempt>> {
        self.read(move |c| activity::first_attempts(c, since, limit))
            .await
    }

    fn engine_starting(&self) -> Result<usize> {
        // Claims are in memory: whatever the last run held is simply pending in the file
        // (migration 2 dropped the leases older versions wrote). Nothing to scan.
        let held = self.claims.held_count();
        self.claims.clear();
        Ok(held)
    }

    fn claim_due(&self, req: &ClaimRequest) -> Result<Vec<Claimed>> {
        self.read_blocking(|c| outbox::claim_due(c, &self.claims, req))
    }

    fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
        policy: HealthPolicy,
        now: i64,
    ) -> Result<()> {
        let ids: Vec<i64> = records.iter().map(|r| r.delivery_id).collect();
        // Relaxed: losing these records in a power cut means the deliveries are sent again.
        let written =
            self.write_relaxed_blocking(move |c| outbox::record_attempts(c, &records, policy, now));
        // After the commit the rows say what happened, so the claims can go; after a failed
        // write they go too, and the deliveries are sent again (at-least-once).
        self.claims.release(&ids);
        written
    }

    fn release(&self, delivery_ids: &[i64]) -> Result<()> {
        self.claims.release(delivery_ids);
        Ok(())
    }

    fn next_due(&self, now: i64) -> Result<Option<i64>> {
        self.read_blocking(|c| outbox::next_due(c, now))
    }

    fn prune(&self, before: i64, batch: usize) -> Result<usize> {
        self.write_blocking(move |c| outbox::prune(c, before, batch))
    }

    fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        // `VACUUM INTO` accepts an empty file: creating it first sets the copy's mode.
        connection::create_private(dest)?;
        let dest = dest.to_string_lossy().into_owned();
        let conn = connection::open_plain(&self.path)?;
        conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    async fn flash_room_for_reveal(
        &self,
        session: &str,
        principal: &str,
        now: i64,
    ) -> Result<bool> {
        Ok(self.flashes().room_for_reveal(session, principal, now))
    }

    async fn flash_put(
        &self,
        session: &str,
        principal: &str,
        flash: Flash,
        now: i64,
    ) -> Result<String> {
        Ok(self.flashes().put(session, principal, flash, now))
    }

    async fn flash_take(&self, session: &str, ticket: &str, now: i64) -> Result<Option<Flash>> {
        Ok(self.flashes().take(session, ticket, now))
    }

    async fn throttle_begin(&self, door: Door, ip: Option<IpAddr>, now: i64) -> Result<Check> {
        Ok(self.throttles().begin(door, ip, now))
    }

    async fn throttle_failed(
        &self,
        door: Door,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Option<Failures>> {
        Ok(self.throttles().failed(door, ip, now))
    }

    async fn throttle_succeeded(&self, door: Door, ip: Option<IpAddr>) -> Result<()> {
        self.throttles().succeeded(door, ip);
        Ok(())
    }
}

/// Runs a list query (newest first, `LIMIT cursor.limit + 1`) and cuts it into a page.
fn page<T, P: rusqlite::Params>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: P,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    cursor: Cursor,
    key: impl Fn(&T) -> i64,
) -> Result<Page<T>> {
    let rows = stmt
        .query_map(params, row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Page::from_rows(rows, cursor.limit, key))
}

/// Shared with the writer so a failed commit can drop what its batch cached.
pub(crate) fn on_rollback() {
    subscriptions::invalidate();
}
