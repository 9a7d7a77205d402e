//! One claim round on SQLite (`Outbox::claim_among`), and the scans that feed the engine's
//! due-time index (`Outbox::due_scan`).
//!
//! A round reads only the endpoints the engine names, oldest due first, in chunks: after
//! each chunk the planner says what it would take of those read so far, and the round
//! stops reading once that fills it. So its cost follows the work it claims, not the
//! number of endpoints: an idle endpoint is never read, and of 5,000 with a backlog each,
//! a round for 64 deliveries reads a handful. Each endpoint read costs its row and one probe
//! of the `(endpoint_id, next_attempt_at)` index, bounded by a `LIMIT`, so a million
//! pending deliveries to one slow endpoint cost no long scan either.
//!
//! The round is a read (the claim is the entry in `claims`), made under the claim set's
//! lock (`Claims::round` says why that is safe). What it tells the index about each endpoint
//! it read (`Claim::looked`) comes from the same view, after its own takes.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};

use super::claims::{Claims, Round};
use super::outbox::details;
use crate::store::{Among, Claim, ClaimRound, DueEndpoint, DueScan, Planner, Result, Take};

/// How many endpoints a round reads before it asks the planner whether it is full.
const CHUNK: usize = 16;

/// An endpoint as the round read it.
struct Look {
    endpoint: i64,
    /// `None`: not an active push endpoint (deleted, paused, disabled, a poll endpoint).
    seen: Option<Seen>,
}

struct Seen {
    fifo: bool,
    /// An open circuit's next probe.
    probe_at: Option<i64>,
    /// Its first pending deliveries (id, due), in due order, held ones included.
    rows: Vec<(i64, i64)>,
    /// `rows` is every pending delivery it has (fewer came back than the limit).
    complete: bool,
    /// What the planner sees, if it has due work (or a due probe).
    due: Option<DueEndpoint>,
}

pub fn claim(
    conn: &Connection,
    claims: &Claims,
    req: &ClaimRound,
    among: &Among,
    plan: &mut Planner<'_>,
) -> Result<Claim> {
    let mut round = claims.round();
    let skip: HashSet<i64> = req.skip.iter().copied().collect();
    let mut candidates = among
        .endpoints
        .iter()
        .copied()
        .filter(|e| !skip.contains(e))
        .peekable();
    let mut looks: Vec<Look> = Vec::new();
    let mut picks = Vec::new();
    while candidates.peek().is_some() {
        for endpoint in candidates.by_ref().take(CHUNK) {
            looks.push(look(conn, &round, req, endpoint)?);
        }
        picks = plan(&due_list(&looks));
        let planned: usize = picks
            .iter()
            .map(|p| match p.take {
                Take::Due(n) => n,
                Take::Next | Take::Head => 1,
            })
            .sum();
        if planned >= among.limit {
            break;
        }
    }
    let mut ready: HashMap<i64, Vec<i64>> = looks
        .iter()
        .filter_map(|l| {
            let seen = l.seen.as_ref()?;
            seen.due.as_ref()?;
            let ids = seen
                .rows
                .iter()
                .filter(|(id, at)| *at <= req.now && !round.holds(*id))
                .map(|(id, _)| *id)
                .take(req.ready_limit)
                .collect();
            Some((l.endpoint, ids))
        })
        .collect();
    let mut ids = Vec::new();
    for pick in picks {
        let candidates: Vec<i64> = match pick.take {
            Take::Due(n) => {
                let ready = ready.remove(&pick.endpoint).unwrap_or_default();
                ready.into_iter().take(n).collect()
            }
            Take::Next => next_pending(conn, &round, pick.endpoint)?
                .into_iter()
                .collect(),
            Take::Head => head(conn, &round, pick.endpoint, req.now)?
                .into_iter()
                .collect(),
        };
        let candidates: Vec<(i64, i64)> = candidates
            .into_iter()
            .map(|id| (id, pick.endpoint))
            .collect();
        ids.extend(round.take(&candidates, candidates.len()));
    }
    let mut looked = Vec::with_capacity(looks.len());
    for l in &looks {
        looked.push((l.endpoint, next_look(conn, &round, req.now, l)?));
    }
    drop(round);
    match details(conn, &ids, req.now) {
        Ok(claimed) => {
            // A delivery deleted between the two reads is simply not claimed.
            let found: HashSet<i64> = claimed.iter().map(|c| c.delivery_id).collect();
            let lost: Vec<i64> = ids.into_iter().filter(|id| !found.contains(id)).collect();
            claims.release(&lost);
            Ok(Claim { claimed, looked })
        }
        Err(e) => {
            claims.release(&ids);
            Err(e)
        }
    }
}

