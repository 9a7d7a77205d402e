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
//!
//! The claim round itself, and the scans that feed the engine's due-time index, are in
//! `round.rs`; this file holds the details of what was claimed, records and releases.

use std::collections::HashMap;

use postgres::types::Type;
use postgres::{Client, Row, Transaction};
use serde_json::json;

use crate::domain::{EndpointAuth, EndpointStatus, ExtraHeaders};
use crate::secrets::secret_key::{endpoint_owner, open_endpoint_secret};
use crate::store::endpoint_settings as settings;
use crate::store::{
    AttemptRecord, AttemptWindow, CircuitState, Claimed, Disable, EndpointHealth, FailureRecord,
    HealthChange, Judge, Reach, Result, Rollup, Verdict, HOUR_MS,
};
use crate::wire::signing::parse_schemes;
use crate::wire::transform::Transformation;

/// The advisory lock the pruner holds while it deletes, so one replica prunes at a time.
const PRUNE_LOCK: i64 = 0x6865_7261_6c65; // "herale"

/// What the workers need to send the claimed deliveries, in claim order.
pub(super) fn details(tx: &mut Transaction<'_>, ids: &[i64], now: i64) -> Result<Vec<Claimed>> {
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
/// the deliveries' new state (each lease let go if it is still this replica's), the
/// attempts rows, what `judge` decides for each endpoint, and the rollups. One statement
/// per table for the whole batch, whatever its size: every delivery in one `UPDATE … FROM
/// unnest(…)`, every attempts row in one `INSERT … SELECT FROM unnest(…)`, every
/// endpoint's health in one read, each rollup table in one upsert. Only a judgement that
/// changes an endpoint (a failure, a circuit, a disable: rare beside the successes) costs
/// statements of its own. Committed before it returns; if the commit fails, nothing of the
/// batch is written, the leases stay and lapse, and the deliveries are sent again
/// (at-least-once).
pub fn record(
    c: &mut Client,
    replica: &str,
    records: &[AttemptRecord],
    judge: &dyn Judge,
    now: i64,
) -> Result<()> {
    // Rows are locked in one order on every replica (endpoint, then delivery; the arrays
    // below keep it), so two recorders writing about the same endpoints cannot deadlock
    // each other.
    let mut records: Vec<&AttemptRecord> = records.iter().collect();
    records.sort_by_key(|r| (r.endpoint_id, r.delivery_id));
    let mut tx = c.transaction()?;
    let mut rollup = Rollup::default();
    for round in rounds(&records) {
        write_attempts(&mut tx, &round, replica, now, &mut rollup)?;
    }
    let mut endpoints: Vec<i64> = records.iter().map(|r| r.endpoint_id).collect();
    endpoints.dedup(); // sorted already
                       // Read once per endpoint while nothing changes it: a healthy endpoint's successes,
                       // nearly all records, change nothing (`engine::health`). A missing one was deleted
                       // while its requests were out.
    let mut known = healths(&mut tx, &endpoints)?;
    for r in records {
        let Some(seen) = known.get(&r.endpoint_id) else {
            continue;
        };
        let mut change = judge.judge(r, seen, now);
        if change == HealthChange::default() {
            continue; // the common case, a success of a healthy endpoint: no lock, no write
        }
        // Writes follow: judge again on the row locked, so the recorders of two replicas
        // never both decide from the same health.
        let Some(locked) = health(&mut tx, r.endpoint_id, true)? else {
            known.remove(&r.endpoint_id);
            continue;
        };
        if &locked != seen {
            change = judge.judge(r, &locked, now);
        }
        apply(&mut tx, r.endpoint_id, change, now)?;
        // What was written is what the endpoint's next record is judged on.
        match health(&mut tx, r.endpoint_id, false)? {
            Some(h) => known.insert(r.endpoint_id, h),
            None => known.remove(&r.endpoint_id),
        };
    }
    add_rollup(&mut tx, replica, &rollup)?;
    tx.commit()?;
    Ok(())
}

/// The batch (sorted) cut where a delivery comes back: the first record of each delivery,
/// then the second of those recorded twice, and so on. One `UPDATE … FROM` changes a row
/// once however often it is listed, so each round lists a delivery once; a delivery
/// recorded twice in one batch (a lease lapsed and another replica sent it too, then this
/// one took it back) is all but unheard of, and the rounds keep it counted twice.
fn rounds<'a>(records: &[&'a AttemptRecord]) -> Vec<Vec<&'a AttemptRecord>> {
    let mut rounds: Vec<Vec<&AttemptRecord>> = Vec::new();
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for r in records {
        let n = seen.entry(r.delivery_id).or_default();
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(r);
        *n += 1;
    }
    rounds
}

