//! Deliveries and attempts as the API and the pages read them.
//!
//! Read-only: everything here runs on the read pool, beside the writer, and sees the last
//! committed state (WAL readers never block the writer or wait for it). The engine's own
//! reads and writes of deliveries live in `outbox.rs`; this is the history side.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::store::{Attempt, Cursor, Delivery, DeliveryQuery, Page, Result, StoreError};

/// Joined with events for the public event id and type: deliveries store only the
/// event's integer seq, which the API never shows.
const SELECT: &str =
    "SELECT d.id, e.id, e.event_type, d.endpoint_id, d.status, d.attempts, d.next_attempt_at,
        d.last_status_code, d.last_error, d.created_at, d.updated_at
    FROM deliveries d JOIN events e ON e.seq = d.event_seq";

fn row(r: &Row) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        event_id: r.get(1)?,
        event: r.get(2)?,
        endpoint_id: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_status_code: r.get(7)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// Scoped by tenant: delivery ids are global, and another tenant's id answers 404.
pub fn get(conn: &Connection, tenant_id: &str, id: i64) -> Result<Delivery> {
    conn.prepare_cached(&format!("{SELECT} WHERE d.tenant_id = ?1 AND d.id = ?2"))?
        .query_row(params![tenant_id, id], row)
        .optional()?
        .ok_or(StoreError::NotFound("delivery"))
}

pub fn list(
    conn: &Connection,
    tenant_id: &str,
    q: &DeliveryQuery,
    cursor: Cursor,
) -> Result<Page<Delivery>> {
    // One cached statement for every filter combination; the (tenant_id, id) index
    // serves the leading bounds and the newest-first order.
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE d.tenant_id = ?1 AND d.id < ?2 AND (?3 IS NULL OR d.status = ?3)
           AND (?4 IS NULL OR d.endpoint_id = ?4) AND (?5 IS NULL OR e.id = ?5)
           AND (?6 IS NULL OR d.created_at >= ?6) AND (?7 IS NULL OR d.created_at < ?7)
         ORDER BY d.id DESC LIMIT ?8"
    ))?;
    super::page(
        &mut stmt,
        params![
            tenant_id,
            cursor.before.unwrap_or(i64::MAX),
            q.status,
            q.endpoint_id,
            q.event_id,
            q.since,
            q.until,
            cursor.limit as i64 + 1
        ],
        row,
        cursor,
        |d| d.id,
    )
}

/// The deliveries of one event, oldest first (one per endpoint, so never long).
pub fn for_event(conn: &Connection, tenant_id: &str, event_id: &str) -> Result<Vec<Delivery>> {
    // The LIMIT is a guard, not paging: an event has one delivery per endpoint.
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE d.tenant_id = ?1 AND e.id = ?2 ORDER BY d.id LIMIT 1000"
    ))?;
    let rows = stmt.query_map(params![tenant_id, event_id], row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A delivery's attempts, oldest first. Not scoped by tenant: callers read the delivery
/// with `get` first (same read connection), which is the tenant check.
pub fn attempts(conn: &Connection, delivery_id: i64) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, started_at, duration_ms, status_code, error, response_headers, response_body
         FROM attempts WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([delivery_id], |r| {
        let headers: Option<String> = r.get(5)?;
        Ok(Attempt {
            id: r.get(0)?,
            started_at: r.get(1)?,
            duration_ms: r.get(2)?,
            status_code: r.get(3)?,
            error: r.get(4)?,
            // Written by us as a JSON object; a row that fails to parse shows no headers
            // rather than failing the whole history.
            response_headers: headers.and_then(|h| serde_json::from_str(&h).ok()),
            response_body: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
