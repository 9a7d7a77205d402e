//! The operator's reads (see `store::activity`). The attempt counts and latencies read the
//! hourly rollups of migration 16 (one row per hour, per hour and bucket); the failed-deliveries
//! count uses the partial `deliveries_failed` index; the pending count the partial
//! `deliveries_endpoint_due` index — none of them reads rows outside its window.

use rusqlite::{params, Connection};

use crate::store::{newest, AttemptBucket, Gauges, LatencyCount, RecentAttempt, Result, HOUR_MS};

/// Attempts since `since`, counted per `bucket_ms` (a whole number of hours; buckets
/// aligned to the epoch, so hours and days are UTC); only buckets with attempts are
/// returned, oldest first. Read from the hourly rollup the recorder keeps: at most one row
/// per hour, whatever the traffic.
pub fn attempt_buckets(
    conn: &Connection,
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<AttemptBucket>> {
    let mut stmt = conn.prepare_cached(
        "SELECT hour / ?2 AS b, sum(succeeded), sum(failed) FROM activity_hours
         WHERE hour >= ?1 GROUP BY b ORDER BY b",
    )?;
    // Sparse on purpose: only buckets with attempts come back, so an idle night adds no rows.
    let rows = stmt.query_map(params![hour_of(since), bucket_ms.max(1)], |r| {
        Ok(AttemptBucket {
            start: r.get::<_, i64>(0)? * bucket_ms,
            succeeded: r.get(1)?,
            failed: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The hour `t` falls in: the rollups' rows are whole hours.
fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR_MS) * HOUR_MS
}

/// Deliveries whose last retry failed, counted since `since`.
pub fn deliveries_failed_since(conn: &Connection, since: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            // `updated_at` of a failed delivery is when it failed: its last write.
            "SELECT count(*) FROM deliveries WHERE status = 'failed' AND updated_at >= ?1",
        )?
        .query_row([since], |r| r.get(0))?)
}

/// The queue and endpoint levels: two statements, not one snapshot. A gauge a moment
/// inconsistent between its parts is harmless, and the reads never hold up the writer.
pub fn gauges(conn: &Connection) -> Result<Gauges> {
    let pending = conn
        .prepare_cached("SELECT count(*) FROM deliveries WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))?;
    let mut g = Gauges {
        pending,
        ..Gauges::default()
    };
    // The endpoints table holds one row per registered URL: small, read whole.
    let mut stmt = conn.prepare_cached(
        "SELECT status, count(*), sum(failing_since IS NOT NULL AND status != 'disabled'),
                sum(circuit_opened_at IS NOT NULL AND status != 'disabled')
         FROM endpoints GROUP BY status",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (status, n, failing, open) = row?;
        match status.as_str() {
            "active" => g.endpoints_active = n,
            "paused" => g.endpoints_paused = n,
            // `+=` and a catch-all: any status the schema adds later counts somewhere
            // visible rather than vanishing from the totals.
            _ => g.endpoints_disabled += n,
        }
        g.endpoints_failing += failing;
        g.circuits_open += open;
    }
    Ok(g)
}

/// An endpoint's latest `limit` attempts, newest first: its attempts rows, and the first
/// attempts that succeeded, which live in their delivery rows (`outbox::record`).
pub fn endpoint_recent_attempts(
    conn: &Connection,
    tenant_id: &str,
    endpoint_id: i64,
    limit: usize,
) -> Result<Vec<RecentAttempt>> {
    // Ordered by delivery, then attempt, rather than by started_at: the
    // `deliveries_endpoint (endpoint_id, id)` index drives both walks newest first, each
    // over the endpoint's latest `limit` deliveries only (most succeed at once and have no
    // attempts row, so walking on until `limit` rows were found could read the whole
    // history). An attempt older than those is left out, which can only happen when many
    // of the newer deliveries have no attempt yet, or when retries fill the window.
    let mut rows_read = conn.prepare_cached(
        "SELECT a.delivery_id, a.id, a.started_at, a.duration_ms, a.status_code, a.error
         FROM (SELECT id FROM deliveries WHERE endpoint_id = ?1 AND tenant_id = ?2
               ORDER BY id DESC LIMIT ?3) d
         JOIN attempts a ON a.delivery_id = d.id
         ORDER BY d.id DESC, a.id DESC LIMIT ?3",
    )?;
    let mut inline_read = conn.prepare_cached(
        "SELECT id, 0, sent_at, sent_duration_ms, sent_status_code, NULL FROM (
             SELECT id, sent_at, sent_duration_ms, sent_status_code FROM deliveries
             WHERE endpoint_id = ?1 AND tenant_id = ?2 ORDER BY id DESC LIMIT ?3)
         WHERE sent_at IS NOT NULL",
    )?;
    let read = |r: &rusqlite::Row| {
        Ok((
            (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
            RecentAttempt {
                delivery_id: r.get(0)?,
                started_at: r.get(2)?,
                duration_ms: r.get(3)?,
                status_code: r.get::<_, Option<i64>>(4)?.map(|s| s as u16),
                error: r.get(5)?,
            },
        ))
    };
    let params = params![endpoint_id, tenant_id, limit as i64];
    let mut all = rows_read
        .query_map(params, read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    all.extend(
        inline_read
            .query_map(params, read)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    );
    Ok(newest(all, limit))
}

/// Publish → first attempt latencies of the hours since `since`, per hour and histogram
/// bucket (`store::activity::latency_bucket`), oldest first, from the rollup the recorder
/// keeps.
pub fn first_attempt_latency(conn: &Connection, since: i64) -> Result<Vec<LatencyCount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT hour, bucket, count FROM latency_hours WHERE hour >= ?1 ORDER BY hour, bucket",
    )?;
    let rows = stmt.query_map([hour_of(since)], |r| {
        Ok(LatencyCount {
            hour: r.get(0)?,
            bucket: r.get(1)?,
            count: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
