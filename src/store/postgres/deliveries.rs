//! Deliveries and attempts as the API and the pages read them, and the API's writes that
//! queue finished deliveries again (retry, recover).
//!
//! The re-queue writes clear any lease and NOTIFY in the caller's transaction, so a
//! delivery queued again is due on every replica once the API's commit returns (and
//! survives kill -9 from then on). The engine's claims and records live in `outbox.rs`.

use postgres::{GenericClient, Row};

use crate::store::{Attempt, Cursor, Delivery, DeliveryQuery, Page, Result, StoreError};

/// The `::bigint` casts: counters are `integer` columns here, and the shared `Delivery`
/// model reads i64 on both backends.
const SELECT: &str = "SELECT d.id, e.id, e.event_type, d.endpoint_id, d.status,
        d.attempts::bigint, d.next_attempt_at, d.last_status_code::bigint, d.last_error,
        d.created_at, d.updated_at
    FROM deliveries d JOIN events e ON e.seq = d.event_seq";

fn row(r: &Row) -> Result<Delivery> {
    Ok(Delivery {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        event: r.try_get(2)?,
        endpoint_id: r.try_get(3)?,
        status: r.try_get(4)?,
        attempts: r.try_get(5)?,
        next_attempt_at: r.try_get(6)?,
        last_status_code: r.try_get(7)?,
        last_error: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
    })
}

/// Scoped by tenant: delivery ids are global, and another tenant's id answers 404.
pub fn get(c: &mut impl GenericClient, tenant_id: &str, id: i64) -> Result<Delivery> {
    c.query_opt(
        &format!("{SELECT} WHERE d.tenant_id = $1 AND d.id = $2"),
        &[&tenant_id, &id],
    )?
    .map(|r| row(&r))
    .transpose()?
    .ok_or(StoreError::NotFound("delivery"))
}

pub fn list(
    c: &mut impl GenericClient,
    tenant_id: &str,
    q: &DeliveryQuery,
    cursor: Cursor,
) -> Result<Page<Delivery>> {
    let rows = c.query(
        &format!(
            "{SELECT} WHERE d.tenant_id = $1 AND d.id < $2 AND ($3::text IS NULL OR d.status = $3)
               AND ($4::bigint IS NULL OR d.endpoint_id = $4) AND ($5::text IS NULL OR e.id = $5)
               AND ($6::bigint IS NULL OR d.created_at >= $6)
               AND ($7::bigint IS NULL OR d.created_at < $7)
             ORDER BY d.id DESC LIMIT $8"
        ),
        &[
            &tenant_id,
            &cursor.before.unwrap_or(i64::MAX),
            &q.status,
            &q.endpoint_id,
            &q.event_id,
            &q.since,
            &q.until,
            &super::limit_plus_one(cursor),
        ],
    )?;
    super::page(rows, row, cursor, |d| d.id)
}

/// The deliveries of one event, oldest first (one per endpoint, so never long).
pub fn for_event(
    c: &mut impl GenericClient,
    tenant_id: &str,
    event_id: &str,
) -> Result<Vec<Delivery>> {
    c.query(
        &format!("{SELECT} WHERE d.tenant_id = $1 AND e.id = $2 ORDER BY d.id LIMIT 1000"),
        &[&tenant_id, &event_id],
    )?
    .iter()
    .map(row)
    .collect()
}

/// A delivery's attempts, oldest first. Not scoped by tenant: callers read the delivery
/// with `get` first, which is the tenant check. A first attempt that succeeded lives in the
/// delivery row (`sent_*`) with id 0, first of the log.
pub fn attempts(c: &mut impl GenericClient, delivery_id: i64) -> Result<Vec<Attempt>> {
    c.query(
        "SELECT 0::bigint AS id, sent_at, sent_duration_ms, sent_status_code::bigint, NULL::text,
                sent_response_headers, sent_response_body
         FROM deliveries WHERE id = $1 AND sent_at IS NOT NULL
         UNION ALL
         SELECT id, started_at, duration_ms, status_code::bigint, error, response_headers,
             response_body
         FROM attempts WHERE delivery_id = $1
         ORDER BY id",
        &[&delivery_id],
    )?
    .iter()
    .map(|r| {
        let headers: Option<String> = r.try_get(5)?;
        Ok(Attempt {
            id: r.try_get(0)?,
            started_at: r.try_get(1)?,
            duration_ms: r.try_get(2)?,
            status_code: r.try_get(3)?,
            error: r.try_get(4)?,
            // A row that fails to parse shows no headers rather than failing the history.
            response_headers: headers.and_then(|h| serde_json::from_str(&h).ok()),
            response_body: r.try_get(6)?,
        })
    })
    .collect()
}

/// Queues a finished delivery again now, with a fresh retry round (`round_start`: the
/// schedule counts from here). False when it is still pending; a pending delivery may be in
/// flight on some replica, and its lease is left alone.
pub fn retry(c: &mut impl GenericClient, tenant_id: &str, id: i64, now: i64) -> Result<bool> {
    let queued = c.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, lease_until = NULL,
             lease_owner = NULL, round_start = attempts, updated_at = $3
         WHERE tenant_id = $1 AND id = $2 AND status != 'pending'",
        &[&tenant_id, &id, &now],
    )? == 1;
    if queued {
        super::notify_due(c)?;
    }
    Ok(queued)
}

/// Re-queues an endpoint's failed deliveries created since `since`; returns how many.
pub fn recover(
    c: &mut impl GenericClient,
    tenant_id: &str,
    endpoint_id: i64,
    since: i64,
    now: i64,
) -> Result<usize> {
    let n = c.execute(
        // One statement for the whole set: a recover of thousands is one index scan and
        // one commit, not a round trip per delivery.
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_until = NULL,
             lease_owner = NULL, round_start = attempts, updated_at = $4
         WHERE endpoint_id = $1 AND tenant_id = $2 AND status = 'failed' AND created_at >= $3",
        &[&endpoint_id, &tenant_id, &since, &now],
    )?;
    if n > 0 {
        super::notify_due(c)?;
    }
    Ok(n as usize)
}