/// The endpoints read so far that have due work, in the order of their oldest due
/// delivery (the planner's order).
fn due_list(looks: &[Look]) -> Vec<DueEndpoint> {
    let mut due: Vec<(i64, &DueEndpoint)> = looks
        .iter()
        .filter_map(|l| {
            let seen = l.seen.as_ref()?;
            Some((seen.rows.first()?.1, seen.due.as_ref()?))
        })
        .collect();
    due.sort_by_key(|(oldest, _)| *oldest);
    due.into_iter().map(|(_, d)| d.clone()).collect()
}

/// Reads one endpoint: its settings, its first pending deliveries, and, if it has due work
/// (or its probe is due), what the planner must know.
fn look(conn: &Connection, round: &Round<'_>, req: &ClaimRound, endpoint: i64) -> Result<Look> {
    let row: Option<(bool, Option<i64>, bool, bool)> = conn
        .prepare_cached(
            "SELECT status = 'active' AND kind = 'push',
                    CASE WHEN circuit_opened_at IS NOT NULL THEN coalesce(circuit_next_probe, 0) END,
                    ordering = 'fifo', rate_limit IS NOT NULL OR ?2
             FROM endpoints WHERE id = ?1",
        )?
        .query_row(params![endpoint, req.default_rate_limited], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((true, probe_at, fifo, rate_limited)) = row else {
        return Ok(Look {
            endpoint,
            seen: None,
        });
    };
    let held = round.held_for(endpoint);
    // Past what this process holds and the most a round could take, and one more: enough
    // to know when the endpoint's next unheld delivery comes due.
    let fetch = held + req.ready_limit + 1;
    let rows: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT id, next_attempt_at FROM deliveries
             WHERE endpoint_id = ?1 AND status = 'pending'
             ORDER BY next_attempt_at, id LIMIT ?2",
        )?
        .query_map(params![endpoint, fetch as i64], |r| {
            Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let complete = rows.len() < fetch;
    let probe_due = probe_at.is_some_and(|at| at <= req.now);
    let has_due = match probe_at {
        Some(_) => probe_due && !rows.is_empty(),
        None => rows.first().is_some_and(|(_, at)| *at <= req.now),
    };
    let due = if !has_due {
        None
    } else {
        let (mut ready, mut head_ready) = (0, false);
        if fifo && !probe_due {
            head_ready = head(conn, round, endpoint, req.now)?.is_some();
        } else if !probe_due {
            // Held deliveries are still pending in the file and come first in due order,
            // so they are read past.
            ready = rows
                .iter()
                .filter(|(id, at)| *at <= req.now && !round.holds(*id))
                .take(req.ready_limit)
                .count();
        }
        Some(DueEndpoint {
            id: endpoint,
            probe_due,
            fifo,
            rate_limited,
            ready,
            head_ready,
            out: held,
            // One process owns the file: nobody else holds anything.
            out_elsewhere: 0,
        })
    };
    Ok(Look {
        endpoint,
        seen: Some(Seen {
            fifo,
            probe_at,
            rows,
            complete,
            due,
        }),
    })
}

/// When an endpoint the round read may next have work to claim, counting this round's
/// takes as held (`Claim::looked`).
fn next_look(conn: &Connection, round: &Round<'_>, now: i64, l: &Look) -> Result<Option<i64>> {
    let Some(seen) = &l.seen else {
        return Ok(None);
    };
    let free = seen
        .rows
        .iter()
        .find(|(id, _)| !round.holds(*id))
        .map(|(_, at)| *at);
    let free = match free {
        // All it read is held, and there may be more beyond: look again next round.
        None if !seen.complete => Some(now),
        free => free,
    };
    if let Some(probe) = seen.probe_at {
        // An open circuit: nothing goes before its probe (while the probe is out, that is
        // now or earlier, and the round after its record sees the circuit's new state).
        return Ok((!seen.rows.is_empty()).then_some(probe));
    }
    if seen.fifo {
        // The head goes first: the endpoint has work when its head is due, unless the head
        // is out, when what waits behind it keeps the endpoint in view.
        if let Some((id, at)) = first_by_id(conn, l.endpoint)? {
            if !round.holds(id) {
                return Ok(Some(at));
            }
        }
    }
    Ok(free)
}

/// An endpoint's oldest pending delivery by publish order: (id, due).
fn first_by_id(conn: &Connection, endpoint: i64) -> Result<Option<(i64, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, next_attempt_at FROM deliveries
             WHERE endpoint_id = ?1 AND status = 'pending' ORDER BY id LIMIT 1",
        )?
        .query_row([endpoint], |r| {
            Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
        })
        .optional()?)
}

