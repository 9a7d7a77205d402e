//! The engine's side of the outbox on PostgreSQL, shared by every replica.
//!
//! A claim is a lease written on the delivery row: `lease_until` (when others may take it)
//! and `lease_owner` (this replica's random name). Claims of one endpoint are serialised
//! across replicas by a transaction-scoped advisory lock on the endpoint, so the count of
//! its live leases that decides how many more it may take is exact: the per-endpoint cap
//! holds across replicas, a FIFO endpoint has one delivery out in the whole deployment,
//! and a rate-limited endpoint is served by one replica at a time (whose board spaces the
//! requests; the next replica starts from `last_attempt_at`). Rows are taken with
//! `FOR UPDATE SKIP LOCKED`, so a claim never waits for a row another transaction holds.
//!
//! A live replica renews its leases (`renew`); a replica that dies stops renewing, and
//! after at most one lease its deliveries are claimed by the others and sent again with
//! the same `webhook-id`: at-least-once, never zero, and never two attempts at once while
//! the holder is alive.

use std::collections::HashMap;

use postgres::types::Type;
use postgres::{Client, Row, Transaction};
use serde_json::json;

use crate::domain::{EndpointStatus, ExtraHeaders};
use crate::secrets::secret_key::open_stored;
use crate::wire::signing::parse_schemes;
use crate::store::{
    AttemptRecord, ClaimRequest, Claimed, HealthPolicy, Result, StoreError, Verdict,
    CIRCUIT_MAX_BACKOFF_MS,
};

/// The advisory-lock class of per-endpoint claims (the second key is the endpoint id).
const CLAIM_LOCK: i32 = 0x4845_5201; // "HER\x01"
/// The advisory lock the pruner holds while it deletes, so one replica prunes at a time.
const PRUNE_LOCK: i64 = 0x6865_7261_6c65; // "herale"

/// One due endpoint, as the first read of a round sees it.
struct DueEndpoint {
    id: i64,
    probing: bool,
    fifo: bool,
    rate_limited: bool,
}

