//! The store's operations, one small trait per aggregate (lldap's composed backend
//! handler): `Backend` in `mod.rs` is their sum, and a caller names the narrowest one it
//! needs. The API's and the pages' operations are `async`: they run on the HTTP server's
//! runtime and must not block it, so a backend answers them from a blocking pool or its
//! writer thread. The engine's operations are in `outbox.rs`.
//!
//! Durability is each backend's promise: a write that returns `Ok` has committed (on
//! SQLite with `synchronous=FULL`, fsynced), so what the API acknowledges survives
//! `kill -9`.

use std::net::IpAddr;
use std::path::Path;

use async_trait::async_trait;

use super::*;
use crate::domain::EndpointStatus;
use crate::store::flash::Flash;
use crate::store::throttle::{Check, Door, Failures};

#[async_trait]
/// The deployment's settings and the store as a whole.
pub trait Admin: Send + Sync {
    /// Stores `value` unless `key` has one; returns what is stored (first writer wins).
    async fn setting_get_or_insert(&self, key: &str, value: &str) -> Result<String>;
    /// The value of `key`, if it has one.
    async fn setting_get(&self, key: &str) -> Result<Option<String>>;
    /// Adds one to the counter under `key` (absent = 0) atomically; returns the new value.
    async fn setting_increment(&self, key: &str) -> Result<i64>;
    /// A write that proves the database takes writes (`/readyz`).
    async fn heartbeat(&self, now: i64) -> Result<()>;
    fn writer_stats(&self) -> WriterStats;
    /// A consistent copy of the whole store at `dest`, taken while it runs.
    fn backup(&self, dest: &Path) -> Result<()>;
}

#[async_trait]
/// Tenants and their API keys.
pub trait Tenants: Send + Sync {
    async fn create_tenant(&self, id: &str, name: &str, now: i64) -> Result<Tenant>;
    async fn get_tenant(&self, id: &str) -> Result<Tenant>;
    async fn tenant_exists(&self, id: &str) -> Result<bool>;
    async fn list_tenants(&self, cursor: Cursor) -> Result<Page<Tenant>>;
    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant>;
    /// Deletes a tenant with its keys, endpoints, events and deliveries.
    async fn delete_tenant(&self, id: &str) -> Result<()>;
    async fn create_key(&self, new: NewKey, now: i64) -> Result<ApiKey>;
    /// A tenant's keys; `NotFound` when the tenant does not exist.
    async fn list_keys(&self, tenant: &str, cursor: Cursor) -> Result<Page<ApiKey>>;
    async fn revoke_key(&self, tenant: &str, id: i64, now: i64) -> Result<ApiKey>;
    /// The key with this hash, if it exists and is not revoked.
    async fn active_key(&self, key_hash: &str) -> Result<Option<ApiKey>>;
    async fn key_is_active(&self, tenant: &str, key_id: i64) -> Result<bool>;
}

#[async_trait]
/// The event-type catalogue (deployment-wide).
pub trait EventTypes: Send + Sync {
    async fn upsert_event_type(&self, new: NewEventType, now: i64) -> Result<EventType>;
    async fn get_event_type(&self, name: &str) -> Result<EventType>;
    /// The whole catalogue (for forms), by name.
    async fn all_event_types(&self) -> Result<Vec<EventType>>;
    async fn list_event_types(&self, cursor: Cursor) -> Result<Page<EventType>>;
    async fn delete_event_type(&self, name: &str) -> Result<()>;
}

