//! The store's traits over the PostgreSQL modules: each operation runs on a pooled
//! connection on the blocking pool, a write in one transaction committed before the answer.
//! The engine's outbox is in `outbox.rs`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{
    activity, deliveries, endpoints, event_types, events, outbox, poll, replay, round, settings,
    shared, tenants, PgStore,
};
use crate::domain::EndpointStatus;
use crate::store::flash::Flash;
use crate::store::throttle::{Check, Door, Failures};
use crate::store::*;

#[async_trait]
impl Admin for PgStore {
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

    fn writer_stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            ..WriterStats::default()
        }
    }

    fn backup(&self, _dest: &Path) -> Result<()> {
        Err(StoreError::Conflict(
            "`herald backup` copies a SQLite file; back up PostgreSQL with pg_dump, and the secret key file too, kept apart from the dump".into(),
        ))
    }
}

#[async_trait]
impl Tenants for PgStore {
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
}

#[async_trait]
impl EventTypes for PgStore {
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
}

#[async_trait]
impl Endpoints for PgStore {
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
}

#[async_trait]
impl Events for PgStore {
    async fn publish(
        &self,
        tenant: &str,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Published>> {
        // The 202 follows the commit of the batch this publish joins (`group.rs`): the
        // events and their deliveries are durable (with `synchronous_commit = on`, in
        // PostgreSQL's flushed WAL) before the API answers.
        self.publisher
            .publish(events::Publish {
                tenant: tenant.to_owned(),
                events,
                now,
            })
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
}

#[async_trait]
impl Deliveries for PgStore {
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

    async fn replay(
        &self,
        tenant: &str,
        endpoint: i64,
        q: ReplayQuery,
        now: i64,
    ) -> Result<Replayed> {
        let tenant = tenant.to_owned();
        // One transaction: the deliveries of one call commit together.
        self.write(move |c| replay::run(c, &tenant, endpoint, &q, now))
            .await
    }
}

#[async_trait]
impl Activity for PgStore {
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

    async fn first_attempt_latency(&self, since: i64) -> Result<Vec<LatencyCount>> {
        self.run(move |c| activity::first_attempt_latency(c, since))
            .await
    }
}

#[async_trait]
impl SharedState for PgStore {
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

impl Outbox for PgStore {
    fn shared(&self) -> bool {
        true // every replica claims from the same tables
    }

    fn engine_starting(&self) -> Result<usize> {
        // Leases are per replica and expire by themselves; a restarted replica has a new
        // name, so it neither steals a live replica's leases nor waits for its own old ones
        // longer than their lease.
        Ok(0)
    }

    fn claim_among(
        &self,
        round: &ClaimRound,
        among: &Among,
        plan: &mut Planner<'_>,
    ) -> Result<Claim> {
        self.leases
            .lease_ms
            .store(round.lease_ms, Ordering::Relaxed);
        let claim = self.run_blocking(|c| round::claim(c, &self.replica, round, among, plan))?;
        self.leases
            .held()
            .extend(claim.claimed.iter().map(|c| c.delivery_id));
        Ok(claim)
    }

    fn due_scan(&self, _since: Option<i64>) -> Result<DueScan> {
        self.run_blocking(round::due_scan)
    }

    fn record(
        &self,
        records: std::sync::Arc<[AttemptRecord]>,
        judge: std::sync::Arc<dyn Judge>,
        now: i64,
    ) -> Result<()> {
        // On failure the leases stay held (and renewed while the database answers): the
        // recorder writes the records again, instead of another replica resending them.
        // If this replica dies meanwhile, the leases lapse and the deliveries go again.
        self.run_blocking(|c| outbox::record(c, &self.replica, &records, &*judge, now))?;
        let mut held = self.leases.held();
        for r in records.iter() {
            held.remove(&r.delivery_id);
        }
        Ok(())
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

    fn client_certificates(&self) -> Result<Vec<(i64, String, Option<String>)>> {
        self.run_blocking(super::operational::client_certificates)
    }

    fn announce_certificate(
        &self,
        endpoint: i64,
        fingerprint: String,
        data: serde_json::Value,
        now: i64,
    ) -> Result<bool> {
        self.run_blocking(|c| {
            super::operational::announce_certificate(c, endpoint, &fingerprint, data, now)
        })
    }

    fn watch_wakeups(
        &self,
        wake: Box<dyn Fn() + Send>,
        shutdown: crate::lifecycle::Shutdown,
    ) -> Result<()> {
        super::listen::start(self.target.clone(), wake, shutdown)
    }
}
