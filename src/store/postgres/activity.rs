//! The operator's reads (see `store::activity`). The attempt counts use the
//! `attempts_started (started_at, status_code)` index; the failed-deliveries count the
//! partial `deliveries_failed` index; the pending count the partial
//! `deliveries_endpoint_due` index: none of them reads rows outside its window.

use postgres::GenericClient;

use crate::store::{AttemptBucket, FirstAttempt, Gauges, RecentAttempt, Result};

/// Attempts since `since`, counted per `bucket_ms` (buckets aligned to the epoch, so hours
/// and days are UTC); only buckets with attempts are returned, oldest first.
pub fn attempt_buckets(
    c: &mut impl GenericClient,
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<AttemptBucket>> {
    c.query(
        "SELECT started_at / $2 AS b,
                count(*) FILTER (WHERE status_code BETWEEN 200 AND 299),
                count(*) FILTER (WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299)
         FROM attempts WHERE started_at >= $1 GROUP BY b ORDER BY b",
        // A zero bucket would be a division by zero, which PostgreSQL raises as an error
        // (SQLite answers NULL instead).
        &[&since, &bucket_ms.max(1)],
    )?
    .iter()
    .map(|r| {
        Ok(AttemptBucket {
            start: r.try_get::<_, i64>(0)? * bucket_ms,
            succeeded: r.try_get(1)?,
            failed: r.try_get(2)?,
        })
    })
    .collect()
}

/// Deliveries whose last retry failed, counted since `since`.
pub fn deliveries_failed_since(c: &mut impl GenericClient, since: i64) -> Result<i64> {
    Ok(c.query_one(
        "SELECT count(*) FROM deliveries WHERE status = 'failed' AND updated_at >= $1",
        &[&since],
    )?
    .try_get(0)?)
}

/// The queue and endpoint levels: two statements, not one snapshot. A gauge a moment
/// inconsistent between its parts is harmless; the replicas' writes go on meanwhile.
pub fn gauges(c: &mut impl GenericClient) -> Result<Gauges> {
    let pending = c
        .query_one(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'",
            &[],
        )?
        .try_get(0)?;
    let mut g = Gauges {
        pending,
        ..Gauges::default()
    };
    // The endpoints table holds one row per registered URL: small, read whole.
    let rows = c.query(
        "SELECT status, count(*),
                count(*) FILTER (WHERE failing_since IS NOT NULL AND status != 'disabled'),
                count(*) FILTER (WHERE circuit_opened_at IS NOT NULL AND status != 'disabled')
         FROM endpoints GROUP BY status",
        &[],
    )?;
    for r in rows {
        let status: String = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        match status.as_str() {
            "active" => g.endpoints_active = n,
            "paused" => g.endpoints_paused = n,
            // A catch-all, so a status added later still counts somewhere visible.
            _ => g.endpoints_disabled += n,
        }
        g.endpoints_failing += r.try_get::<_, i64>(2)?;
        g.circuits_open += r.try_get::<_, i64>(3)?;
    }
    Ok(g)
}

/// An endpoint's latest `limit` attempts, newest first (through its deliveries, newest
/// first, so the read stops after `limit` rows).
pub fn endpoint_recent_attempts(
    c: &mut impl GenericClient,
    tenant_id: &str,
    endpoint_id: i64,
    limit: usize,
) -> Result<Vec<RecentAttempt>> {
    // Delivery order, then attempt order: the (endpoint_id, id) index drives the walk
    // newest first, and the LIMIT stops it early.
    c.query(
        "SELECT a.delivery_id, a.started_at, a.duration_ms, a.status_code::bigint, a.error
         FROM deliveries d JOIN attempts a ON a.delivery_id = d.id
         WHERE d.endpoint_id = $1 AND d.tenant_id = $2
         ORDER BY d.id DESC, a.id DESC LIMIT $3",
        &[&endpoint_id, &tenant_id, &(limit as i64)],
    )?
    .iter()
    .map(|r| {
        Ok(RecentAttempt {
            delivery_id: r.try_get(0)?,
            started_at: r.try_get(1)?,
            duration_ms: r.try_get(2)?,
            status_code: r.try_get::<_, Option<i64>>(3)?.map(|s| s as u16),
            error: r.try_get(4)?,
        })
    })
    .collect()
}

/// First attempts made since `since` (newest first, at most `limit`), each with the time
/// from its delivery's creation (the publish) to the attempt's start.
pub fn first_attempts(
    c: &mut impl GenericClient,
    since: i64,
    limit: usize,
) -> Result<Vec<FirstAttempt>> {
    // NOT EXISTS rather than SQLite's min() subquery: PostgreSQL can plan it as an
    // anti-join over `attempts_delivery`; ids only grow, so the lowest is the first.
    c.query(
        "SELECT a.started_at, a.started_at - d.created_at
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.started_at >= $1
           AND NOT EXISTS (SELECT 1 FROM attempts f WHERE f.delivery_id = a.delivery_id AND f.id < a.id)
         ORDER BY a.started_at DESC LIMIT $2",
        &[&since, &(limit as i64)],
    )?
    .iter()
    .map(|r| {
        Ok(FirstAttempt {
            started_at: r.try_get(0)?,
            // Clamped: a clock step back would give a negative latency.
            latency_ms: r.try_get::<_, i64>(1)?.max(0),
        })
    })
    .collect()
}