/// The deliveries' new state and their attempts (a row each, except a first success,
/// kept in its delivery row: issue 22, item 1), two statements for the whole round; what
/// they add to the rollups goes into `rollup`.
fn write_attempts(
    tx: &mut Transaction<'_>,
    round: &[&AttemptRecord],
    replica: &str,
    now: i64,
    rollup: &mut Rollup,
) -> Result<()> {
    let n = round.len();
    let (mut ids, mut statuses, mut nexts, mut codes, mut errors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut succeeded, mut started, mut durations, mut headers, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for r in round {
        let (status, next) = r.verdict.outcome();
        ids.push(r.delivery_id);
        statuses.push(status);
        nexts.push(next);
        codes.push(r.status_code.map(i32::from));
        errors.push(r.error.as_deref());
        succeeded.push(r.verdict == Verdict::Succeeded);
        started.push(r.started_at);
        durations.push(r.duration_ms);
        headers.push(r.response_headers.as_ref().map(|h| json!(h).to_string()));
        bodies.push(r.response_body.as_deref());
    }
    // RETURNING tells which deliveries still exist and whether this was their first attempt
    // (SET expressions read the row as it was; RETURNING reads it as written), which is when
    // a success is kept in the row (`sent_*`). A delivery cancelled meanwhile keeps its
    // cancellation; its attempt still counts.
    let written = tx.query_typed(
        "UPDATE deliveries d SET attempts = d.attempts + 1,
             lease_until = CASE WHEN d.lease_owner = $1 THEN NULL ELSE d.lease_until END,
             lease_owner = CASE WHEN d.lease_owner = $1 THEN NULL ELSE d.lease_owner END,
             status = CASE WHEN d.status = 'pending' THEN u.status ELSE d.status END,
             next_attempt_at = CASE WHEN d.status = 'pending' THEN u.next ELSE d.next_attempt_at END,
             last_status_code = u.code, last_error = u.error, updated_at = $2,
             sent_at = CASE WHEN u.ok AND d.attempts = 0 THEN u.started ELSE d.sent_at END,
             sent_duration_ms = CASE WHEN u.ok AND d.attempts = 0 THEN u.duration ELSE d.sent_duration_ms END,
             sent_status_code = CASE WHEN u.ok AND d.attempts = 0 THEN u.code ELSE d.sent_status_code END,
             sent_response_headers = CASE WHEN u.ok AND d.attempts = 0 THEN u.headers ELSE d.sent_response_headers END,
             sent_response_body = CASE WHEN u.ok AND d.attempts = 0 THEN u.body ELSE d.sent_response_body END
         FROM unnest($3::int8[], $4::text[], $5::int8[], $6::int4[], $7::text[], $8::bool[],
                     $9::int8[], $10::int8[], $11::text[], $12::text[])
              AS u(id, status, next, code, error, ok, started, duration, headers, body)
         WHERE d.id = u.id
         RETURNING d.id, d.attempts, d.created_at",
        &[
            (&replica, Type::TEXT),
            (&now, Type::INT8),
            (&ids, Type::INT8_ARRAY),
            (&statuses, Type::TEXT_ARRAY),
            (&nexts, Type::INT8_ARRAY),
            (&codes, Type::INT4_ARRAY),
            (&errors, Type::TEXT_ARRAY),
            (&succeeded, Type::BOOL_ARRAY),
            (&started, Type::INT8_ARRAY),
            (&durations, Type::INT8_ARRAY),
            (&headers, Type::TEXT_ARRAY),
            (&bodies, Type::TEXT_ARRAY),
        ],
    )?;
    let mut written_at: HashMap<i64, (i32, i64)> = HashMap::with_capacity(written.len());
    for row in &written {
        written_at.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
    }
    // In the batch's order; a delivery deleted with its endpoint while in flight is gone
    // with its history, and its attempt is dropped rather than failing the batch on the
    // foreign key.
    let mut rows: Vec<usize> = Vec::with_capacity(n);
    for (i, r) in round.iter().enumerate() {
        let Some(&(attempts, created_at)) = written_at.get(&r.delivery_id) else {
            continue;
        };
        let first = attempts == 1;
        if !(first && succeeded[i]) {
            rows.push(i);
        }
        rollup.add(
            r.started_at,
            r.status_code,
            first.then_some(r.started_at - created_at),
        );
    }
    if rows.is_empty() {
        return Ok(());
    }
    let pick = |v: &[i64]| -> Vec<i64> { rows.iter().map(|&i| v[i]).collect() };
    let (a_ids, a_started, a_durations) = (pick(&ids), pick(&started), pick(&durations));
    let a_codes: Vec<Option<i32>> = rows.iter().map(|&i| codes[i]).collect();
    let a_errors: Vec<Option<&str>> = rows.iter().map(|&i| errors[i]).collect();
    let a_headers: Vec<Option<&str>> = rows.iter().map(|&i| headers[i].as_deref()).collect();
    let a_bodies: Vec<Option<&str>> = rows.iter().map(|&i| bodies[i]).collect();
    tx.execute_typed(
        "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code, error,
             response_headers, response_body)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int4[], $5::text[],
                              $6::text[], $7::text[])",
        &[
            (&a_ids, Type::INT8_ARRAY),
            (&a_started, Type::INT8_ARRAY),
            (&a_durations, Type::INT8_ARRAY),
            (&a_codes, Type::INT4_ARRAY),
            (&a_errors, Type::TEXT_ARRAY),
            (&a_headers, Type::TEXT_ARRAY),
            (&a_bodies, Type::TEXT_ARRAY),
        ],
    )?;
    Ok(())
}

