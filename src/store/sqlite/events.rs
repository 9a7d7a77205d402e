//! Events and the publish transaction (the write side of the outbox).
//!
//! A publish enters here on the writer thread: the event row and its deliveries are written
//! in the writer's batch and the API answers 202 only after that batch's COMMIT, which is
//! what lets an accepted event survive kill -9. The deliveries leave through the
//! dispatcher's claim round (`outbox.rs`), which reads them from the same file; nothing
//! sits in memory between the two. Reads (get, list) run on the read-only pool.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::value::RawValue;

use super::subscriptions;
use crate::store::fanout::Payload;
use crate::store::{Cursor, Event, EventQuery, NewEvent, Page, Published, Result, StoreError};

/// Stores events and one pending delivery per subscribed endpoint, all in the caller's
/// transaction (the writer's batch): either the event and all its deliveries are durable,
/// or none of it is. An idempotency key seen before returns the first result instead.
pub fn publish(
    conn: &Connection,
    tenant_id: &str,
    events: Vec<NewEvent>,
    now: i64,
) -> Result<Vec<Published>> {
    // Read once per call, not per event: a batch publish of many events fans out against
    // one view of the tenant's endpoints (the writer thread is the only one changing it).
    let subscribers = subscriptions::of(conn, tenant_id)?;
    let mut insert_event = conn.prepare_cached(
        "INSERT INTO events (id, tenant_id, event_type, body, idempotency_key, created_at, traceparent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut insert_delivery = conn.prepare_cached(
        "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4)",
    )?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        // Looked up before the insert, on the one writer connection, so no other publish
        // can slip the same key in between: the check and the insert are one serial step.
        if let Some(key) = &event.idempotency_key {
            if let Some(previous) = find_by_idempotency_key(conn, tenant_id, key)? {
                out.push(previous);
                continue;
            }
        }
        // ULIDs sort by time and need no coordination, so ids stay unique across a later
        // move to PostgreSQL or several replicas.
        let id = format!("evt_{}", ulid::Ulid::new());
        insert_event.execute(params![
            id,
            tenant_id,
            event.event_type,
            event.body,
            event.idempotency_key,
            now,
            event.traceparent
        ])?;
        // The integer seq, not the ULID, is what deliveries reference: a small key makes the
        // deliveries table and its indexes smaller.
        let seq = conn.last_insert_rowid();
        let mut deliveries = 0;
        // Parsed at most once for this event, and only if a payload filter asks.
        let mut payload = Payload::new(&event.body);
        for s in subscribers.iter() {
            if s.matches(&event.event_type, &mut payload) {
                insert_delivery.execute(params![seq, s.endpoint_id, tenant_id, now])?;
                deliveries += 1;
            }
        }
        out.push(Published {
            id,
            event: event.event_type,
            deliveries,
            replayed: false,
        });
    }
    Ok(out)
}

/// The earlier publish with this key, answered as it was (the same id and delivery count)
/// so a client retrying after a lost answer cannot tell, and nothing is sent twice.
fn find_by_idempotency_key(
    conn: &Connection,
    tenant_id: &str,
    key: &str,
) -> Result<Option<Published>> {
    Ok(conn
        .prepare_cached(
            "SELECT e.id, e.event_type, (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq)
             FROM events e WHERE e.tenant_id = ?1 AND e.idempotency_key = ?2",
        )?
        .query_row(params![tenant_id, key], |r| {
            Ok(Published {
                id: r.get(0)?,
                event: r.get(1)?,
                deliveries: r.get::<_, i64>(2)? as usize,
                replayed: true,
            })
        })
        .optional()?)
}

/// Inserts one event for exactly one endpoint, whatever its filter ("send test"). No
/// idempotency key: each test press is meant to send again.
pub fn insert_for_endpoint(
    conn: &Connection,
    tenant_id: &str,
    endpoint_id: i64,
    event: &NewEvent,
    now: i64,
) -> Result<(String, i64)> {
    let id = format!("evt_{}", ulid::Ulid::new());
    conn.execute(
        "INSERT INTO events (id, tenant_id, event_type, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, tenant_id, event.event_type, event.body, now],
    )?;
    let seq = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4)",
        params![seq, endpoint_id, tenant_id, now],
    )?;
    Ok((id, conn.last_insert_rowid()))
}

const COLUMNS: &str = "seq, id, tenant_id, event_type, body, created_at";

fn row(r: &Row) -> rusqlite::Result<Event> {
    let body: String = r.get(4)?;
    Ok(Event {
        seq: r.get(0)?,
        id: r.get(1)?,
        tenant_id: r.get(2)?,
        event: r.get(3)?,
        // The body was produced by our canonical serialiser, so it is valid JSON.
        payload: RawValue::from_string(body)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON")),
        created_at: r.get(5)?,
    })
}

/// Scoped by tenant: another tenant's event id answers 404, as if it did not exist.
pub fn get(conn: &Connection, tenant_id: &str, id: &str) -> Result<Event> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM events WHERE tenant_id = ?1 AND id = ?2"
    ))?
    .query_row(params![tenant_id, id], row)
    .optional()?
    .ok_or(StoreError::NotFound("event"))
}

pub fn list(
    conn: &Connection,
    tenant_id: &str,
    q: &EventQuery,
    cursor: Cursor,
) -> Result<Page<Event>> {
    // One statement for every filter combination (`?n IS NULL OR …`) so it is prepared and
    // cached once; the tenant and seq bounds lead, which the (tenant_id, seq) index serves.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM events
         WHERE tenant_id = ?1 AND seq < ?2 AND (?3 IS NULL OR event_type = ?3)
           AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5)
         ORDER BY seq DESC LIMIT ?6"
    ))?;
    super::page(
        &mut stmt,
        params![
            tenant_id,
            cursor.before.unwrap_or(i64::MAX),
            q.event_type,
            q.since,
            q.until,
            cursor.limit as i64 + 1
        ],
        row,
        cursor,
        |e| e.seq,
    )
}
