//! The store's traits over the SQLite modules: each operation picks its connection — a
//! pooled read-only one on the blocking pool, or the writer thread, whose commit (group
//! commit, fsynced with `synchronous=FULL`) comes before the answer — and calls the query
//! module that owns its SQL. The engine's outbox is in `outbox.rs`.

use std::net::IpAddr;
use std::path::Path;

use async_trait::async_trait;

use super::{
    activity, connection, deliveries, endpoints, event_types, events, operational, outbox, poll,
    replay, round, settings, subscriptions, tenants, SqliteStore,
};
use crate::domain::EndpointStatus;
use crate::store::flash::Flash;
use crate::store::throttle::{Check, Door, Failures};
use crate::store::*;

#[async_trait]
impl Admin for SqliteStore {
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
        if self.writer.is_stopped() {
            return Err(StoreError::Stopped);
        }
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

    fn writer_stats(&self) -> WriterStats {
        let mut stats = self.writer.stats();
        self.checkpointer.fill(&mut stats);
        stats
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        // `VACUUM INTO` accepts an empty file: creating it first sets the copy's mode.
        connection::create_private(dest)?;
        let dest = dest.to_string_lossy().into_owned();
        let conn = connection::open_plain(&self.path)?;
        conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }
}

#[async_trait]
impl Tenants for SqliteStore {
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
}

#[async_trait]
impl EventTypes for SqliteStore {
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
}

#[async_trait]
impl Endpoints for SqliteStore {
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
}

#[async_trait]
impl Events for SqliteStore {
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
}

#[async_trait]
impl Deliveries for SqliteStore {
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

    async fn replay(
        &self,
        tenant: &str,
        endpoint: i64,
        q: ReplayQuery,
        now: i64,
    ) -> Result<Replayed> {
        let tenant = tenant.to_owned();
        if q.dry_run {
            return self
                .read(move |c| replay::run(c, &tenant, endpoint, &q, now))
                .await;
        }
        // One writer job: its deliveries commit in the writer's one transaction.
        self.write(move |c| replay::run(c, &tenant, endpoint, &q, now))
            .await
    }
}

#[async_trait]
impl Activity for SqliteStore {
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

    async fn first_attempt_latency(&self, since: i64) -> Result<Vec<LatencyCount>> {
        self.read(move |c| activity::first_attempt_latency(c, since))
            .await
    }
}

#[async_trait]
impl SharedState for SqliteStore {
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

impl Outbox for SqliteStore {
    fn shared(&self) -> bool {
        false // one process owns the file
    }

    fn engine_starting(&self) -> Result<usize> {
        // Claims are in memory: whatever the last run held is simply pending in the file
        // (migration 2 dropped the leases older versions wrote). Nothing to scan.
        let held = self.claims.held_count();
        self.claims.clear();
        Ok(held)
    }

    fn claim_among(
        &self,
        round: &ClaimRound,
        among: &Among,
        plan: &mut Planner<'_>,
    ) -> Result<Claim> {
        self.engine_read(|c| round::claim(c, &self.claims, round, among, plan))
    }

    fn due_scan(&self, since: Option<i64>) -> Result<DueScan> {
        self.engine_read(|c| round::due_scan(c, since))
    }

    fn record(
        &self,
        records: std::sync::Arc<[AttemptRecord]>,
        judge: std::sync::Arc<dyn Judge>,
        now: i64,
    ) -> Result<()> {
        let ids: Vec<i64> = records.iter().map(|r| r.delivery_id).collect();
        // Relaxed: losing these records in a power cut means the deliveries are sent again.
        self.write_relaxed_blocking(move |c| outbox::record(c, &records, &*judge, now))?;
        // After the commit the rows say what happened, so the claims can go. After a failed
        // write they stay: the recorder writes the records again once the store recovers,
        // rather than the deliveries going out again meanwhile.
        self.claims.release(&ids);
        Ok(())
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

    fn client_certificates(&self) -> Result<Vec<(i64, String, Option<String>)>> {
        self.read_blocking(operational::client_certificates)
    }

    fn announce_certificate(
        &self,
        endpoint: i64,
        fingerprint: String,
        data: serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        self.write_blocking(move |c| {
            operational::announce_certificate(c, endpoint, &fingerprint, data, now)
        })
    }
}