/// Adds a batch's sums to this replica's rollup rows, one upsert per table: a row per hour,
/// and per hour and bucket (in key order, the same on every run, so two batches of one
/// recorder never deadlock; the keys are distinct, as one upsert needs).
fn add_rollup(tx: &mut Transaction<'_>, replica: &str, rollup: &Rollup) -> Result<()> {
    if !rollup.hours.is_empty() {
        let hours: Vec<i64> = rollup.hours.keys().copied().collect();
        let succeeded: Vec<i64> = rollup.hours.values().map(|c| c.0).collect();
        let failed: Vec<i64> = rollup.hours.values().map(|c| c.1).collect();
        tx.execute_typed(
            "INSERT INTO activity_hours (hour, replica, succeeded, failed)
             SELECT h, $1, s, f FROM unnest($2::int8[], $3::int8[], $4::int8[]) AS u(h, s, f)
             ON CONFLICT (hour, replica) DO UPDATE
             SET succeeded = activity_hours.succeeded + excluded.succeeded,
                 failed = activity_hours.failed + excluded.failed",
            &[
                (&replica, Type::TEXT),
                (&hours, Type::INT8_ARRAY),
                (&succeeded, Type::INT8_ARRAY),
                (&failed, Type::INT8_ARRAY),
            ],
        )?;
    }
    if !rollup.latency.is_empty() {
        let hours: Vec<i64> = rollup.latency.keys().map(|k| k.0).collect();
        let buckets: Vec<i32> = rollup.latency.keys().map(|k| k.1).collect();
        let counts: Vec<i64> = rollup.latency.values().copied().collect();
        tx.execute_typed(
            "INSERT INTO latency_hours (hour, bucket, replica, count)
             SELECT h, b, $1, n FROM unnest($2::int8[], $3::int4[], $4::int8[]) AS u(h, b, n)
             ON CONFLICT (hour, bucket, replica) DO UPDATE
             SET count = latency_hours.count + excluded.count",
            &[
                (&replica, Type::TEXT),
                (&hours, Type::INT8_ARRAY),
                (&buckets, Type::INT4_ARRAY),
                (&counts, Type::INT8_ARRAY),
            ],
        )?;
    }
    Ok(())
}

