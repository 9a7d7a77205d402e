//! The operator's reads (see `store::activity`). The attempt counts use the
//! `attempts_started (started_at, status_code)` index of migration 3; the failed-deliveries
//! count uses the partial `deliveries_failed` index; the pending count the partial
//! `deliveries_endpoint_due` index — none of them reads rows outside its window.

use rusqlite::{params, Connection};

use crate::store::{AttemptBucket, FirstAttempt, Gauges, RecentAttempt, Result};

/// Attempts since `since`, counted per `bucket_ms` (buckets aligned to the epoch, so hours
/// and days are UTC); only buckets with attempts are returned, oldest first.
pub fn attempt_buckets(
    conn: &Connection,
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<AttemptBucket>> {
    // INDEXED BY: if the index were ever dropped or unusable the query fails loudly
    // instead of silently scanning the whole history. Both columns are in the index, so
    // the count reads no attempt rows.
    let mut stmt = conn.prepare_cached(
        // `coalesce`: in a bucket where no attempt got an answer every `BETWEEN` is NULL,
        // and so is their sum.
        "SELECT started_at / ?2 AS b,
                coalesce(sum(status_code BETWEEN 200 AND 299), 0),
                sum(status_code IS NULL OR status_code NOT BETWEEN 200 AND 299)
         FROM attempts INDEXED BY attempts_started
         WHERE started_at >= ?1 GROUP BY b ORDER BY b",
    )?;
    // Sparse on purpose: only buckets with attempts come back, so an idle night adds no rows.
    let rows = stmt.query_map(params![since, bucket_ms], |r| {
        Ok(AttemptBucket {
            start: r.get::<_, i64>(0)? * bucket_ms,
            succeeded: r.get(1)?,
            failed: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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

/// An endpoint's latest `limit` attempts, newest first (through its deliveries, newest
/// first, so the read stops after `limit` rows).
pub fn endpoint_recent_attempts(
    conn: &Connection,
    tenant_id: &str,
    endpoint_id: i64,
    limit: usize,
) -> Result<Vec<RecentAttempt>> {
    // Ordered by delivery, then attempt, rather than by started_at: the
    // `deliveries_endpoint (endpoint_id, id)` index drives the walk newest first, so the
    // LIMIT stops it early.
    let mut stmt = conn.prepare_cached(
        "SELECT a.delivery_id, a.started_at, a.duration_ms, a.status_code, a.error
         FROM deliveries d JOIN attempts a ON a.delivery_id = d.id
         WHERE d.endpoint_id = ?1 AND d.tenant_id = ?2
         ORDER BY d.id DESC, a.id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![endpoint_id, tenant_id, limit as i64], |r| {
        Ok(RecentAttempt {
            delivery_id: r.get(0)?,
            started_at: r.get(1)?,
            duration_ms: r.get(2)?,
            status_code: r.get::<_, Option<i64>>(3)?.map(|s| s as u16),
            error: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// First attempts made since `since` (newest first, at most `limit`), each with the time
/// from its delivery's creation (the publish) to the attempt's start.
pub fn first_attempts(conn: &Connection, since: i64, limit: usize) -> Result<Vec<FirstAttempt>> {
    // The first attempt is the one with the delivery's lowest id: attempt ids only grow
    // (AUTOINCREMENT), so no timestamp tie can pick a retry instead.
    let mut stmt = conn.prepare_cached(
        "SELECT a.started_at, a.started_at - d.created_at
         FROM attempts a INDEXED BY attempts_started JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.started_at >= ?1
           AND a.id = (SELECT min(f.id) FROM attempts f WHERE f.delivery_id = a.delivery_id)
         ORDER BY a.started_at DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![since, limit as i64], |r| {
        Ok(FirstAttempt {
            started_at: r.get(0)?,
            // Clamped: a clock step back between publish and attempt would give a
            // negative latency, which a histogram cannot hold.
            latency_ms: r.get::<_, i64>(1)?.max(0),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
