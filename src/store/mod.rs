//! The store: every durable thing Herald knows, behind small traits of named operations.
//!
//! Handlers, pages, the CLI and the engine call typed operations (`store.publish(..)`,
//! `outbox.claim(..)`) that take and return the records in `model.rs`. Nothing above
//! this module sees a connection, a closure over one, or SQL; that boundary is what lets
//! two backends sit side by side: `sqlite/` (the default: one file, one writer thread with
//! group commit) and `postgres/` (one database shared by replicas).
//!
//! The operations come in one trait per aggregate (`traits.rs`: settings, tenants and keys,
//! event types, endpoints, events, deliveries, activity, shared state) and the engine's
//! outbox (`outbox.rs`); `Backend` is their sum. The backends are read and write
//! primitives: the delivery policy (claim shares, FIFO, probes, the circuit breaker,
//! auto-disable) is the engine's, passed into the two outbox operations that need it.
//!
//! Durability is the backend's promise: an operation that returns `Ok` for a write has
//! committed it (for SQLite with `synchronous=FULL`, fsynced), so what the API
//! acknowledges survives `kill -9`.

pub mod activity;
pub mod endpoint_settings;
pub mod fanout;
pub mod flash;
pub mod model;
pub mod outbox;
pub mod page;
pub mod postgres;
pub mod replay;
pub mod sqlite;
pub mod throttle;
pub mod traits;
pub mod transfer;

use std::sync::Arc;

use crate::config::{Database, Durability};
pub use activity::*;
pub use endpoint_settings::{EndpointPatch, EndpointSettings};
pub use model::*;
pub use outbox::*;
pub use page::{Cursor, Page};
pub use traits::*;

/// What a store operation can fail with, in the terms the API maps to statuses (404, 409,
/// 503): both backends translate their own errors into these, so nothing above the store
/// matches on SQLite or PostgreSQL error codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A `&'static str` naming the kind of thing: the message never echoes an id back.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// The backend failed (I/O, a constraint we did not expect, a lost connection).
    #[error("database error: {0}")]
    Backend(String),
    /// The transaction did not commit: nothing of it was written, so the caller may retry.
    #[error("commit failed: {0}")]
    Commit(String),
    /// SQLite's writer thread ended; every write fails from here on (503), reads still work.
    #[error("the writer thread has stopped")]
    WriterGone,
    /// The disk (or the database's size limit) is full: nothing was written.
    #[error("the disk is full")]
    Full,
    /// The database failed to fsync: Herald refuses every write until it exits and is
    /// restarted (`lifecycle::fail_stop`).
    #[error("the database failed to sync to disk; the server is restarting")]
    Stopped,
    /// PostgreSQL is unreachable (a refused or lost connection), and has not answered a
    /// probe since: answered at once rather than after the pool's checkout timeout.
    #[error("the database is unreachable")]
    Unreachable,
    /// The database could not be opened or migrated: a start-up error, shown as it is.
    #[error("{0}")]
    Open(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Every operation of the store: the sum of its traits (`traits.rs`, `outbox.rs`).
pub trait Backend:
    Admin + Tenants + EventTypes + Endpoints + Events + Deliveries + Activity + SharedState + Outbox
{
}

impl<T> Backend for T where
    T: Admin
        + Tenants
        + EventTypes
        + Endpoints
        + Events
        + Deliveries
        + Activity
        + SharedState
        + Outbox
{
}

/// The handle everything holds: cheap to clone, one backend behind it. A part that needs
/// less takes less: the engine holds an `Arc<dyn Outbox>`.
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
    /// SQLite's WAL checkpoints that failed since start (0 on PostgreSQL).
    pub checkpoint_failures: u64,
    /// The last checkpoint failed.
    pub checkpoint_failing: bool,
    /// The WAL's size at the last checkpoint (0 on PostgreSQL).
    pub wal_bytes: u64,
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
        traceparent: None,
    }
}