#[async_trait]
/// A tenant's endpoints (webhooks).
pub trait Endpoints: Send + Sync {
    async fn create_endpoint(&self, tenant: &str, new: NewEndpoint, now: i64) -> Result<Endpoint>;
    async fn get_endpoint(&self, tenant: &str, id: i64) -> Result<Endpoint>;
    async fn list_endpoints(
        &self,
        tenant: &str,
        status: Option<EndpointStatus>,
        cursor: Cursor,
    ) -> Result<Page<Endpoint>>;
    /// Applies a patch; disabling cancels what is pending for the endpoint.
    async fn update_endpoint(
        &self,
        tenant: &str,
        id: i64,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<Endpoint>;
    async fn delete_endpoint(&self, tenant: &str, id: i64) -> Result<()>;
    /// Installs `secret`; the old one keeps signing beside it until `grace_until`.
    async fn rotate_secret(
        &self,
        tenant: &str,
        id: i64,
        secret: String,
        grace_until: i64,
        now: i64,
    ) -> Result<Endpoint>;
    /// Endpoints of every tenant that need a person: disabled, or failing since their last
    /// success; newest problem first.
    async fn troubled_endpoints(&self, limit: usize) -> Result<Vec<Endpoint>>;
}

#[async_trait]
/// Publishing, and the events published.
pub trait Events: Send + Sync {
    /// Stores events and one pending delivery per subscribed endpoint, atomically and
    /// durably; an idempotency key seen before answers the first result instead.
    async fn publish(
        &self,
        tenant: &str,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<Published>>;
    /// Stores one event for exactly this endpoint, whatever its filter ("send test").
    /// Returns the event id and the delivery id.
    async fn publish_to_endpoint(
        &self,
        tenant: &str,
        endpoint: i64,
        event: NewEvent,
        now: i64,
    ) -> Result<(String, i64)>;
    async fn get_event(&self, tenant: &str, id: &str) -> Result<Event>;
    async fn list_events(&self, tenant: &str, q: EventQuery, cursor: Cursor)
        -> Result<Page<Event>>;
}

#[async_trait]
/// Deliveries and their attempts: history, manual retries, poll endpoints' reads.
pub trait Deliveries: Send + Sync {
    /// A poll endpoint's read: acknowledges (marks succeeded) its pending deliveries up to
    /// `ack`, then answers up to `limit` still pending after it, oldest first. A push
    /// endpoint is a `Conflict`.
    async fn poll_deliveries(
        &self,
        tenant: &str,
        endpoint: i64,
        ack: Option<i64>,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Polled>>;
    async fn get_delivery(&self, tenant: &str, id: i64) -> Result<Delivery>;
    /// One delivery with its attempts, oldest attempt first.
    async fn delivery_with_attempts(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<(Delivery, Vec<Attempt>)>;
    async fn list_deliveries(
        &self,
        tenant: &str,
        q: DeliveryQuery,
        cursor: Cursor,
    ) -> Result<Page<Delivery>>;
    /// The deliveries of one event (one per endpoint), oldest first.
    async fn event_deliveries(&self, tenant: &str, event_id: &str) -> Result<Vec<Delivery>>;
    /// Queues a finished delivery again now with a fresh retry round; `Conflict` while it
    /// is still pending.
    async fn retry_delivery(&self, tenant: &str, id: i64, now: i64) -> Result<Delivery>;
    /// Re-queues an endpoint's failed deliveries created since `since`; returns how many.
    async fn recover(&self, tenant: &str, endpoint: i64, since: i64, now: i64) -> Result<usize>;
    /// Creates the deliveries the endpoint missed in a window (`store::replay`: every event
    /// it matches now that has no delivery for it), all in one transaction; a dry run only
    /// counts. `Conflict` for a disabled endpoint unless dry.
    async fn replay(
        &self,
        tenant: &str,
        endpoint: i64,
        q: ReplayQuery,
        now: i64,
    ) -> Result<Replayed>;
}

#[async_trait]
/// The operator's view (every read bounded by an index or a limit): charts and gauges.
pub trait Activity: Send + Sync {
    /// Attempts of every tenant in the hours since `since`, counted per `bucket_ms` (whole
    /// hours, UTC-aligned); only buckets with attempts, oldest first.
    async fn attempt_buckets(&self, since: i64, bucket_ms: i64) -> Result<Vec<AttemptBucket>>;
    /// Deliveries of every tenant that failed for good since `since`.
    async fn deliveries_failed_since(&self, since: i64) -> Result<i64>;
    /// The queue and the endpoints by state, for gauges.
    async fn gauges(&self) -> Result<Gauges>;
    /// An endpoint's latest attempts, newest first.
    async fn endpoint_recent_attempts(
        &self,
        tenant: &str,
        endpoint: i64,
        limit: usize,
    ) -> Result<Vec<RecentAttempt>>;
    /// Publish → first attempt latency of the deliveries first tried in the hours since
    /// `since`, counted per hour and histogram bucket (`activity::latency_bucket`), oldest
    /// first.
    async fn first_attempt_latency(&self, since: i64) -> Result<Vec<LatencyCount>>;
}

#[async_trait]
/// What replicas must share that one process could keep in memory: the pages' one-time
/// messages (`flash`, whose rules every backend follows) and the authentication throttles
/// (`throttle`). SQLite keeps them in memory; a backend shared by several processes keeps
/// them where every replica sees them.
pub trait SharedState: Send + Sync {
    // The pages' one-time messages (`pages::flash`, whose rules every backend follows) and
    // the authentication throttles (`throttle`). SQLite keeps them in memory; a backend
    // shared by several processes keeps them where every replica sees them.
    /// Whether a message revealing a secret could be kept for `session` (of `principal`:
    /// the admin or a tenant, bounded over all its sessions) now.
    async fn flash_room_for_reveal(&self, session: &str, principal: &str, now: i64)
        -> Result<bool>;
    /// Keeps `flash` for `session` (of `principal`); its ticket, or `flash::LOST` when it
    /// could not be kept.
    async fn flash_put(
        &self,
        session: &str,
        principal: &str,
        flash: Flash,
        now: i64,
    ) -> Result<String>;
    /// Takes out the message of `ticket` if it is `session`'s and fresh (once only).
    async fn flash_take(&self, session: &str, ticket: &str, now: i64) -> Result<Option<Flash>>;
    /// Checks the door for this address and, when a slot is free, takes it for this
    /// attempt, in one atomic step (`throttle` tells the rules).
    async fn throttle_begin(&self, door: Door, ip: Option<IpAddr>, now: i64) -> Result<Check>;
    /// The attempt let in failed: its slot becomes a failure. The count so far, and whether
    /// to log it (once a minute).
    async fn throttle_failed(
        &self,
        door: Door,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Option<Failures>>;
    /// The attempt let in succeeded: its slot is free again.
    async fn throttle_succeeded(&self, door: Door, ip: Option<IpAddr>) -> Result<()>;
}
