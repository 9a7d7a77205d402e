//! Deliveries and attempts as the API and the pages read them.
//!
//! Read-only: everything here runs on the read pool, beside the writer, and sees the last
//! committed state (WAL readers never block the writer or wait for it). The engine's own
//! reads and writes of deliveries live in `outbox.rs`; this is the history side.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

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
    let (terms, values) = filters(q);
    // One cached statement per combination of filters (at most 32), each naming only the
    // filters it has: a `(?3 IS NULL OR d.status = ?3)` term hides its column from the
    // planner, and `status=failed` then walked the whole (tenant_id, id) index backwards
    // through a million successes to find twenty failures.
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE d.tenant_id = ?1 AND d.id < ?2{terms} ORDER BY d.id DESC LIMIT ?3"
    ))?;
    let fixed = [
        SqlValue::Text(tenant_id.to_owned()),
        SqlValue::Integer(cursor.before.unwrap_or(i64::MAX)),
        SqlValue::Integer(cursor.limit as i64 + 1),
    ];
    super::page(
        &mut stmt,
        params_from_iter(fixed.into_iter().chain(values)),
        row,
        cursor,
        |d| d.id,
    )
}

/// The statuses a delivery can have: a filter on one of them is written into the SQL as a
/// literal, which lets the planner use the partial indexes made for it
/// (`deliveries_failed_list`, `deliveries_fifo`); any other value matches nothing.
const STATUSES: [&str; 4] = ["pending", "succeeded", "failed", "cancelled"];

/// The terms for the filters `q` has (numbered from ?4) and their values.
///
/// - `endpoint_id` and `event_id` go through their own indexes (`deliveries_endpoint`,
///   `deliveries_event`): the event's seq is looked up once, not joined per row.
/// - `since` and `until` filter as they walk (deliveries have no `created_at` index: no
///   other query needs one, and each index is a write per delivery). A recent `since`
///   finds its rows first, newest first; an `until` far in the past walks the newer
///   history before its first row (README: Performance).
fn filters(q: &DeliveryQuery) -> (String, Vec<SqlValue>) {
    let DeliveryQuery {
        status,
        endpoint_id,
        event_id,
        since,
        until,
    } = q;
    let mut terms = String::new();
    let mut values = Vec::new();
    let next = |values: &mut Vec<SqlValue>, v: SqlValue| {
        values.push(v);
        values.len() + 3
    };
    if let Some(status) = status {
        match STATUSES.iter().find(|s| **s == status.as_str()) {
            Some(known) => terms.push_str(&format!(" AND d.status = '{known}'")),
            None => terms.push_str(" AND 0"),
        }
    }
    if let Some(id) = endpoint_id {
        let n = next(&mut values, SqlValue::Integer(*id));
        terms.push_str(&format!(" AND d.endpoint_id = ?{n}"));
    }
    if let Some(event) = event_id {
        let n = next(&mut values, SqlValue::Text(event.clone()));
        terms.push_str(&format!(
            " AND d.event_seq = (SELECT seq FROM events WHERE id = ?{n})"
        ));
    }
    if let Some(since) = since {
        let n = next(&mut values, SqlValue::Integer(*since));
        terms.push_str(&format!(" AND d.created_at >= ?{n}"));
    }
    if let Some(until) = until {
        let n = next(&mut values, SqlValue::Integer(*until));
        terms.push_str(&format!(" AND d.created_at < ?{n}"));
    }
    (terms, values)
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
///
/// A first attempt that succeeded lives in the delivery row (`sent_*`, see `outbox::record`)
/// with id 0; it is the first of the log, before any attempts rows (a manual retry's).
pub fn attempts(conn: &Connection, delivery_id: i64) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT 0, sent_at, sent_duration_ms, sent_status_code, NULL, sent_response_headers,
                sent_response_body
         FROM deliveries WHERE id = ?1 AND sent_at IS NOT NULL
         UNION ALL
         SELECT id, started_at, duration_ms, status_code, error, response_headers, response_body
         FROM attempts WHERE delivery_id = ?1",
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
    let mut log = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    // Oldest first: ids only grow, and the one kept in the delivery row, 0, came first.
    log.sort_by_key(|a: &Attempt| a.id);
    Ok(log)
}