/// An endpoint's next pending delivery that nobody holds, due or not (a probe).
fn next_pending(conn: &Connection, round: &Round<'_>, endpoint: i64) -> Result<Option<i64>> {
    let fetch = (round.held_for(endpoint) + 1) as i64;
    let ids = conn
        .prepare_cached(
            "SELECT id FROM deliveries WHERE endpoint_id = ?1 AND status = 'pending'
             ORDER BY next_attempt_at, id LIMIT ?2",
        )?
        .query_map(params![endpoint, fetch], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids.into_iter().find(|d| !round.holds(*d)))
}

/// An endpoint's oldest pending delivery, if it is due and nobody holds it (a FIFO head).
fn head(conn: &Connection, round: &Round<'_>, endpoint: i64, now: i64) -> Result<Option<i64>> {
    Ok(match first_by_id(conn, endpoint)? {
        Some((id, at)) if at <= now && !round.holds(id) => Some(id),
        _ => None,
    })
}

/// The endpoints with pending work and when it comes due (`Outbox::due_scan`): every
/// active push endpoint (one probe of the due index each), or, from a cursor, only those
/// of the deliveries written since. An open circuit's work is due at its probe.
///
/// The cursor is the highest delivery id, read before the scan: SQLite has one writer, so
/// ids grow in commit order, and a delivery committed during the scan is read again by the
/// next one rather than missed. (An id can come back only after the newest deliveries
/// were deleted; the engine's full scans, at least every second, cover that.)
pub fn due_scan(conn: &Connection, since: Option<i64>) -> Result<DueScan> {
    let top: i64 = conn
        .prepare_cached("SELECT coalesce(max(id), 0) FROM deliveries")?
        .query_row([], |r| r.get(0))?;
    let due = match since {
        Some(cursor) => conn
            .prepare_cached(
                "SELECT g.endpoint_id,
                        CASE WHEN p.circuit_opened_at IS NOT NULL
                             THEN coalesce(p.circuit_next_probe, g.due) ELSE g.due END
                 FROM (SELECT endpoint_id, min(next_attempt_at) AS due FROM deliveries
                       WHERE id > ?1 AND status = 'pending' GROUP BY endpoint_id) g
                 JOIN endpoints p ON p.id = g.endpoint_id
                 WHERE p.status = 'active' AND p.kind = 'push'",
            )?
            .query_map([cursor], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?,
        None => conn
            .prepare_cached(
                "SELECT id, CASE WHEN opened IS NOT NULL THEN coalesce(probe, oldest) ELSE oldest END
                 FROM (SELECT p.id, p.circuit_opened_at AS opened, p.circuit_next_probe AS probe,
                              (SELECT d.next_attempt_at FROM deliveries d
                               WHERE d.endpoint_id = p.id AND d.status = 'pending'
                               ORDER BY d.next_attempt_at LIMIT 1) AS oldest
                       FROM endpoints p WHERE p.status = 'active' AND p.kind = 'push')
                 WHERE oldest IS NOT NULL",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?,
    };
    Ok(DueScan {
        due,
        cursor: Some(top),
        full: since.is_none(),
    })
}
