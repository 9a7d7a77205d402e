//! Poll endpoints: the consumer pulls its pending deliveries instead of Herald pushing them.
//!
//! The dispatcher never claims a poll endpoint's deliveries (`outbox.rs` skips them), so they
//! stay `pending` until read. The consumer's cursor is the id of the last delivery it has
//! handled: every pending delivery up to it that a poll has handed out becomes `succeeded`,
//! and the next page starts after it. Acknowledging and reading run in one writer job, so a
//! page never repeats what the same request acknowledged.
//!
//! "Handed out" is `attempts > round_start`: each read counts as an attempt, and a retry
//! starts a new round (`round_start = attempts`). So a delivery retried after the cursor
//! passed it is not acknowledged by that cursor; it is answered again (ids below the cursor
//! first), and acknowledged by the next cursor once it has been read.

use rusqlite::{params, Connection};

use super::endpoints;
use crate::domain::EndpointKind;
use crate::store::{Polled, Result, StoreError};

/// Acknowledges the endpoint's pending deliveries up to `ack` (if given), then answers up to
/// `limit` of those still pending after it, oldest (lowest id) first.
pub fn poll(
    conn: &Connection,
    tenant_id: &str,
    endpoint_id: i64,
    ack: Option<i64>,
    limit: usize,
    now: i64,
) -> Result<Vec<Polled>> {
    let endpoint = endpoints::get(conn, tenant_id, endpoint_id)?;
    // Refused rather than answered: polling a push endpoint would mark deliveries the
    // dispatcher is sending as succeeded behind its back.
    if endpoint.kind != EndpointKind::Poll {
        return Err(StoreError::Conflict(
            "this webhook is a push endpoint; only poll endpoints can be polled".into(),
        ));
    }
    if let Some(ack) = ack {
        // No attempt row: nothing was sent. The delivery's status is the record that the
        // consumer has it (through the `deliveries_fifo` index on pending rows).
        conn.prepare_cached(
            "UPDATE deliveries SET status = 'succeeded', next_attempt_at = NULL, lease_until = NULL,
                 last_error = NULL, updated_at = ?3
             WHERE endpoint_id = ?1 AND status = 'pending' AND id <= ?2 AND attempts > round_start",
        )?
        .execute(params![endpoint_id, ack, now])?;
    }
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, e.id, e.event_type, e.body, d.created_at
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.endpoint_id = ?1 AND d.status = 'pending'
           AND (d.id > ?2 OR d.attempts = d.round_start)
         ORDER BY d.id LIMIT ?3",
    )?;
    // Without an ack the page starts from the oldest pending one: a consumer that lost its
    // cursor reads again what it has not acknowledged (at-least-once, like a push).
    let rows = stmt.query_map(params![endpoint_id, ack.unwrap_or(0), limit as i64], |r| {
        Ok(Polled {
            delivery_id: r.get(0)?,
            event_id: r.get(1)?,
            event: r.get(2)?,
            body: r.get(3)?,
            created_at: r.get(4)?,
        })
    })?;
    let polled = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut handed_out =
        conn.prepare_cached("UPDATE deliveries SET attempts = attempts + 1 WHERE id = ?1")?;
    for p in &polled {
        handed_out.execute([p.delivery_id])?;
    }
    Ok(polled)
}
