//! One claim round on PostgreSQL (`Outbox::claim_among`), and the scan that feeds the
//! engine's due-time index (`Outbox::due_scan`). The leases a round writes, and why its
//! counts are exact across replicas, are described in `outbox.rs`.

use std::collections::{HashMap, HashSet};

use postgres::types::Type;
use postgres::{Client, Transaction};

use super::outbox::details;
use crate::store::{Among, Claim, ClaimRound, DueEndpoint, DueScan, Planner, Result, Take};

/// The advisory-lock class of per-endpoint claims (the second key is the endpoint id).
const CLAIM_LOCK: i32 = 0x4845_5201; // "HER\x01"

/// One claim round (`Outbox::claim_among`) for this replica, in one transaction: the due
/// endpoints among those named, their locks, what the planner must know of each (its ready
/// deliveries, its live leases: every replica's, and other replicas'), the planner's picks,
/// the leases, and when each endpoint read may next have work. See the module comment of
/// `outbox.rs` for why the counts are exact.
///
/// A round costs a few statements per chunk of endpoints read (their rows, locks and counts
/// in two), the claims (one `UPDATE` over a `LATERAL` pick per endpoint, one more for FIFO
/// heads), the details, and one statement for the next looks; it reads chunks, oldest due
/// first, only until the planner's picks fill it, so endpoints with no work cost nothing.
/// The locks last until the commit, so the round is kept that short: a replica that finds
/// an endpoint locked skips it for this round rather than wait.
pub fn claim(
    c: &mut Client,
    replica: &str,
    req: &ClaimRound,
    among: &Among,
    plan: &mut Planner<'_>,
) -> Result<Claim> {
    let skip: HashSet<i64> = req.skip.iter().copied().collect();
    let candidates: Vec<i64> = among
        .endpoints
        .iter()
        .copied()
        .filter(|e| !skip.contains(e))
        .collect();
    if candidates.is_empty() {
        return Ok(Claim::default());
    }
    let mut tx = c.transaction()?;
    let live = live_replicas(&mut tx, replica, req.now)?;
    // One statement per chunk: a round for `limit` deliveries reads about that many.
    let chunk = among.limit.clamp(32, 4096);
    let mut due: Vec<(i64, DueEndpoint)> = Vec::new();
    let mut looked_ids = Vec::new();
    let mut planned = Vec::new();
    for part in candidates.chunks(chunk) {
        looked_ids.extend_from_slice(part);
        due.extend(due_endpoints(&mut tx, &live, req, part)?);
        due.sort_by_key(|(oldest, _)| *oldest);
        let list: Vec<DueEndpoint> = due.iter().map(|(_, d)| d.clone()).collect();
        planned = plan(&list);
        let total: usize = planned
            .iter()
            .map(|p| match p.take {
                Take::Due(n) => n,
                Take::Next | Take::Head => 1,
            })
            .sum();
        if total >= among.limit {
            break;
        }
    }
    let (mut picks, mut heads) = (Vec::new(), Vec::new());
    for pick in planned {
        match pick.take {
            Take::Due(n) => picks.push((pick.endpoint, n as i64, req.now)),
            // A probe takes the endpoint's next pending delivery, due or not.
            Take::Next => picks.push((pick.endpoint, 1, PROBE)),
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
    let order: HashMap<i64, usize> = due
        .iter()
        .enumerate()
        .map(|(i, (_, e))| (e.id, i))
        .collect();
    let mut claimed = details(&mut tx, &ids, req.now)?;
    claimed.sort_by_key(|c| (order.get(&c.endpoint_id).copied(), c.delivery_id));
    let looked = next_looks(&mut tx, replica, req.now, &looked_ids)?;
    // The leases are written once this commits; a failed commit leaves none behind.
    tx.commit()?;
    Ok(Claim { claimed, looked })
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

/// Of `endpoints`, the active push ones with due work (or a due probe) whose claim lock
/// this round got, each with its oldest due time and its counts (`lock_and_count`).
fn due_endpoints(
    tx: &mut Transaction<'_>,
    live: &[String],
    req: &ClaimRound,
    endpoints: &[i64],
) -> Result<Vec<(i64, DueEndpoint)>> {
    // Every statement of a round is typed: one round trip each, no prepare.
    let due: Vec<(i64, bool, bool, bool, i64)> = tx
        .query_typed(
            "SELECT id, probe_due, fifo, limited, oldest FROM (
                 SELECT p.id, p.circuit_opened_at IS NOT NULL AS probe_due,
                        p.ordering = 'fifo' AS fifo,
                        p.rate_limit IS NOT NULL OR $3 AS limited,
                        (SELECT d.next_attempt_at FROM deliveries d
                         WHERE d.endpoint_id = p.id AND d.status = 'pending'
                           AND (d.next_attempt_at <= $1 OR p.circuit_opened_at IS NOT NULL)
                         ORDER BY d.next_attempt_at LIMIT 1) AS oldest
                 FROM endpoints p
                 WHERE p.status = 'active' AND p.kind = 'push'
                   AND p.id = ANY($2)
                   AND (p.circuit_opened_at IS NULL OR p.circuit_next_probe <= $1)) due
             WHERE oldest IS NOT NULL ORDER BY oldest",
            &[
                (&req.now, Type::INT8),
                (&endpoints, Type::INT8_ARRAY),
                (&req.default_rate_limited, Type::BOOL),
            ],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = due.iter().map(|e| e.0).collect();
    let counts = lock_and_count(tx, live, req, &wanted)?;
    Ok(due
        .into_iter()
        .filter_map(|(id, probe_due, fifo, rate_limited, oldest)| {
            let (ready, head_ready, out, out_elsewhere) = *counts.get(&id)?;
            Some((
                oldest,
                DueEndpoint {
                    id,
                    probe_due,
                    fifo,
                    rate_limited,
                    ready,
                    head_ready,
                    out,
                    out_elsewhere,
                },
            ))
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

/// The `until` of a probe's pick: the endpoint's next pending delivery, due or not.
const PROBE: i64 = i64::MAX;

/// Leases up to `take` of each endpoint's pending deliveries due by `until`, oldest due
/// first, that no live lease holds: one statement for every endpoint of the round.
///
/// A probe's pick (`PROBE`) is checked again here: the round's statements each see what
/// was committed when they began (READ COMMITTED), so `due_endpoints` may have read the
/// circuit's probe as due just before the last probe's record committed (pushing the next
/// probe back) and `lock_and_count` that probe's lease as gone just after: a second probe
/// at once. This statement begins after both, so it sees that record's new probe time.
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
                   AND (t.until <> $8 OR NOT EXISTS (
                       SELECT 1 FROM endpoints p WHERE p.id = t.endpoint
                          AND p.circuit_opened_at IS NOT NULL AND p.circuit_next_probe > $6))
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
            (&PROBE, Type::INT8),
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

/// When each endpoint the round read may next have work to claim (`Claim::looked`),
/// counting this round's leases: its first pending delivery this replica holds no live
/// lease of (another replica's is counted, so the endpoint stays in view until that
/// one is recorded), a FIFO endpoint's head, an open circuit's probe.
fn next_looks(
    tx: &mut Transaction<'_>,
    replica: &str,
    now: i64,
    endpoints: &[i64],
) -> Result<Vec<(i64, Option<i64>)>> {
    let rows = tx.query_typed(
        "SELECT e, p.status = 'active' AND p.kind = 'push',
                CASE WHEN p.circuit_opened_at IS NOT NULL THEN coalesce(p.circuit_next_probe, 0) END,
                p.ordering = 'fifo',
                (SELECT d.next_attempt_at FROM deliveries d
                 WHERE d.endpoint_id = e AND d.status = 'pending'
                   AND (d.lease_owner IS DISTINCT FROM $2 OR d.lease_until IS NULL OR d.lease_until <= $3)
                 ORDER BY d.next_attempt_at LIMIT 1),
                (SELECT CASE WHEN d.lease_owner = $2 AND d.lease_until > $3 THEN NULL
                             ELSE coalesce(d.next_attempt_at, 0) END
                 FROM deliveries d WHERE d.endpoint_id = e AND d.status = 'pending'
                 ORDER BY d.id LIMIT 1),
                EXISTS (SELECT 1 FROM deliveries d WHERE d.endpoint_id = e AND d.status = 'pending')
         FROM unnest($1::bigint[]) AS e LEFT JOIN endpoints p ON p.id = e",
        &[
            (&endpoints, Type::INT8_ARRAY),
            (&replica, Type::TEXT),
            (&now, Type::INT8),
        ],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let endpoint: i64 = r.get(0);
            let active: Option<bool> = r.get(1);
            let probe: Option<i64> = r.get(2);
            let fifo: Option<bool> = r.get(3);
            let free: Option<i64> = r.get(4);
            let head: Option<i64> = r.get(5);
            let pending: bool = r.get(6);
            let next = match (active, probe) {
                (Some(true), Some(probe)) => pending.then_some(probe),
                (Some(true), None) if fifo == Some(true) => head.or(free),
                (Some(true), None) => free,
                _ => None,
            };
            (endpoint, next)
        })
        .collect())
}

/// The endpoints with pending work and when it comes due (`Outbox::due_scan`), always in
/// full: ids come from a sequence whose order is not the order of the commits, so a cursor
/// could step past a delivery committed late. An open circuit's work is due at its probe.
pub fn due_scan(c: &mut Client) -> Result<DueScan> {
    let rows = c.query_typed(
        "SELECT id, CASE WHEN opened IS NOT NULL THEN coalesce(probe, oldest) ELSE oldest END
         FROM (SELECT p.id, p.circuit_opened_at AS opened, p.circuit_next_probe AS probe,
                      (SELECT d.next_attempt_at FROM deliveries d
                       WHERE d.endpoint_id = p.id AND d.status = 'pending'
                       ORDER BY d.next_attempt_at LIMIT 1) AS oldest
               FROM endpoints p WHERE p.status = 'active' AND p.kind = 'push') due
         WHERE oldest IS NOT NULL",
        &[],
    )?;
    Ok(DueScan {
        due: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        cursor: None,
        full: true,
    })
}
