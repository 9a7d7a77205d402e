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
//! A live replica renews its leases (`renew`) and writes a heartbeat (`liveness.rs`). A
//! lease is *live* while both hold: `lease_until` is ahead of the round's time and its
//! owner's heartbeat is younger than `liveness::STALE_MS`, both on the database's clock
//! (`clock.rs`: every replica's `now` is the database's). Only live leases count toward an
//! endpoint's concurrency, and any other lease is free to take. So a replica that dies
//! (`kill -9`) holds its deliveries for at most `STALE_MS` (3 s) plus the others' next
//! round, not a whole lease; they are sent again with the same `webhook-id`:
//! at-least-once, never zero, and never two attempts at once while the holder is alive. A
//! holder that is alive but stalled for longer than that (5 missed heartbeats, > 2.5 s)
//! loses its leases too, and its attempt in flight may be sent a second time.

use std::collections::HashMap;

use postgres::types::Type;
use postgres::{Client, Row, Statement, Transaction};
use serde_json::json;

use crate::domain::{EndpointAuth, EndpointStatus, ExtraHeaders};
use crate::secrets::secret_key::{endpoint_owner, open_endpoint_secret};
use crate::store::endpoint_settings as settings;
use crate::store::{
    AttemptRecord, AttemptWindow, CircuitState, ClaimRound, Claimed, Disable, DueEndpoint,
    EndpointHealth, FailureRecord, HealthChange, Judge, Planner, Reach, Result, Rollup, Take,
    Verdict, HOUR_MS,
};
use crate::wire::signing::parse_schemes;
use crate::wire::transform::Transformation;

/// The advisory-lock class of per-endpoint claims (the second key is the endpoint id).
const CLAIM_LOCK: i32 = 0x4845_5201; // "HER\x01"
/// The advisory lock the pruner holds while it deletes, so one replica prunes at a time.
const PRUNE_LOCK: i64 = 0x6865_7261_6c65; // "herale"

