//! The store: every durable thing Herald knows, behind one trait of named operations.
//!
//! Handlers, pages, the CLI and the engine call typed operations (`store.publish(..)`,
//! `store.claim_due(..)`) that take and return the records in `model.rs`. Nothing above
//! this module sees a connection, a closure over one, or SQL; that boundary is what lets
//! a second backend sit beside SQLite (`sqlite/`, the default: one file, one writer thread
//! with group commit).
//!
//! Two kinds of operations:
//! - the API's and the pages' (`async`): they run on the HTTP server's runtime and must not
//!   block it, so a backend answers them from a blocking pool or a writer thread;
//! - the engine's (plain `fn`): the dispatcher, workers and recorder are OS threads and call
//!   them directly, blocking.
//!
//! Durability is the backend's promise: an operation that returns `Ok` for a write has
//! committed it (for SQLite with `synchronous=FULL`, fsynced), so what the API
//! acknowledges survives `kill -9`.

pub mod activity;
pub mod model;
pub mod page;
pub mod postgres;
pub mod sqlite;
pub mod transfer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Database, Durability};
use crate::pages::flash::Flash;
use crate::server::throttle::{Check, Door, Failures};
pub use activity::*;
pub use model::*;
pub use page::{Cursor, Page};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// The backend failed (I/O, a constraint we did not expect, a lost connection).
    #[error("database error: {0}")]
    Backend(String),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the writer thread has stopped")]
    WriterGone,
    /// The disk (or the database's size limit) is full: nothing was written.
    #[error("the disk is full")]
    Full,
    #[error("{0}")]
    Open(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The handle everything holds: cheap to clone, one backend behind it.
pub type Store = Arc<dyn Backend>;

/// Opens the store named by `db` (a SQLite file, or a PostgreSQL database) and migrates it.
pub fn open(db: &Database, durability: Durability) -> Result<Store> {
    Ok(match db {
        Database::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path, durability)?),
        Database::Postgres(url) => Arc::new(postgres::PgStore::open(url)?),
    })
}

/// Figures for /metrics and for the group-commit test.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct WriterStats {
    pub commits: u64,
    pub jobs: u64,
}

/// The reserved tenant that holds the operator's endpoint (`operator_webhook`); tenant ids
/// users create cannot start with `_`.
pub const OPERATOR_TENANT: &str = "_herald";

/// One of Herald's own events (`herald.endpoint.disabled`, …) about `endpoint`, as both
/// backends publish it: `data` with the tenant, endpoint and URL added, in the usual
/// `{event, timestamp, data}` envelope.
pub fn operational_event(
    kind: &str,
    tenant: &str,
    endpoint: i64,
    url: &str,
    mut data: serde_json::Value,
    now: i64,
) -> NewEvent {
    if let serde_json::Value::Object(map) = &mut data {
        map.insert("tenant".into(), tenant.into());
        map.insert("endpoint_id".into(), endpoint.into());
        map.insert("url".into(), url.into());
    }
    let body = crate::wire::canonical_json::to_js_string(&serde_json::json!({
        "event": kind,
        "timestamp": crate::clock::rfc3339_seconds(now),
        "data": data,
    }));
    NewEvent {
        event_type: kind.to_owned(),
        body,
        idempotency_key: None,
    }
}

/// What the recorder does about an endpoint's failures.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Disable an endpoint that failed without a success for this long.
    pub disable_after_ms: i64,
    /// Open an endpoint's circuit after this many consecutive failures (0: never).
    pub circuit_threshold: u32,
    /// The first wait of an open circuit before its probe; it doubles with each failed
    /// probe, up to `CIRCUIT_MAX_BACKOFF_MS`.
    pub circuit_backoff_ms: i64,
}
/// The longest wait between two probes of an open circuit.
pub const CIRCUIT_MAX_BACKOFF_MS: i64 = 30 * 60_000;

