//! The engine's side of the outbox: claim due deliveries, record attempts, re-queue on
//! request, prune old history.
//!
//! A claim is an entry in memory (`claims.rs`), so a delivery is never handed to two
//! workers of this process. If Herald dies mid-request, nothing records the attempt; the
//! delivery is still pending in the file and is sent again with the same `webhook-id` after
//! the restart: at-least-once, never zero.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::claims::Claims;
use super::{endpoints, operational};
use crate::domain::{EndpointStatus, ExtraHeaders};
use crate::wire::signing::parse_schemes;
use crate::store::{
    AttemptRecord, ClaimRequest, Claimed, HealthPolicy, Result, Verdict, CIRCUIT_MAX_BACKOFF_MS,
};

/// Claims up to `req.limit` due deliveries of active endpoints, taking no endpoint past
/// `req.per_endpoint` counting what the caller already holds, serving endpoints in the order
/// of their oldest due delivery, and skipping what `claims` holds. A read: the claim is the
/// entry in `claims`, not a row update (see `claims.rs` for why that is safe).
///
/// It walks endpoints, not the global due queue: each active endpoint costs one probe of
/// the `(endpoint_id, next_attempt_at)` index, so a backlog of a million deliveries to one
/// slow endpoint neither costs a long scan nor hides the due work of the others behind it.
pub fn claim_due(conn: &Connection, claims: &Claims, req: &ClaimRequest) -> Result<Vec<Claimed>> {
    let skip = serde_json::to_string(&req.skip).unwrap_or_else(|_| "[]".into());
    let mut endpoints = conn.prepare_cached(
        "SELECT id, probing, fifo FROM (
             SELECT p.id, p.circuit_opened_at IS NOT NULL AS probing, p.ordering = 'fifo' AS fifo,
                    (SELECT d.next_attempt_at FROM deliveries d
                     WHERE d.endpoint_id = p.id AND d.status = 'pending'
                       AND (d.next_attempt_at <= ?1 OR p.circuit_opened_at IS NOT NULL)
                     ORDER BY d.next_attempt_at LIMIT 1) AS oldest
             FROM endpoints p
             WHERE p.status = 'active' AND p.kind = 'push'
               AND p.id NOT IN (SELECT value FROM json_each(?2))
               AND (p.circuit_opened_at IS NULL OR p.circuit_next_probe <= ?1))
         WHERE oldest IS NOT NULL ORDER BY oldest",
    )?;
    // An endpoint whose circuit is open is here only once its probe is due (`probing`): it
    // gets one delivery, and none while that probe is out or not yet recorded. A FIFO
    // endpoint gets its head only (its oldest pending delivery, if due), and nothing while
    // one of its deliveries is out: the rest wait behind the head, in publish order.
    let due_endpoints: Vec<(i64, bool, bool)> = endpoints
        .query_map(params![req.now, skip], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut head = conn.prepare_cached(
        "SELECT id, next_attempt_at FROM deliveries
         WHERE endpoint_id = ?1 AND status = 'pending' ORDER BY id LIMIT 1",
    )?;
    let mut due = conn.prepare_cached(
        "SELECT id FROM deliveries
         WHERE endpoint_id = ?1 AND status = 'pending' AND next_attempt_at <= ?2
         ORDER BY next_attempt_at, id LIMIT ?3",
    )?;
    // Two passes, so backlogs that could fill the round cannot starve a newer endpoint:
    // first every due endpoint gets up to its in-flight cap, then what room is left tops
    // endpoints up to their full share (in flight plus queued).
    // The candidates are read under the claim set's lock: see `Claims::round` for why.
    let mut round = claims.round();
    let mut ids = Vec::with_capacity(req.limit);
    let mut taken: HashMap<i64, usize> = HashMap::new();
    for share in [req.first_share.min(req.per_endpoint), req.per_endpoint] {
        for &(endpoint, probing, fifo) in &due_endpoints {
            if ids.len() >= req.limit {
                break;
            }
            let held = req.held.get(&endpoint).copied().unwrap_or(0);
            let already = taken.get(&endpoint).copied().unwrap_or(0);
            if fifo {
                if held + already + round.held_for(endpoint) > 0 {
                    continue;
                }
                let first: Option<(i64, Option<i64>)> = head
                    .query_row([endpoint], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((id, Some(at))) = first {
                    if at <= req.now {
                        let got = round.take(&[(id, endpoint)], 1);
                        *taken.entry(endpoint).or_default() += got.len();
                        ids.extend(got);
                    }
                }
                continue;
            }
            let share = if probing {
                usize::from(round.held_for(endpoint) == 0)
            } else if let Some(cap) = req.caps.get(&endpoint) {
                // Its limit adapted: the same two passes, at its own size.
                if share == req.per_endpoint {
                    cap * 4
                } else {
                    *cap
                }
            } else {
                share
            };
            let take = share
                .saturating_sub(held.saturating_add(already))
                .min(req.limit - ids.len());
            if take == 0 {
                continue;
            }
            // Held deliveries are still pending in the file and come first in due order,
            // so fetch past them (and past what the first pass took).
            let fetch = take + already + round.held_for(endpoint);
            // A probe takes the endpoint's next pending delivery, due or not: while the
            // circuit was open its deliveries' own retry times stood still.
            let until = if probing { i64::MAX } else { req.now };
            let candidates: Vec<(i64, i64)> = due
                .query_map(params![endpoint, until, fetch as i64], |r| {
                    Ok((r.get(0)?, endpoint))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let got = round.take(&candidates, take);
            *taken.entry(endpoint).or_default() += got.len();
            ids.extend(got);
        }
    }
    drop(round);
    match details(conn, &ids, req.now) {
        Ok(claimed) => {
            // A delivery deleted between the two reads is simply not claimed.
            let found: std::collections::HashSet<i64> =
                claimed.iter().map(|c| c.delivery_id).collect();
            let lost: Vec<i64> = ids.into_iter().filter(|id| !found.contains(id)).collect();
            claims.release(&lost);
            Ok(claimed)
        }
        Err(e) => {
            claims.release(&ids);
            Err(e)
        }
    }
}

/// What the workers need to send claimed deliveries.
fn details(conn: &Connection, ids: &[i64], now: i64) -> Result<Vec<Claimed>> {
    let mut details = conn.prepare_cached(
        "SELECT d.id, d.endpoint_id, d.tenant_id, e.id, e.body, p.url, p.headers, p.signature,
                p.secret, CASE WHEN p.previous_secret_until > ?2 THEN p.previous_secret END,
                d.attempts - d.round_start, p.rate_limit, p.last_attempt_at, d.attempts, d.created_at,
                p.ordering = 'fifo', p.retry_schedule, p.request_timeout_ms
         FROM deliveries d JOIN events e ON e.seq = d.event_seq JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.id = ?1",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let found = details.query_row(params![*id, now], |r| {
            let headers: String = r.get(6)?;
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
                secret: endpoints::secret_at(r, 8)?.unwrap_or_default(),
                previous_secret: endpoints::secret_at(r, 9)?,
                round_attempts: r.get::<_, i64>(10)?.max(0) as u32,
                rate_limit: r.get(11)?,
                last_attempt_at: r.get(12)?,
                fifo: r.get(15)?,
                retry_schedule: r
                    .get::<_, Option<String>>(16)?
                    .and_then(|s| crate::config::parse_schedule(&s).ok()),
                request_timeout: r
                    .get::<_, Option<i64>>(17)?
                    .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
                attempts: r.get::<_, i64>(13)?.max(0) as u32,
                created_at: r.get(14)?,
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

/// Writes a batch of attempts and their consequences: the attempt row, the delivery's new
/// state, the endpoint's failure record, and auto-disable once an endpoint has failed
/// without a single success for `disable_after_ms`.
pub fn record_attempts(
    conn: &Connection,
    records: &[AttemptRecord],
    policy: HealthPolicy,
    now: i64,
) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code, error, response_headers, response_body)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?1)",
    )?;
    let mut update = conn.prepare_cached(
        "UPDATE deliveries SET attempts = attempts + 1, lease_until = NULL,
             status = CASE WHEN status = 'pending' THEN ?2 ELSE status END,
             next_attempt_at = CASE WHEN status = 'pending' THEN ?3 ELSE next_attempt_at END,
             last_status_code = ?4, last_error = ?5, updated_at = ?6
         WHERE id = ?1",
    )?;
    for r in records {
        let (status, next) = match r.verdict {
            Verdict::Succeeded => ("succeeded", None),
            Verdict::RetryAt(at) => ("pending", Some(at)),
            Verdict::Failed => ("failed", None),
        };
        // A delivery whose endpoint (or event) was deleted while it was in flight is gone
        // with its history; its attempt is dropped rather than failing the whole batch on
        // the foreign key, which would lose the other endpoints' records with it.
        insert.execute(params![
            r.delivery_id,
            r.started_at,
            r.duration_ms,
            r.status_code,
            r.error,
            r.response_headers.as_ref().map(|h| json!(h).to_string()),
            r.response_body
        ])?;
        // A delivery cancelled meanwhile (its endpoint disabled, maybe by an earlier record
        // of this batch) keeps its cancellation; its attempt still counts and shows.
        update.execute(params![
            r.delivery_id,
            status,
            next,
            r.status_code,
            r.error,
            now
        ])?;
        record_endpoint_health(conn, r, policy, now)?;
    }
    Ok(())
}

fn record_endpoint_health(
    conn: &Connection,
    r: &AttemptRecord,
    policy: HealthPolicy,
    now: i64,
) -> Result<()> {
    // One read of the endpoint decides which writes are needed: a healthy endpoint without
    // a rate limit (the common case) costs this one lookup per successful attempt.
    let Some((limited, open, troubled)) = conn
        .prepare_cached(
            "SELECT rate_limit IS NOT NULL, circuit_opened_at IS NOT NULL,
                    failing_since IS NOT NULL OR consecutive_failures > 0
             FROM endpoints WHERE id = ?1",
        )?
        .query_row([r.endpoint_id], |row| {
            Ok((
                row.get::<_, bool>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })
        .optional()?
    else {
        return Ok(()); // deleted while the request was out
    };
    if limited {
        // When the endpoint was last sent to: a rate limit holds across a restart from it.
        conn.prepare_cached(
            "UPDATE endpoints SET last_attempt_at = ?2
             WHERE id = ?1 AND coalesce(last_attempt_at, 0) < ?2",
        )?
        .execute(params![r.endpoint_id, r.started_at])?;
    }
    if r.verdict == Verdict::Failed && !operational::is_operational(conn, r.delivery_id)? {
        let data = json!({
            "delivery_id": r.delivery_id,
            "status_code": r.status_code,
            "error": r.error,
        });
        operational::emit(conn, r.endpoint_id, "herald.delivery.failed", data, now)?;
    }
    if r.verdict == Verdict::Succeeded {
        if !open && !troubled {
            return Ok(());
        }
        if open {
            operational::emit(
                conn,
                r.endpoint_id,
                "herald.endpoint.recovered",
                json!({}),
                now,
            )?;
        }
        // A success closes the circuit: the backlog drains (within the rate limit).
        conn.prepare_cached(
            "UPDATE endpoints SET failing_since = NULL, consecutive_failures = 0,
                 circuit_opened_at = NULL, circuit_next_probe = NULL, circuit_backoff_ms = NULL
             WHERE id = ?1",
        )?
        .execute([r.endpoint_id])?;
        return Ok(());
    }
    if r.gone {
        return disable(conn, r.endpoint_id, "the endpoint answered 410 Gone", now);
    }
    conn.prepare_cached(
        "UPDATE endpoints SET failing_since = coalesce(failing_since, ?2),
             consecutive_failures = consecutive_failures + 1
         WHERE id = ?1",
    )?
    .execute(params![r.endpoint_id, r.started_at])?;
    record_circuit(conn, r, policy, now)?;
    let expired: bool = conn
        .prepare_cached(
            "SELECT count(*) FROM endpoints WHERE id = ?1 AND status = 'active' AND failing_since <= ?2",
        )?
        .query_row(params![r.endpoint_id, now - policy.disable_after_ms], |row| row.get::<_, i64>(0))?
        > 0;
    if expired {
        let reason = "every delivery failed for longer than disable_after";
        disable(conn, r.endpoint_id, reason, now)?;
    }
    Ok(())
}

/// Disables an endpoint for `reason` (its pending deliveries are cancelled) and says so in
/// a `herald.endpoint.disabled` event.
fn disable(conn: &Connection, endpoint: i64, reason: &str, now: i64) -> Result<()> {
    endpoints::set_status(conn, endpoint, EndpointStatus::Disabled, Some(reason), now)?;
    let data = json!({ "reason": reason });
    operational::emit(conn, endpoint, "herald.endpoint.disabled", data, now)
}

/// The circuit breaker's bookkeeping after a failed attempt. A failed probe (an attempt
/// sent at or after the planned probe time) doubles the wait before the next one, up to
/// `CIRCUIT_MAX_BACKOFF_MS`; requests that were already in flight when the circuit opened
/// do not count as probes. A closed circuit opens at `circuit_threshold` consecutive
/// failures. Auto-disable (`disable_after`) is separate and still applies later.
fn record_circuit(
    conn: &Connection,
    r: &AttemptRecord,
    policy: HealthPolicy,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE endpoints SET circuit_backoff_ms = min(circuit_backoff_ms * 2, ?3),
             circuit_next_probe = ?2 + min(circuit_backoff_ms * 2, ?3)
         WHERE id = ?1 AND circuit_opened_at IS NOT NULL AND ?4 >= circuit_next_probe",
    )?
    .execute(params![
        r.endpoint_id,
        now,
        CIRCUIT_MAX_BACKOFF_MS,
        r.started_at
    ])?;
    if policy.circuit_threshold > 0 {
        let opened = conn
            .prepare_cached(
                "UPDATE endpoints SET circuit_opened_at = ?2, circuit_backoff_ms = ?3,
                     circuit_next_probe = ?2 + ?3
                 WHERE id = ?1 AND circuit_opened_at IS NULL AND consecutive_failures >= ?4",
            )?
            .execute(params![
                r.endpoint_id,
                now,
                policy.circuit_backoff_ms,
                policy.circuit_threshold
            ])?;
        if opened > 0 {
            tracing::warn!(
                endpoint = r.endpoint_id,
                "circuit opened: deliveries wait for a probe"
            );
            let data = json!({
                "consecutive_failures": policy.circuit_threshold,
                "next_probe": crate::clock::rfc3339_ms(now + policy.circuit_backoff_ms),
            });
            operational::emit(
                conn,
                r.endpoint_id,
                "herald.endpoint.circuit_opened",
                data,
                now,
            )?;
        }
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
