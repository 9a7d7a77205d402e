//! The engine's side of the outbox on SQLite: the details of claimed deliveries (the claim
//! round itself is `round.rs`), record attempts, re-queue on request, prune old history.
//! Read and write primitives only: what to claim and what an attempt means for its
//! endpoint are the engine's (`store/outbox.rs`).
//!
//! A claim is an entry in memory (`claims.rs`), so a delivery is never handed to two
//! workers of this process. If Herald dies mid-request, nothing records the attempt; the
//! delivery is still pending in the file and is sent again with the same `webhook-id` after
//! the restart: at-least-once, never zero.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::{endpoints, operational};
use crate::domain::{EndpointAuth, EndpointStatus, ExtraHeaders};
use crate::secrets::secret_key::endpoint_owner;
use crate::store::endpoint_settings as settings;
use crate::store::{
    AttemptRecord, AttemptWindow, CircuitState, Claimed, Disable, EndpointHealth, FailureRecord,
    HealthChange, Judge, Reach, Result, Rollup, Verdict, HOUR_MS,
};
use crate::wire::signing::parse_schemes;
use crate::wire::transform::Transformation;

/// What the workers need to send claimed deliveries.
pub(super) fn details(conn: &Connection, ids: &[i64], now: i64) -> Result<Vec<Claimed>> {
    let mut details = conn.prepare_cached(
        "SELECT d.id, d.endpoint_id, d.tenant_id, e.id, e.body, p.url, p.headers, p.signature,
                p.secret, CASE WHEN p.previous_secret_until > ?2 THEN p.previous_secret END,
                d.attempts - d.round_start, p.rate_limit, p.last_attempt_at, d.attempts, d.created_at,
                p.ordering = 'fifo', p.retry_schedule, p.request_timeout_ms,
                substr(e.event_type, 1, 7) = 'herald.', e.traceparent, p.auth, e.event_type, p.transformation,
                p.client_cert, p.client_key, p.ca_bundle, p.proxy, p.proxy_credentials
         FROM deliveries d JOIN events e ON e.seq = d.event_seq JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.id = ?1",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let found = details.query_row(params![*id, now], |r| {
            let (endpoint, tenant): (i64, String) = (r.get(1)?, r.get(2)?);
            // Sealed at rest for the endpoint (`endpoint_settings::SEALED`).
            let headers =
                settings::open_value("headers", r.get(6)?, &endpoint_owner(&tenant, endpoint))
                    .unwrap_or_default();
            let schemes: Option<String> = r.get(7)?;
            Ok(Claimed {
                delivery_id: r.get(0)?,
                endpoint_id: r.get(1)?,
                tenant_id: r.get(2)?,
                event_id: r.get(3)?,
                body: r.get(4)?,
                url: r.get(5)?,
                headers: ExtraHeaders::from_stored(
                    serde_json::from_str(&headers).unwrap_or_default(),
                ),
                schemes: schemes.and_then(|s| parse_schemes(&s).ok()),
                secret: endpoints::secret_at(r, 8, &tenant, endpoint)?.unwrap_or_default(),
                previous_secret: endpoints::secret_at(r, 9, &tenant, endpoint)?,
                round_attempts: r.get::<_, i64>(10)?.max(0) as u32,
                rate_limit: r.get(11)?,
                last_attempt_at: r.get(12)?,
                fifo: r.get(15)?,
                retry_schedule: r
                    .get::<_, Option<String>>(16)?
                    .and_then(|s| crate::units::parse_schedule(&s).ok()),
                request_timeout: r
                    .get::<_, Option<i64>>(17)?
                    .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
                attempts: r.get::<_, i64>(13)?.max(0) as u32,
                created_at: r.get(14)?,
                operational: r.get(18)?,
                traceparent: r.get(19)?,
                auth: settings::open_value("auth", r.get(20)?, &endpoint_owner(&tenant, endpoint))
                    .and_then(|a| EndpointAuth::from_stored(&a)),
                event_type: r.get(21)?,
                transformation: r
                    .get::<_, Option<String>>(22)?
                    .filter(|t| !t.is_empty())
                    .map(Transformation::from_stored),
                reach: Reach {
                    client_cert: r.get(23)?,
                    client_key: settings::open_value(
                        "client_key",
                        r.get(24)?,
                        &endpoint_owner(&tenant, endpoint),
                    ),
                    ca_bundle: r.get(25)?,
                    proxy: r.get(26)?,
                    proxy_credentials: settings::open_value(
                        "proxy_credentials",
                        r.get(27)?,
                        &endpoint_owner(&tenant, endpoint),
                    ),
                },
            })
        });
        match found {
            Ok(c) => out.push(c),
            Err(rusqlite::Error::QueryReturnedNoRows) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Writes a batch of attempts and their consequences (`Outbox::record`): the delivery's new
/// state, the attempt (an attempts row, or for a first attempt that succeeded, the delivery
/// row itself), what `judge` decides for its endpoint (read and written record by record so
/// each judgement sees the ones before it), and the batch's sum in the overview's rollups.
/// All of it in the caller's one transaction, so after a crash the history, the endpoint
/// health and the rollups agree: all of the batch is there or none.
pub fn record(
    conn: &Connection,
    records: &[AttemptRecord],
    judge: &dyn Judge,
    now: i64,
) -> Result<()> {
    // The delivery first: RETURNING tells whether it still exists and whether this was its
    // first attempt (`attempts` was 0; SET expressions read the row as it was), which is
    // when a success is kept in the row (`sent_*`) and no attempts row is written (issue 22,
    // item 1: a success costs one row write). A delivery cancelled meanwhile (its endpoint
    // disabled, maybe by an earlier record of this batch) keeps its cancellation; its
    // attempt still counts and shows.
    let mut update = conn.prepare_cached(
        "UPDATE deliveries SET attempts = attempts + 1, lease_until = NULL,
             status = CASE WHEN status = 'pending' THEN ?2 ELSE status END,
             next_attempt_at = CASE WHEN status = 'pending' THEN ?3 ELSE next_attempt_at END,
             last_status_code = ?4, last_error = ?5, updated_at = ?6,
             sent_at = CASE WHEN ?7 AND attempts = 0 THEN ?8 ELSE sent_at END,
             sent_duration_ms = CASE WHEN ?7 AND attempts = 0 THEN ?9 ELSE sent_duration_ms END,
             sent_status_code = CASE WHEN ?7 AND attempts = 0 THEN ?4 ELSE sent_status_code END,
             sent_response_headers = CASE WHEN ?7 AND attempts = 0 THEN ?10 ELSE sent_response_headers END,
             sent_response_body = CASE WHEN ?7 AND attempts = 0 THEN ?11 ELSE sent_response_body END
         WHERE id = ?1 RETURNING attempts, created_at",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code, error, response_headers, response_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut rollup = Rollup::default();
    let mut known: HashMap<i64, Option<EndpointHealth>> = HashMap::new();
    for r in records {
        let (status, next) = r.verdict.outcome();
        let succeeded = r.verdict == Verdict::Succeeded;
        let headers = r.response_headers.as_ref().map(|h| json!(h).to_string());
        let written: Option<(i64, i64)> = update
            .query_row(
                params![
                    r.delivery_id,
                    status,
                    next,
                    r.status_code,
                    r.error,
                    now,
                    succeeded,
                    r.started_at,
                    r.duration_ms,
                    headers,
                    r.response_body
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        // A delivery whose endpoint (or event) was deleted while it was in flight is gone
        // with its history: its attempt is dropped (it would fail the whole batch on the
        // foreign key, losing the other endpoints' records with it).
        if let Some((attempts, created_at)) = written {
            let first = attempts == 1;
            if !(first && succeeded) {
                insert.execute(params![
                    r.delivery_id,
                    r.started_at,
                    r.duration_ms,
                    r.status_code,
                    r.error,
                    headers,
                    r.response_body
                ])?;
            }
            rollup.add(
                r.started_at,
                r.status_code,
                first.then_some(r.started_at - created_at),
            );
        }
        // Read once per endpoint per batch while nothing changes it: a healthy endpoint's
        // successes, nearly all records, change nothing (`engine::health`), so a batch to
        // one endpoint reads its row once. Any change is written and read back.
        let health = match known.remove(&r.endpoint_id) {
            Some(h) => h,
            None => health(conn, r.endpoint_id)?,
        };
        let Some(health) = health else {
            known.insert(r.endpoint_id, None);
            continue; // deleted while the request was out
        };
        let change = judge.judge(r, &health, now);
        if change == HealthChange::default() {
            known.insert(r.endpoint_id, Some(health));
        } else {
            apply(conn, r.endpoint_id, change, now)?;
        }
    }
    add_rollup(conn, &rollup)
}

/// Adds a batch's sums to the rollups: one row per hour, and per hour and bucket.
fn add_rollup(conn: &Connection, rollup: &Rollup) -> Result<()> {
    let mut hours = conn.prepare_cached(
        "INSERT INTO activity_hours (hour, succeeded, failed) VALUES (?1, ?2, ?3)
         ON CONFLICT (hour) DO UPDATE SET succeeded = succeeded + excluded.succeeded,
                                          failed = failed + excluded.failed",
    )?;
    for (hour, (succeeded, failed)) in &rollup.hours {
        hours.execute(params![hour, succeeded, failed])?;
    }
    let mut latency = conn.prepare_cached(
        "INSERT INTO latency_hours (hour, bucket, count) VALUES (?1, ?2, ?3)
         ON CONFLICT (hour, bucket) DO UPDATE SET count = count + excluded.count",
    )?;
    for ((hour, bucket), count) in &rollup.latency {
        latency.execute(params![hour, bucket, count])?;
    }
    Ok(())
}

/// An endpoint's health as the recorder judges it.
fn health(conn: &Connection, endpoint: i64) -> Result<Option<EndpointHealth>> {
    Ok(conn
        .prepare_cached(
            "SELECT status, rate_limit IS NOT NULL, consecutive_failures, failing_since,
                    circuit_opened_at, circuit_next_probe, circuit_backoff_ms, disable_after_ms,
                    window_start, window_succeeded, window_failed, window_prev_succeeded,
                    window_prev_failed
             FROM endpoints WHERE id = ?1",
        )?
        .query_row([endpoint], |row| {
            let status: String = row.get(0)?;
            let circuit = match (row.get(4)?, row.get(5)?, row.get(6)?) {
                (Some(opened_at), Some(next_probe), Some(backoff_ms)) => Some(CircuitState {
                    opened_at,
                    next_probe,
                    backoff_ms,
                }),
                _ => None,
            };
            Ok(EndpointHealth {
                status: EndpointStatus::parse(&status).unwrap_or(EndpointStatus::Active),
                rate_limited: row.get(1)?,
                failures: FailureRecord {
                    consecutive: row.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
                    failing_since: row.get(3)?,
                    circuit,
                },
                disable_after_ms: row.get(7)?,
                window: AttemptWindow {
                    start: row.get(8)?,
                    succeeded: count(row.get(9)?),
                    failed: count(row.get(10)?),
                    prev_succeeded: count(row.get(11)?),
                    prev_failed: count(row.get(12)?),
                },
            })
        })
        .optional()?)
}

/// A stored count: never negative, whatever the file holds.
fn count(n: i64) -> u32 {
    n.clamp(0, u32::MAX as i64) as u32
}

/// Writes what the judge decided about an endpoint.
fn apply(conn: &Connection, endpoint: i64, change: HealthChange, now: i64) -> Result<()> {
    let HealthChange {
        failures,
        window,
        last_attempt_at,
        events,
        disable,
    } = change;
    if let Some(at) = last_attempt_at {
        // When the endpoint was last sent to: a rate limit holds across a restart from it.
        conn.prepare_cached(
            "UPDATE endpoints SET last_attempt_at = ?2
             WHERE id = ?1 AND coalesce(last_attempt_at, 0) < ?2",
        )?
        .execute(params![endpoint, at])?;
    }
    if let Some(f) = failures {
        let c = f.circuit;
        conn.prepare_cached(
            "UPDATE endpoints SET consecutive_failures = ?2, failing_since = ?3,
                 circuit_opened_at = ?4, circuit_next_probe = ?5, circuit_backoff_ms = ?6
             WHERE id = ?1",
        )?
        .execute(params![
            endpoint,
            f.consecutive,
            f.failing_since,
            c.map(|c| c.opened_at),
            c.map(|c| c.next_probe),
            c.map(|c| c.backoff_ms)
        ])?;
    }
    if let Some(w) = window {
        conn.prepare_cached(
            "UPDATE endpoints SET window_start = ?2, window_succeeded = ?3, window_failed = ?4,
                 window_prev_succeeded = ?5, window_prev_failed = ?6
             WHERE id = ?1",
        )?
        .execute(params![
            endpoint,
            w.start,
            w.succeeded,
            w.failed,
            w.prev_succeeded,
            w.prev_failed
        ])?;
    }
    for (kind, data) in events {
        operational::emit(conn, endpoint, kind, data, now)?;
    }
    if let Some(Disable { reason, announce }) = disable {
        endpoints::set_status(conn, endpoint, EndpointStatus::Disabled, Some(reason), now)?;
        operational::emit(conn, endpoint, announce.0, announce.1, now)?;
    }
    Ok(())
}

/// Queues a delivery again now, with a fresh retry round. Refused while it is pending.
pub fn retry(conn: &Connection, tenant_id: &str, id: i64, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?3, lease_until = NULL,
             round_start = attempts, updated_at = ?3
         WHERE tenant_id = ?1 AND id = ?2 AND status != 'pending'",
        params![tenant_id, id, now],
    )? == 1)
}

/// Re-queues an endpoint's failed deliveries created since `since`; returns how many.
pub fn recover(
    conn: &Connection,
    tenant_id: &str,
    endpoint_id: i64,
    since: i64,
    now: i64,
) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?4, lease_until = NULL,
             round_start = attempts, updated_at = ?4
         WHERE endpoint_id = ?1 AND tenant_id = ?2 AND status = 'failed' AND created_at >= ?3",
        params![endpoint_id, tenant_id, since, now],
    )?)
}

