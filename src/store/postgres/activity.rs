//! The operator's reads (see `store::activity`). The attempt counts and latencies read the
//! hourly rollups of migration 13; the failed-deliveries count the
//! partial `deliveries_failed` index; the pending count the partial
//! `deliveries_endpoint_due` index: none of them reads rows outside its window.

use postgres::GenericClient;

use crate::store::{newest, AttemptBucket, Gauges, LatencyCount, RecentAttempt, Result, HOUR_MS};

/// Attempts in the hours since `since`, counted per `bucket_ms` (whole hours, aligned to
/// the epoch, so hours and days are UTC); only buckets with attempts are returned, oldest
/// first. Read from the hourly rollup (a row per hour and replica), never the attempts.
pub fn attempt_buckets(
    c: &mut impl GenericClient,
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<AttemptBucket>> {
    c.query(
        "SELECT hour / $2 AS b, sum(succeeded)::bigint, sum(failed)::bigint FROM activity_hours
         WHERE hour >= $1 GROUP BY b ORDER BY b",
        // A zero bucket would be a division by zero, which PostgreSQL raises as an error
        // (SQLite answers NULL instead).
        &[&hour_of(since), &bucket_ms.max(1)],
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

/// The hour `t` falls in: the rollups' rows are whole hours.
fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR_MS) * HOUR_MS
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

/// An endpoint's latest `limit` attempts, newest first: its attempts rows, and the first
/// attempts that succeeded, which live in their delivery rows (`outbox::record`).
pub fn endpoint_recent_attempts(
    c: &mut impl GenericClient,
    tenant_id: &str,
    endpoint_id: i64,
    limit: usize,
) -> Result<Vec<RecentAttempt>> {
    // Delivery order, then attempt order: the (endpoint_id, id) index drives both walks
    // newest first, each over the endpoint's latest `limit` deliveries only (SQLite's twin
    // says why, and what that may leave out).
    let params: [&(dyn postgres::types::ToSql + Sync); 3] =
        [&endpoint_id, &tenant_id, &(limit as i64)];
    let mut all = Vec::new();
    for sql in [
        "SELECT a.delivery_id, a.id, a.started_at, a.duration_ms, a.status_code::bigint, a.error
         FROM (SELECT id FROM deliveries WHERE endpoint_id = $1 AND tenant_id = $2
               ORDER BY id DESC LIMIT $3) d
         JOIN attempts a ON a.delivery_id = d.id
         ORDER BY d.id DESC, a.id DESC LIMIT $3",
        "SELECT id, 0::bigint, sent_at, sent_duration_ms, sent_status_code::bigint, NULL::text FROM (
             SELECT id, sent_at, sent_duration_ms, sent_status_code FROM deliveries
             WHERE endpoint_id = $1 AND tenant_id = $2 ORDER BY id DESC LIMIT $3) latest
         WHERE sent_at IS NOT NULL",
    ] {
        for r in c.query(sql, &params)? {
            all.push((
                (r.try_get(0)?, r.try_get(1)?),
                RecentAttempt {
                    delivery_id: r.try_get(0)?,
                    started_at: r.try_get(2)?,
                    duration_ms: r.try_get(3)?,
                    status_code: r.try_get::<_, Option<i64>>(4)?.map(|s| s as u16),
                    error: r.try_get(5)?,
                },
            ));
        }
    }
    Ok(newest(all, limit))
}

/// Publish → first attempt latencies of the hours since `since`, per hour and histogram
/// bucket, oldest first, summed over the replicas' rollup rows.
pub fn first_attempt_latency(c: &mut impl GenericClient, since: i64) -> Result<Vec<LatencyCount>> {
    c.query(
        "SELECT hour, bucket, sum(count)::bigint FROM latency_hours WHERE hour >= $1
         GROUP BY hour, bucket ORDER BY hour, bucket",
        &[&hour_of(since)],
    )?
    .iter()
    .map(|r| {
        Ok(LatencyCount {
            hour: r.try_get(0)?,
            bucket: r.try_get(1)?,
            count: r.try_get(2)?,
        })
    })
    .collect()
}