/// What the dispatcher asks of one claim round.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub now: i64,
    /// At most this many deliveries in all.
    pub limit: usize,
    /// At most this many per endpoint, counting what the caller already `held`.
    pub per_endpoint: usize,
    /// What every due endpoint gets before any is topped up to `per_endpoint` (its
    /// in-flight cap), so a few backlogs cannot fill the round.
    pub first_share: usize,
    /// Endpoints whose in-flight limit has adapted away from `first_share`: their own
    /// first share (and four times it in all).
    pub caps: HashMap<i64, usize>,
    /// Deliveries the caller holds per endpoint (in flight or queued).
    pub held: HashMap<i64, usize>,
    /// Endpoints to leave out of this round (at their share already, or just answered 410).
    pub skip: Vec<i64>,
    /// How long a durable lease lasts, for backends that share the outbox between processes.
    pub lease_ms: i64,
    /// The deployment's `rate_limit` (endpoints without their own follow it), if any.
    pub default_rate_limit: Option<f64>,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    // --- settings -------------------------------------------------------------------
    /// Stores `value` unless `key` has one; returns what is stored (first writer wins).
    async fn setting_get_or_insert(&self, key: &str, value: &str) -> Result<String>;
    /// The value of `key`, if it has one.
    async fn setting_get(&self, key: &str) -> Result<Option<String>>;
    /// Adds one to the counter under `key` (absent = 0) atomically; returns the new value.
    async fn setting_increment(&self, key: &str) -> Result<i64>;
    /// A write that proves the database takes writes (`/readyz`).
    async fn heartbeat(&self, now: i64) -> Result<()>;

    // --- tenants and keys -----------------------------------------------------------
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

    // --- event types ----------------------------------------------------------------
    async fn upsert_event_type(&self, new: NewEventType, now: i64) -> Result<EventType>;
    async fn get_event_type(&self, name: &str) -> Result<EventType>;
    /// The whole catalogue (for forms), by name.
    async fn all_event_types(&self) -> Result<Vec<EventType>>;
    async fn list_event_types(&self, cursor: Cursor) -> Result<Page<EventType>>;
    async fn delete_event_type(&self, name: &str) -> Result<()>;

    // --- endpoints ------------------------------------------------------------------
    async fn create_endpoint(&self, tenant: &str, new: NewEndpoint, now: i64) -> Result<Endpoint>;
    async fn get_endpoint(&self, tenant: &str, id: i64) -> Result<Endpoint>;
    async fn list_endpoints(
        &self,
        tenant: &str,
        status: Option<crate::domain::EndpointStatus>,
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

    // --- events ---------------------------------------------------------------------
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

    // --- deliveries -----------------------------------------------------------------
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

    // --- the operator's view (every read bounded by an index or a limit) ---------------
    /// Attempts of every tenant since `since`, counted per `bucket_ms` (UTC-aligned);
    /// only buckets with attempts, oldest first.
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
    /// First attempts of deliveries since `since` with their publish → attempt latency,
    /// newest first, at most `limit`.
    async fn first_attempts(&self, since: i64, limit: usize) -> Result<Vec<FirstAttempt>>;

    // --- the engine's (blocking) ----------------------------------------------------
    /// Makes whatever a previous run of this process left claimed claimable again.
    fn engine_starting(&self) -> Result<usize>;
    /// Claims due deliveries of active endpoints, endpoints served oldest-due first, none
    /// past its share. A claimed delivery is not claimed again until its attempt is
    /// recorded or it is released.
    fn claim_due(&self, req: &ClaimRequest) -> Result<Vec<Claimed>>;
    /// Writes attempts and their consequences (delivery state, endpoint health,
    /// auto-disable) in one transaction, then lets their claims go.
    fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
        policy: HealthPolicy,
        now: i64,
    ) -> Result<()>;
    /// Gives back claims that were never attempted (shutdown).
    fn release(&self, delivery_ids: &[i64]) -> Result<()>;
    /// When the next pending delivery comes due after `now`.
    fn next_due(&self, now: i64) -> Result<Option<i64>>;
    /// Deletes up to `batch` events older than `before` with their deliveries.
    fn prune(&self, before: i64, batch: usize) -> Result<usize>;

    /// Calls `wake` whenever another process makes work due (a publish, a retry), until
    /// `shutdown`. Only backends shared between processes have anything to watch.
    fn watch_wakeups(
        &self,
        _wake: Box<dyn Fn() + Send>,
        _shutdown: crate::lifecycle::Shutdown,
    ) -> Result<()> {
        Ok(())
    }

    // --- operations -----------------------------------------------------------------
    fn writer_stats(&self) -> WriterStats;
    /// A consistent copy of the whole store at `dest`, taken while it runs.
    fn backup(&self, dest: &Path) -> Result<()>;

    // --- what replicas share that one process could keep in memory ---------------------
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