/// The health columns the recorder judges on.
const HEALTH: &str = "status, rate_limit IS NOT NULL, consecutive_failures, failing_since,
                      circuit_opened_at, circuit_next_probe, circuit_backoff_ms,
                      disable_after_ms, window_start, window_succeeded, window_failed,
                      window_prev_succeeded, window_prev_failed";

/// An endpoint's health as the recorder judges it; with `lock`, its row is locked to the
/// end of the transaction.
fn health(tx: &mut Transaction<'_>, endpoint: i64, lock: bool) -> Result<Option<EndpointHealth>> {
    let query = format!(
        "SELECT {HEALTH} FROM endpoints WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some(row) = tx.query_typed_opt(&query, &[(&endpoint, Type::INT8)])? else {
        return Ok(None);
    };
    Ok(Some(health_of(&row, 0)))
}

/// The health of each of `endpoints` that exists, in one read.
fn healths(tx: &mut Transaction<'_>, endpoints: &[i64]) -> Result<HashMap<i64, EndpointHealth>> {
    let rows = tx.query_typed(
        &format!("SELECT id, {HEALTH} FROM endpoints WHERE id = ANY($1::int8[])"),
        &[(&endpoints, Type::INT8_ARRAY)],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), health_of(r, 1))).collect())
}

/// The health in `row`'s columns from `at` on (`HEALTH`'s order).
fn health_of(row: &Row, at: usize) -> EndpointHealth {
    let status: String = row.get(at);
    let circuit = match (row.get(at + 4), row.get(at + 5), row.get(at + 6)) {
        (Some(opened_at), Some(next_probe), Some(backoff_ms)) => Some(CircuitState {
            opened_at,
            next_probe,
            backoff_ms,
        }),
        _ => None,
    };
    let count = |i: usize| row.get::<_, i32>(at + i).max(0) as u32;
    EndpointHealth {
        status: EndpointStatus::parse(&status).unwrap_or(EndpointStatus::Active),
        rate_limited: row.get(at + 1),
        failures: FailureRecord {
            consecutive: count(2),
            failing_since: row.get(at + 3),
            circuit,
        },
        disable_after_ms: row.get(at + 7),
        window: AttemptWindow {
            start: row.get(at + 8),
            succeeded: count(9),
            failed: count(10),
            prev_succeeded: count(11),
            prev_failed: count(12),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(delivery_id: i64) -> AttemptRecord {
        AttemptRecord {
            delivery_id,
            endpoint_id: 1,
            started_at: 0,
            duration_ms: 1,
            status_code: Some(200),
            error: None,
            response_headers: None,
            response_body: None,
            verdict: Verdict::Succeeded,
            gone: false,
            backoff_until: None,
            operational: false,
        }
    }

    #[test]
    fn a_delivery_recorded_twice_in_a_batch_is_written_in_a_second_round() {
        let batch = [record(1), record(2), record(2), record(3), record(2)];
        let sorted: Vec<&AttemptRecord> = batch.iter().collect();
        let ids: Vec<Vec<i64>> = rounds(&sorted)
            .iter()
            .map(|round| round.iter().map(|r| r.delivery_id).collect())
            .collect();
        assert_eq!(ids, [vec![1, 2, 3], vec![2], vec![2]]);
    }
}