/// Deletes up to `batch` events older than `before`, their deliveries and attempts by
/// cascade. Small batches keep each write short so publishing never waits long behind it.
pub fn prune(conn: &Connection, before: i64, batch: usize) -> Result<usize> {
    // The rollups' hours wholly past retention go too (the hour `before` falls in still
    // counts attempts kept): a few rows per hour, by primary key.
    let whole_hours = before.div_euclid(HOUR_MS) * HOUR_MS;
    conn.execute("DELETE FROM activity_hours WHERE hour < ?1", [whole_hours])?;
    conn.execute("DELETE FROM latency_hours WHERE hour < ?1", [whole_hours])?;
    Ok(conn.execute(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE created_at < ?1 ORDER BY seq LIMIT ?2)",
        params![before, batch as i64],
    )?)
}

/// When the next pending delivery, or an open circuit's probe, comes due after `now` (for
/// the dispatcher's sleep).
/// Deliveries already due but not claimed wait for a capacity signal, not for the clock.
pub fn next_due(conn: &Connection, now: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT min(coalesce(retry, probe), coalesce(probe, retry)) FROM (
                 SELECT min((SELECT d.next_attempt_at FROM deliveries d
                             WHERE d.endpoint_id = p.id AND d.status = 'pending' AND d.next_attempt_at > ?1
                             ORDER BY d.next_attempt_at LIMIT 1)) AS retry,
                        min(CASE WHEN p.circuit_next_probe > ?1 THEN p.circuit_next_probe END) AS probe
                 FROM endpoints p WHERE p.kind = 'push')",
        )?
        .query_row([now], |r| r.get(0))?)
}