/// One claim round (`Outbox::claim`) for this replica, in one transaction: the due
/// endpoints, their locks, what the planner must know of each (its ready deliveries, its
/// live leases: every replica's, and other replicas'), the planner's picks, the leases.
/// See the module comment for why the counts are exact.
///
/// A round costs the same few statements however many endpoints are due: the due
/// endpoints, their locks and counts (one statement), the claims (one `UPDATE` over a
/// `LATERAL` pick per endpoint, one more for FIFO heads), and the details. The locks last
/// until the commit, so the round is kept that short: a replica that finds an endpoint
/// locked skips it for this round rather than wait.
pub fn claim(
    c: &mut Client,
    replica: &str,
    req: &ClaimRound,
    plan: &mut Planner<'_>,
) -> Result<Vec<Claimed>> {
    let mut tx = c.transaction()?;
    let live = live_replicas(&mut tx, replica, req.now)?;
    let due = due_endpoints(&mut tx, &live, req)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let (mut picks, mut heads) = (Vec::new(), Vec::new());
    for pick in plan(&due) {
        match pick.take {
            Take::Due(n) => picks.push((pick.endpoint, n as i64, req.now)),
            // A probe takes the endpoint's next pending delivery, due or not.
            Take::Next => picks.push((pick.endpoint, 1, i64::MAX)),
            Take::Head => heads.push(pick.endpoint),
        }
    }
    let lease_until = req.now + req.lease_ms;
    let mut ids = claim_picks(&mut tx, (replica, &live), &picks, lease_until, req.now)?;
    ids.extend(claim_heads(
        &mut tx,
        (replica, &live),
        &heads,
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

/// The replicas whose leases are live this round: those whose heartbeat is younger than
/// `STALE_MS`, and this one whatever its heartbeat (its own claims are never taken over
/// by itself). Its own name comes first.
fn live_replicas(tx: &mut Transaction<'_>, replica: &str, now: i64) -> Result<Vec<String>> {
    let mut live = vec![replica.to_owned()];
    let rows = tx.query_typed(
        "SELECT id FROM replicas WHERE heartbeat_at > $1 AND id <> $2",
        &[
            (&(now - super::liveness::STALE_MS), Type::INT8),
            (&replica, Type::TEXT),
        ],
    )?;
    live.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    Ok(live)
}

/// The active push endpoints with due work (or a due probe) whose claim lock this round
/// got, oldest due first, with their counts (`lock_and_count`).
fn due_endpoints(
    tx: &mut Transaction<'_>,
    live: &[String],
    req: &ClaimRound,
) -> Result<Vec<DueEndpoint>> {
    // Every statement of a round is typed: one round trip each, no prepare.
    let due: Vec<(i64, bool, bool, bool)> = tx
        .query_typed(
            "SELECT id, probe_due, fifo, limited FROM (
                 SELECT p.id, p.circuit_opened_at IS NOT NULL AS probe_due,
                        p.ordering = 'fifo' AS fifo,
                        p.rate_limit IS NOT NULL OR $3 AS limited,
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
                (&req.default_rate_limited, Type::BOOL),
            ],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = due.iter().map(|e| e.0).collect();
    let counts = lock_and_count(tx, live, req, &wanted)?;
    Ok(due
        .into_iter()
        .filter_map(|(id, probe_due, fifo, rate_limited)| {
            let (ready, head_ready, out, out_elsewhere) = *counts.get(&id)?;
            Some(DueEndpoint {
                id,
                probe_due,
                fifo,
                rate_limited,
                ready,
                head_ready,
                out,
                out_elsewhere,
            })
        })
        .collect())
}

/// Takes the claim lock of each endpoint it can and reads, for those, what the planner
/// must know: (ready, head ready, live leases, live leases of other replicas). `live` is
/// `live_replicas`: this replica first.
///
/// Each endpoint's claims are serialised across replicas by a lock held to the commit; one
/// another replica holds is skipped this round. Ready deliveries are due and unleased,
/// counted up to the planner's most (`ready_limit`), so a backlog of a million costs no
/// more than a full round.
fn lock_and_count(
    tx: &mut Transaction<'_>,
    live: &[String],
    req: &ClaimRound,
    wanted: &[i64],
) -> Result<HashMap<i64, (usize, bool, usize, usize)>> {
    let rows = tx.query_typed(
        &format!(
            "SELECT e,
                (SELECT count(*) FROM (SELECT 1 FROM deliveries d
                     WHERE d.endpoint_id = e AND d.status = 'pending' AND d.next_attempt_at <= $3
                       AND {FREE}
                     LIMIT $4) r),
                coalesce((SELECT d.next_attempt_at <= $3 AND {FREE}
                          FROM deliveries d WHERE d.endpoint_id = e AND d.status = 'pending'
                          ORDER BY d.id LIMIT 1), false),
                (SELECT count(*) FROM deliveries d
                     WHERE d.endpoint_id = e AND d.lease_until > $3
                       AND d.lease_owner = ANY($5)),
                (SELECT count(*) FROM deliveries d
                     WHERE d.endpoint_id = e AND d.lease_until > $3
                       AND d.lease_owner = ANY(($5::text[])[2:]))
             FROM unnest($1::bigint[]) AS e
             WHERE pg_try_advisory_xact_lock($2, (e % 2147483647)::int4)"
        ),
        &[
            (&wanted, Type::INT8_ARRAY),
            (&CLAIM_LOCK, Type::INT4),
            (&req.now, Type::INT8),
            (&(req.ready_limit as i64), Type::INT8),
            (&live, Type::TEXT_ARRAY),
        ],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let n = |i: usize| r.get::<_, i64>(i).max(0) as usize;
            (r.get(0), (n(1), r.get(2), n(3), n(4)))
        })
        .collect())
}

/// A delivery no live lease holds, in a statement whose `$3` is the round's time and `$5`
/// the live replicas (`live_replicas`): never leased, its lease ended, or its owner's
/// heartbeat stale.
const FREE: &str = "(d.lease_until IS NULL OR d.lease_until <= $3 OR d.lease_owner <> ALL($5))";

/// Leases up to `take` of each endpoint's pending deliveries due by `until`, oldest due
/// first, that no live lease holds: one statement for every endpoint of the round.
fn claim_picks(
    tx: &mut Transaction<'_>,
    (replica, live): (&str, &[String]),
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
                   AND (d.lease_until IS NULL OR d.lease_until <= $6 OR d.lease_owner <> ALL($7))
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
            (&live, Type::TEXT_ARRAY),
        ],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Leases each FIFO endpoint's head: its oldest pending delivery, if due and not leased.
fn claim_heads(
    tx: &mut Transaction<'_>,
    (replica, live): (&str, &[String]),
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
           AND next_attempt_at <= $4
           AND (lease_until IS NULL OR lease_until <= $4 OR lease_owner <> ALL($5))
         RETURNING id",
        &[&endpoints, &replica, &lease_until, &now, &live],
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
                d.created_at, p.ordering = 'fifo', p.retry_schedule, p.request_timeout_ms,
                starts_with(e.event_type, 'herald.'), e.traceparent, p.auth, e.event_type, p.transformation,
                p.client_cert, p.client_key, p.ca_bundle, p.proxy, p.proxy_credentials
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
    let schemes: Option<String> = r.get(7);
    let (endpoint, tenant): (i64, String) = (r.get(1), r.get(2));
    // Sealed at rest for the endpoint (`endpoint_settings::SEALED`).
    let headers = settings::open_value("headers", r.get(6), &endpoint_owner(&tenant, endpoint))
        .unwrap_or_default();
    let open = |s: Option<String>| -> Result<Option<String>> {
        Ok(open_endpoint_secret(s, &tenant, endpoint))
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
            .and_then(|s| crate::units::parse_schedule(&s).ok()),
        request_timeout: r
            .get::<_, Option<i64>>(17)
            .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
        operational: r.get(18),
        traceparent: r.get(19),
        auth: settings::open_value("auth", r.get(20), &endpoint_owner(&tenant, endpoint))
            .and_then(|a| EndpointAuth::from_stored(&a)),
        event_type: r.get(21),
        transformation: r
            .get::<_, Option<String>>(22)
            .filter(|t| !t.is_empty())
            .map(Transformation::from_stored),
        reach: Reach {
            client_cert: r.get(23),
            client_key: settings::open_value(
                "client_key",
                r.get(24),
                &endpoint_owner(&tenant, endpoint),
            ),
            ca_bundle: r.get(25),
            proxy: r.get(26),
            proxy_credentials: settings::open_value(
                "proxy_credentials",
                r.get(27),
                &endpoint_owner(&tenant, endpoint),
            ),
        },
    })
}