/// Claims up to `req.limit` due deliveries of active push endpoints for this replica,
/// endpoints served in the order of their oldest due delivery, none past its cap counting
/// the live leases of every replica. See the module comment for why that is exact.
///
/// A round costs the same few statements however many endpoints are due: the due
/// endpoints, their locks (one statement), their live leases (one grouped count), the
/// claims (one `UPDATE` over a `LATERAL` pick per endpoint), and the details. The locks
/// last until the commit, so the round is kept that short: a replica that finds an
/// endpoint locked skips it for this round rather than wait.
pub fn claim_due(c: &mut Client, replica: &str, req: &ClaimRequest) -> Result<Vec<Claimed>> {
    let mut tx = c.transaction()?;
    // Every statement of a round is typed: one round trip each, no prepare.
    let due: Vec<DueEndpoint> = tx
        .query_typed(
            "SELECT id, probing, fifo, rate_limited FROM (
                 SELECT p.id, p.circuit_opened_at IS NOT NULL AS probing,
                        p.ordering = 'fifo' AS fifo,
                        p.rate_limit IS NOT NULL OR $3 AS rate_limited,
                        (SELECT d.next_attempt_at FROM deliveries d
                         WHERE d.endpoint_id = p.id AND d.status = 'pending'
                           AND (d.next_attempt_at <= $1 OR p.circuit_opened_at IS NOT NULL)
                         ORDER BY d.next_attempt_at LIMIT 1) AS oldest
                 FROM endpoints p
                 WHERE p.status = 'active' AND p.kind = 'push'
                   AND p.id <> ALL($2)
                   AND (p.circuit_opened_at IS NULL OR p.circuit_next_probe <= $1)) due
             WHERE oldest IS NOT NULL ORDER BY oldest",
            &[
                (&req.now, Type::INT8),
                (&req.skip, Type::INT8_ARRAY),
                (&req.default_rate_limit.is_some(), Type::BOOL),
            ],
        )?
        .iter()
        .map(|r| DueEndpoint {
            id: r.get(0),
            probing: r.get(1),
            fifo: r.get(2),
            rate_limited: r.get(3),
        })
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = due.iter().map(|e| e.id).collect();
    // Each endpoint's claims are serialised across replicas by a lock held to the commit;
    // one another replica holds is skipped this round.
    let locked: std::collections::HashSet<i64> = tx
        .query_typed(
            "SELECT e FROM unnest($1::bigint[]) AS e
             WHERE pg_try_advisory_xact_lock($2, (e % 2147483647)::int4)",
            &[(&wanted, Type::INT8_ARRAY), (&CLAIM_LOCK, Type::INT4)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let locked_ids: Vec<i64> = wanted
        .iter()
        .copied()
        .filter(|e| locked.contains(e))
        .collect();
    // Live leases per endpoint: every replica's, and those of replicas other than this one.
    let mut live: HashMap<i64, (usize, usize)> = HashMap::new();
    for r in tx.query_typed(
        "SELECT endpoint_id, count(*), count(*) FILTER (WHERE lease_owner <> $2)
         FROM deliveries
         WHERE endpoint_id = ANY($1) AND lease_until IS NOT NULL AND lease_until > $3
         GROUP BY endpoint_id",
        &[
            (&locked_ids, Type::INT8_ARRAY),
            (&replica, Type::TEXT),
            (&req.now, Type::INT8),
        ],
    )? {
        let (total, others): (i64, i64) = (r.get(1), r.get(2));
        live.insert(r.get(0), (total.max(0) as usize, others.max(0) as usize));
    }
    // What each endpoint may take, in due order, until the round is full.
    let mut room = req.limit;
    let (mut fifo_heads, mut picks): (Vec<i64>, Vec<(i64, i64, i64)>) = (Vec::new(), Vec::new());
    for endpoint in due.iter().filter(|e| locked.contains(&e.id)) {
        if room == 0 {
            break;
        }
        let (out, others) = live.get(&endpoint.id).copied().unwrap_or((0, 0));
        if endpoint.rate_limited && others > 0 {
            continue; // served by the replica that holds it; its board keeps the pace
        }
        let cap = req
            .caps
            .get(&endpoint.id)
            .copied()
            .unwrap_or(req.first_share);
        let share = if endpoint.fifo || endpoint.probing {
            1
        } else {
            cap.max(1)
        };
        let take = share.saturating_sub(out).min(room);
        if take == 0 {
            continue;
        }
        room -= take;
        if endpoint.fifo {
            fifo_heads.push(endpoint.id);
        } else {
            // A probe takes the endpoint's next pending delivery, due or not: while the
            // circuit was open its deliveries' own retry times stood still.
            let until = if endpoint.probing { i64::MAX } else { req.now };
            picks.push((endpoint.id, take as i64, until));
        }
    }
    let lease_until = req.now + req.lease_ms;
    let mut ids = claim_picks(&mut tx, replica, &picks, lease_until, req.now)?;
    ids.extend(claim_heads(
        &mut tx,
        replica,
        &fifo_heads,
        lease_until,
        req.now,
    )?);
    // Oldest due first across endpoints, as the workers should take them.
    let order: HashMap<i64, usize> = due.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let mut claimed = details(&mut tx, &ids, req.now)?;
    claimed.sort_by_key(|c| (order.get(&c.endpoint_id).copied(), c.delivery_id));
    // The leases are written once this commits; a failed commit leaves none behind.
    tx.commit()?;
    Ok(claimed)
}

/// Leases up to `take` of each endpoint's pending deliveries due by `until`, oldest due
/// first, that no live lease holds: one statement for every endpoint of the round.
fn claim_picks(
    tx: &mut Transaction<'_>,
    replica: &str,
    picks: &[(i64, i64, i64)],
    lease_until: i64,
    now: i64,
) -> Result<Vec<i64>> {
    if picks.is_empty() {
        return Ok(Vec::new());
    }
    let endpoints: Vec<i64> = picks.iter().map(|p| p.0).collect();
    let takes: Vec<i64> = picks.iter().map(|p| p.1).collect();
    let untils: Vec<i64> = picks.iter().map(|p| p.2).collect();
    let rows = tx.query_typed(
        "UPDATE deliveries SET lease_until = $5, lease_owner = $4
         WHERE id IN (
             SELECT pick.id FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS t(endpoint, take, until)
             CROSS JOIN LATERAL (
                 SELECT d.id FROM deliveries d
                 WHERE d.endpoint_id = t.endpoint AND d.status = 'pending'
                   AND d.next_attempt_at <= t.until
                   AND (d.lease_until IS NULL OR d.lease_until <= $6)
                 ORDER BY d.next_attempt_at, d.id LIMIT t.take
                 FOR UPDATE SKIP LOCKED) pick)
         RETURNING id",
        &[
            (&endpoints, Type::INT8_ARRAY),
            (&takes, Type::INT8_ARRAY),
            (&untils, Type::INT8_ARRAY),
            (&replica, Type::TEXT),
            (&lease_until, Type::INT8),
            (&now, Type::INT8),
        ],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Leases each FIFO endpoint's head: its oldest pending delivery, if due and not leased.
fn claim_heads(
    tx: &mut Transaction<'_>,
    replica: &str,
    endpoints: &[i64],
    lease_until: i64,
    now: i64,
) -> Result<Vec<i64>> {
    if endpoints.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx.query(
        "UPDATE deliveries SET lease_until = $3, lease_owner = $2
         WHERE id IN (
             SELECT head.id FROM unnest($1::bigint[]) AS t(endpoint)
             CROSS JOIN LATERAL (
                 SELECT d.id FROM deliveries d
                 WHERE d.endpoint_id = t.endpoint AND d.status = 'pending'
                 ORDER BY d.id LIMIT 1) head)
           AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until <= $4)
         RETURNING id",
        &[&endpoints, &replica, &lease_until, &now],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What the workers need to send the claimed deliveries, in claim order.
fn details(tx: &mut Transaction<'_>, ids: &[i64], now: i64) -> Result<Vec<Claimed>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx.query_typed(
        "SELECT d.id, d.endpoint_id, d.tenant_id, e.id, e.body, p.url, p.headers, p.signature,
                p.secret, CASE WHEN p.previous_secret_until > $2 THEN p.previous_secret END,
                d.attempts - d.round_start, p.rate_limit, p.last_attempt_at, d.attempts,
                d.created_at, p.ordering = 'fifo', p.retry_schedule, p.request_timeout_ms
         FROM deliveries d JOIN events e ON e.seq = d.event_seq JOIN endpoints p ON p.id = d.endpoint_id
         WHERE d.id = ANY($1)",
        &[(&ids, Type::INT8_ARRAY), (&now, Type::INT8)],
    )?;
    let mut by_id: HashMap<i64, Claimed> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let claimed = claimed(r)?;
        by_id.insert(claimed.delivery_id, claimed);
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

fn claimed(r: &Row) -> Result<Claimed> {
    let headers: String = r.get(6);
    let schemes: Option<String> = r.get(7);
    let open = |s: Option<String>| -> Result<Option<String>> {
        s.map(|s| open_stored(&s))
            .transpose()
            .map_err(StoreError::Backend)
    };
    Ok(Claimed {
        delivery_id: r.get(0),
        endpoint_id: r.get(1),
        tenant_id: r.get(2),
        event_id: r.get(3),
        body: r.get(4),
        url: r.get(5),
        headers: ExtraHeaders::from_stored(serde_json::from_str(&headers).unwrap_or_default()),
        schemes: schemes.and_then(|s| parse_schemes(&s).ok()),
        secret: open(r.get(8))?.unwrap_or_default(),
        previous_secret: open(r.get(9))?,
        round_attempts: r.get::<_, i32>(10).max(0) as u32,
        rate_limit: r.get(11),
        last_attempt_at: r.get(12),
        attempts: r.get::<_, i32>(13).max(0) as u32,
        created_at: r.get(14),
        fifo: r.get(15),
        retry_schedule: r
            .get::<_, Option<String>>(16)
            .and_then(|s| crate::config::parse_schedule(&s).ok()),
        request_timeout: r
            .get::<_, Option<i64>>(17)
            .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
    })
}

/// Writes a batch of attempts and their consequences in one transaction: the attempt row,
/// the delivery's new state (its lease let go if it is still this replica's), the
/// endpoint's health, the circuit, auto-disable, and Herald's own events about them.
/// Committed before it returns; if the commit fails, the leases stay and lapse, and the
/// deliveries are sent again (at-least-once).
pub fn record_attempts(
    c: &mut Client,
    replica: &str,
    records: &[AttemptRecord],
    policy: HealthPolicy,
    now: i64,
) -> Result<()> {
    // Rows are locked in one order on every replica (endpoint, then delivery), so two
    // recorders writing about the same endpoints cannot deadlock each other.
    let mut records: Vec<&AttemptRecord> = records.iter().collect();
    records.sort_by_key(|r| (r.endpoint_id, r.delivery_id));
    let mut tx = c.transaction()?;
    let insert = tx.prepare(
        "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code, error, response_headers, response_body)
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = $1)",
    )?;
    let update = tx.prepare(
        "UPDATE deliveries SET attempts = attempts + 1,
             lease_until = CASE WHEN lease_owner = $7 THEN NULL ELSE lease_until END,
             lease_owner = CASE WHEN lease_owner = $7 THEN NULL ELSE lease_owner END,
             status = CASE WHEN status = 'pending' THEN $2 ELSE status END,
             next_attempt_at = CASE WHEN status = 'pending' THEN $3 ELSE next_attempt_at END,
             last_status_code = $4, last_error = $5, updated_at = $6
         WHERE id = $1",
    )?;
    for r in records {
        let (status, next) = match r.verdict {
            Verdict::Succeeded => ("succeeded", None),
            Verdict::RetryAt(at) => ("pending", Some(at)),
            Verdict::Failed => ("failed", None),
        };
        let code = r.status_code.map(i32::from);
        // A delivery deleted with its endpoint while in flight is gone with its history;
        // its attempt is dropped rather than failing the batch on the foreign key.
        tx.execute(
            &insert,
            &[
                &r.delivery_id,
                &r.started_at,
                &r.duration_ms,
                &code,
                &r.error,
                &r.response_headers.as_ref().map(|h| json!(h).to_string()),
                &r.response_body,
            ],
        )?;
        // A delivery cancelled meanwhile keeps its cancellation; its attempt still counts.
        tx.execute(
            &update,
            &[
                &r.delivery_id,
                &status,
                &next,
                &code,
                &r.error,
                &now,
                &replica,
            ],
        )?;
        endpoint_health(&mut tx, r, policy, now)?;
    }
    tx.commit()?;
    Ok(())
}

fn endpoint_health(
    tx: &mut Transaction<'_>,
    r: &AttemptRecord,
    policy: HealthPolicy,
    now: i64,
) -> Result<()> {
    // One read decides which writes are needed: a healthy endpoint without a rate limit
    // (the common case) costs this one lookup per successful attempt.
    let Some(row) = tx.query_typed_opt(
        "SELECT rate_limit IS NOT NULL, circuit_opened_at IS NOT NULL,
                failing_since IS NOT NULL OR consecutive_failures > 0
         FROM endpoints WHERE id = $1",
        &[(&r.endpoint_id, Type::INT8)],
    )?
    else {
        return Ok(()); // deleted while the request was out
    };
    let (limited, open, troubled): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if limited {
        // When it was last sent to: the next replica to serve it keeps the pace from here.
        tx.execute(
            "UPDATE endpoints SET last_attempt_at = $2
             WHERE id = $1 AND coalesce(last_attempt_at, 0) < $2",
            &[&r.endpoint_id, &r.started_at],
        )?;
    }
    if r.verdict == Verdict::Failed && !is_operational(tx, r.delivery_id)? {
        let data = json!({
            "delivery_id": r.delivery_id,
            "status_code": r.status_code,
            "error": r.error,
        });
        super::operational::emit(tx, r.endpoint_id, "herald.delivery.failed", data, now)?;
    }
    if r.verdict == Verdict::Succeeded {
        if !open && !troubled {
            return Ok(());
        }
        if open {
            super::operational::emit(
                tx,
                r.endpoint_id,
                "herald.endpoint.recovered",
                json!({}),
                now,
            )?;
        }
        tx.execute(
            "UPDATE endpoints SET failing_since = NULL, consecutive_failures = 0,
                 circuit_opened_at = NULL, circuit_next_probe = NULL, circuit_backoff_ms = NULL
             WHERE id = $1",
            &[&r.endpoint_id],
        )?;
        return Ok(());
    }
    if r.gone {
        return disable(tx, r.endpoint_id, "the endpoint answered 410 Gone", now);
    }
    tx.execute(
        "UPDATE endpoints SET failing_since = coalesce(failing_since, $2),
             consecutive_failures = consecutive_failures + 1
         WHERE id = $1",
        &[&r.endpoint_id, &r.started_at],
    )?;
    record_circuit(tx, r, policy, now)?;
    let expired = tx
        .query_opt(
            "SELECT 1 FROM endpoints WHERE id = $1 AND status = 'active' AND failing_since <= $2",
            &[&r.endpoint_id, &(now - policy.disable_after_ms)],
        )?
        .is_some();
    if expired {
        let reason = "every delivery failed for longer than disable_after";
        disable(tx, r.endpoint_id, reason, now)?;
    }
    Ok(())
}

/// Disables an endpoint for `reason`, cancels its pending deliveries, and says so in a
/// `herald.endpoint.disabled` event.
fn disable(tx: &mut Transaction<'_>, endpoint: i64, reason: &str, now: i64) -> Result<()> {
    // No publish of its tenant may be under way, or one could add a pending delivery to an
    // endpoint whose pending deliveries this cancels (`subscriptions.rs`). This transaction
    // already holds rows an API change of the tenant may be waiting for, so it does not
    // wait for that lock: if it is taken, the endpoint stays active for now, and the next
    // failure recorded (its `failing_since` is kept) disables it.
    let Some(row) = tx.query_opt(
        "SELECT tenant_id FROM endpoints WHERE id = $1",
        &[&endpoint],
    )?
    else {
        return Ok(());
    };
    if !super::subscriptions::try_lock_exclusive(tx, &row.get::<_, String>(0))? {
        tracing::info!(
            endpoint,
            "disable deferred: its tenant is busy; the next failure disables it"
        );
        return Ok(());
    }
    super::endpoints::set_status(tx, endpoint, EndpointStatus::Disabled, Some(reason), now)?;
    let data = json!({ "reason": reason });
    super::operational::emit(tx, endpoint, "herald.endpoint.disabled", data, now)
}

/// The circuit breaker after a failed attempt: a failed probe doubles the wait (up to
/// `CIRCUIT_MAX_BACKOFF_MS`); a closed circuit opens at `circuit_threshold` consecutive
/// failures. As on SQLite (`sqlite/outbox.rs`, `record_circuit`).
fn record_circuit(
    tx: &mut Transaction<'_>,
    r: &AttemptRecord,
    policy: HealthPolicy,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE endpoints SET circuit_backoff_ms = least(circuit_backoff_ms * 2, $3),
             circuit_next_probe = $2 + least(circuit_backoff_ms * 2, $3)
         WHERE id = $1 AND circuit_opened_at IS NOT NULL AND $4 >= circuit_next_probe",
        &[&r.endpoint_id, &now, &CIRCUIT_MAX_BACKOFF_MS, &r.started_at],
    )?;
    if policy.circuit_threshold == 0 {
        return Ok(());
    }
    let threshold = policy.circuit_threshold as i32;
    let opened = tx.execute(
        "UPDATE endpoints SET circuit_opened_at = $2::bigint, circuit_backoff_ms = $3::bigint,
             circuit_next_probe = $2::bigint + $3::bigint
         WHERE id = $1 AND circuit_opened_at IS NULL AND consecutive_failures >= $4",
        &[&r.endpoint_id, &now, &policy.circuit_backoff_ms, &threshold],
    )?;
    if opened > 0 {
        tracing::warn!(
            endpoint = r.endpoint_id,
            "circuit opened: deliveries wait for a probe"
        );
        let data = json!({
            "consecutive_failures": policy.circuit_threshold,
            "next_probe": crate::clock::rfc3339_ms(now + policy.circuit_backoff_ms),
        });
        super::operational::emit(
            tx,
            r.endpoint_id,
            "herald.endpoint.circuit_opened",
            data,
            now,
        )?;
    }
    Ok(())
}

/// Whether a delivery carries one of Herald's own events.
fn is_operational(tx: &mut Transaction<'_>, delivery: i64) -> Result<bool> {
    Ok(tx
        .query_opt(
            "SELECT e.event_type FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.id = $1",
            &[&delivery],
        )?
        .is_some_and(|r| r.get::<_, String>(0).starts_with("herald.")))
}

/// Gives back claims that were never attempted (shutdown, or more than the board takes).
pub fn release(c: &mut Client, replica: &str, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    c.execute(
        "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL
         WHERE id = ANY($1) AND lease_owner = $2",
        &[&ids, &replica],
    )?;
    Ok(())
}

/// Pushes the live leases this replica holds on `ids` `lease_ms` into the future; returns
/// how many. Rows another transaction has locked (an attempt being recorded, a delivery
/// being cancelled) are skipped rather than waited for: their lease is about to end anyway,
/// and waiting in arbitrary row order could deadlock against those transactions.
pub fn renew(c: &mut Client, replica: &str, ids: &[i64], now: i64, lease_ms: i64) -> Result<u64> {
    Ok(c.execute(
        "UPDATE deliveries SET lease_until = $2
         WHERE id IN (SELECT id FROM deliveries
                      WHERE id = ANY($4) AND lease_owner = $1 AND lease_until > $3
                      ORDER BY id FOR UPDATE SKIP LOCKED)",
        &[&replica, &(now + lease_ms), &now, &ids],
    )?)
}

/// When the next pending delivery, or an open circuit's probe, comes due after `now`.
pub fn next_due(c: &mut Client, now: i64) -> Result<Option<i64>> {
    Ok(c.query_one(
        "SELECT least(retry, probe) FROM (
             SELECT min((SELECT d.next_attempt_at FROM deliveries d
                         WHERE d.endpoint_id = p.id AND d.status = 'pending' AND d.next_attempt_at > $1
                         ORDER BY d.next_attempt_at LIMIT 1)) AS retry,
                    min(CASE WHEN p.circuit_next_probe > $1 THEN p.circuit_next_probe END) AS probe
             FROM endpoints p WHERE p.kind = 'push') due",
        &[&now],
    )?
    .get(0))
}

/// Deletes up to `batch` events older than `before` with their deliveries and attempts (by
/// cascade), on one replica at a time: the others find the lock taken and prune nothing.
pub fn prune(c: &mut Client, before: i64, batch: usize) -> Result<usize> {
    let mut tx = c.transaction()?;
    let mine: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])?
        .get(0);
    if !mine {
        return Ok(0);
    }
    let n = tx.execute(
        "DELETE FROM events WHERE seq IN
             (SELECT seq FROM events WHERE created_at < $1 ORDER BY seq LIMIT $2)",
        &[&before, &(batch as i64)],
    )?;
    tx.commit()?;
    Ok(n as usize)
}