/// Writes a batch of attempts and their consequences in one transaction (`Outbox::record`):
/// the attempt row, the delivery's new state (its lease let go if it is still this
/// replica's), and what `judge` decides for its endpoint, read and written record by
/// record so each judgement sees the ones before it. Committed before it returns; if the
/// commit fails, the leases stay and lapse, and the deliveries are sent again
/// (at-least-once).
pub fn record(
    c: &mut Client,
    replica: &str,
    records: &[AttemptRecord],
    judge: &dyn Judge,
    now: i64,
) -> Result<()> {
    // Rows are locked in one order on every replica (endpoint, then delivery), so two
    // recorders writing about the same endpoints cannot deadlock each other.
    let mut records: Vec<&AttemptRecord> = records.iter().collect();
    records.sort_by_key(|r| (r.endpoint_id, r.delivery_id));
    let mut tx = c.transaction()?;
    // The delivery first: RETURNING tells whether it still exists and whether this was its
    // first attempt (SET expressions read the row as it was), which is when a success is
    // kept in the row (`sent_*`) and no attempts row is written (issue 22, item 1).
    let update = tx.prepare(
        "UPDATE deliveries SET attempts = attempts + 1,
             lease_until = CASE WHEN lease_owner = $7 THEN NULL ELSE lease_until END,
             lease_owner = CASE WHEN lease_owner = $7 THEN NULL ELSE lease_owner END,
             status = CASE WHEN status = 'pending' THEN $2 ELSE status END,
             next_attempt_at = CASE WHEN status = 'pending' THEN $3 ELSE next_attempt_at END,
             last_status_code = $4, last_error = $5, updated_at = $6,
             sent_at = CASE WHEN $8 AND attempts = 0 THEN $9 ELSE sent_at END,
             sent_duration_ms = CASE WHEN $8 AND attempts = 0 THEN $10 ELSE sent_duration_ms END,
             sent_status_code = CASE WHEN $8 AND attempts = 0 THEN $4 ELSE sent_status_code END,
             sent_response_headers = CASE WHEN $8 AND attempts = 0 THEN $11 ELSE sent_response_headers END,
             sent_response_body = CASE WHEN $8 AND attempts = 0 THEN $12 ELSE sent_response_body END
         WHERE id = $1 RETURNING attempts, created_at",
    )?;
    let insert = tx.prepare(
        "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code, error, response_headers, response_body)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )?;
    let mut rollup = Rollup::default();
    for r in records {
        write_attempt(&mut tx, (&update, &insert), r, replica, now, &mut rollup)?;
        let Some(seen) = health(&mut tx, r.endpoint_id, false)? else {
            continue; // deleted while the request was out
        };
        let mut change = judge.judge(r, &seen, now);
        if change == HealthChange::default() {
            continue; // the common case, a success of a healthy endpoint: no lock, no write
        }
        // Writes follow: judge again on the row locked, so the recorders of two replicas
        // never both decide from the same health.
        let Some(locked) = health(&mut tx, r.endpoint_id, true)? else {
            continue;
        };
        if locked != seen {
            change = judge.judge(r, &locked, now);
        }
        apply(&mut tx, r.endpoint_id, change, now)?;
    }
    add_rollup(&mut tx, replica, &rollup)?;
    tx.commit()?;
    Ok(())
}

/// The delivery's new state and its attempt (a row, unless it is a first success, kept in
/// the delivery row); what it adds to the rollups goes into `rollup`.
fn write_attempt(
    tx: &mut Transaction<'_>,
    (update, insert): (&Statement, &Statement),
    r: &AttemptRecord,
    replica: &str,
    now: i64,
    rollup: &mut Rollup,
) -> Result<()> {
    let (status, next) = match r.verdict {
        Verdict::Succeeded => ("succeeded", None),
        Verdict::RetryAt(at) => ("pending", Some(at)),
        Verdict::Failed => ("failed", None),
        Verdict::Cancelled => ("cancelled", None),
        Verdict::Unsent => ("failed", None),
    };
    let code = r.status_code.map(i32::from);
    let succeeded = r.verdict == Verdict::Succeeded;
    let headers = r.response_headers.as_ref().map(|h| json!(h).to_string());
    // A delivery cancelled meanwhile keeps its cancellation; its attempt still counts.
    let written = tx.query_opt(
        update,
        &[
            &r.delivery_id,
            &status,
            &next,
            &code,
            &r.error,
            &now,
            &replica,
            &succeeded,
            &r.started_at,
            &r.duration_ms,
            &headers,
            &r.response_body,
        ],
    )?;
    // A delivery deleted with its endpoint while in flight is gone with its history;
    // its attempt is dropped rather than failing the batch on the foreign key.
    let Some(row) = written else {
        return Ok(());
    };
    let first = row.try_get::<_, i32>(0)? == 1;
    let created_at: i64 = row.try_get(1)?;
    if !(first && succeeded) {
        tx.execute(
            insert,
            &[
                &r.delivery_id,
                &r.started_at,
                &r.duration_ms,
                &code,
                &r.error,
                &headers,
                &r.response_body,
            ],
        )?;
    }
    rollup.add(
        r.started_at,
        r.status_code,
        first.then_some(r.started_at - created_at),
    );
    Ok(())
}

/// Adds a batch's sums to this replica's rollup rows: one per hour, and per hour and bucket
/// (in key order, the same on every run, so two batches of one recorder never deadlock).
fn add_rollup(tx: &mut Transaction<'_>, replica: &str, rollup: &Rollup) -> Result<()> {
    for (hour, (succeeded, failed)) in &rollup.hours {
        tx.execute(
            "INSERT INTO activity_hours (hour, replica, succeeded, failed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hour, replica) DO UPDATE
             SET succeeded = activity_hours.succeeded + excluded.succeeded,
                 failed = activity_hours.failed + excluded.failed",
            &[hour, &replica, succeeded, failed],
        )?;
    }
    for ((hour, bucket), count) in &rollup.latency {
        tx.execute(
            "INSERT INTO latency_hours (hour, bucket, replica, count) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hour, bucket, replica) DO UPDATE
             SET count = latency_hours.count + excluded.count",
            &[hour, bucket, &replica, count],
        )?;
    }
    Ok(())
}

/// An endpoint's health as the recorder judges it; with `lock`, its row is locked to the
/// end of the transaction.
fn health(tx: &mut Transaction<'_>, endpoint: i64, lock: bool) -> Result<Option<EndpointHealth>> {
    const READ: &str = "SELECT status, rate_limit IS NOT NULL, consecutive_failures, failing_since,
                               circuit_opened_at, circuit_next_probe, circuit_backoff_ms,
                               disable_after_ms, window_start, window_succeeded, window_failed,
                               window_prev_succeeded, window_prev_failed
                        FROM endpoints WHERE id = $1";
    let locked;
    let query = if lock {
        locked = format!("{READ} FOR UPDATE");
        locked.as_str()
    } else {
        READ
    };
    let Some(row) = tx.query_typed_opt(query, &[(&endpoint, Type::INT8)])? else {
        return Ok(None);
    };
    let status: String = row.get(0);
    let circuit = match (row.get(4), row.get(5), row.get(6)) {
        (Some(opened_at), Some(next_probe), Some(backoff_ms)) => Some(CircuitState {
            opened_at,
            next_probe,
            backoff_ms,
        }),
        _ => None,
    };
    Ok(Some(EndpointHealth {
        status: EndpointStatus::parse(&status).unwrap_or(EndpointStatus::Active),
        rate_limited: row.get(1),
        failures: FailureRecord {
            consecutive: row.get::<_, i32>(2).max(0) as u32,
            failing_since: row.get(3),
            circuit,
        },
        disable_after_ms: row.get(7),
        window: AttemptWindow {
            start: row.get(8),
            succeeded: row.get::<_, i32>(9).max(0) as u32,
            failed: row.get::<_, i32>(10).max(0) as u32,
            prev_succeeded: row.get::<_, i32>(11).max(0) as u32,
            prev_failed: row.get::<_, i32>(12).max(0) as u32,
        },
    }))
}

/// Writes what the judge decided about an endpoint.
fn apply(tx: &mut Transaction<'_>, endpoint: i64, change: HealthChange, now: i64) -> Result<()> {
    let HealthChange {
        failures,
        window,
        last_attempt_at,
        events,
        disable,
    } = change;
    if let Some(at) = last_attempt_at {
        // When it was last sent to: the next replica to serve it keeps the pace from here.
        tx.execute(
            "UPDATE endpoints SET last_attempt_at = $2
             WHERE id = $1 AND coalesce(last_attempt_at, 0) < $2",
            &[&endpoint, &at],
        )?;
    }
    if let Some(f) = failures {
        let c = f.circuit;
        tx.execute(
            "UPDATE endpoints SET consecutive_failures = $2, failing_since = $3,
                 circuit_opened_at = $4, circuit_next_probe = $5, circuit_backoff_ms = $6
             WHERE id = $1",
            &[
                &endpoint,
                &(f.consecutive.min(i32::MAX as u32) as i32),
                &f.failing_since,
                &c.map(|c| c.opened_at),
                &c.map(|c| c.next_probe),
                &c.map(|c| c.backoff_ms),
            ],
        )?;
    }
    if let Some(w) = window {
        let n = |c: u32| c.min(i32::MAX as u32) as i32;
        tx.execute(
            "UPDATE endpoints SET window_start = $2, window_succeeded = $3, window_failed = $4,
                 window_prev_succeeded = $5, window_prev_failed = $6
             WHERE id = $1",
            &[
                &endpoint,
                &w.start,
                &n(w.succeeded),
                &n(w.failed),
                &n(w.prev_succeeded),
                &n(w.prev_failed),
            ],
        )?;
    }
    for (kind, data) in events {
        super::operational::emit(tx, endpoint, kind, data, now)?;
    }
    if let Some(Disable { reason, announce }) = disable {
        if disable_now(tx, endpoint, reason, now)? {
            super::operational::emit(tx, endpoint, announce.0, announce.1, now)?;
        }
    }
    Ok(())
}

/// Disables an endpoint for `reason` and cancels its pending deliveries, if its tenant can
/// be locked at once; whether it did.
fn disable_now(tx: &mut Transaction<'_>, endpoint: i64, reason: &str, now: i64) -> Result<bool> {
    // No publish of its tenant may be under way, or one could add a pending delivery to an
    // endpoint whose pending deliveries this cancels (`subscriptions.rs`). This transaction
    // already holds rows an API change of the tenant may be waiting for, so it does not
    // wait for that lock: if it is taken, the endpoint stays active for now, and the next
    // failure recorded (its `failing_since` is kept) decides again.
    let Some(row) = tx.query_opt(
        "SELECT tenant_id FROM endpoints WHERE id = $1",
        &[&endpoint],
    )?
    else {
        return Ok(false);
    };
    if !super::subscriptions::try_lock_exclusive(tx, &row.get::<_, String>(0))? {
        tracing::info!(
            endpoint,
            "disable deferred: its tenant is busy; the next failure disables it"
        );
        return Ok(false);
    }
    super::endpoints::set_status(tx, endpoint, EndpointStatus::Disabled, Some(reason), now)?;
    Ok(true)
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
    // The rollups' hours wholly past retention go too (the hour `before` falls in still
    // counts attempts kept): a few rows per hour, by primary key.
    let whole_hours = before.div_euclid(HOUR_MS) * HOUR_MS;
    tx.execute(
        "DELETE FROM activity_hours WHERE hour < $1",
        &[&whole_hours],
    )?;
    tx.execute("DELETE FROM latency_hours WHERE hour < $1", &[&whole_hours])?;
    let n = tx.execute(
        "DELETE FROM events WHERE seq IN
             (SELECT seq FROM events WHERE created_at < $1 ORDER BY seq LIMIT $2)",
        &[&before, &(batch as i64)],
    )?;
    tx.commit()?;
    Ok(n as usize)
}
