//! Poll endpoints: the consumer pulls its pending deliveries instead of Herald pushing them.
//!
//! The dispatcher never claims a poll endpoint's deliveries, so they stay `pending` until
//! read. The consumer's cursor is the id of the last delivery it has handled: every pending
//! delivery up to it that a poll has handed out becomes `succeeded`, and the next page
//! starts after it. Acknowledging and reading run in one transaction, so a page never
//! repeats what the same request acknowledged. "Handed out" is `attempts > round_start`,
//! as on SQLite (`store/sqlite/poll.rs` says why).

use postgres::GenericClient;

use super::endpoints;
use crate::domain::EndpointKind;
use crate::store::{Polled, Result, StoreError};

/// Acknowledges the endpoint's pending deliveries up to `ack` (if given), then answers up to
/// `limit` of those still pending after it, oldest (lowest id) first.
pub fn poll(
    c: &mut impl GenericClient,
    tenant_id: &str,
    endpoint_id: i64,
    ack: Option<i64>,
    limit: usize,
    now: i64,
) -> Result<Vec<Polled>> {
    let endpoint = endpoints::get(c, tenant_id, endpoint_id)?;
    // Refused rather than answered: polling a push endpoint would mark deliveries a
    // replica may be sending as succeeded behind its back.
    if endpoint.kind != EndpointKind::Poll {
        return Err(StoreError::Conflict(
            "this webhook is a push endpoint; only poll endpoints can be polled".into(),
        ));
    }
    if let Some(ack) = ack {
        // No attempt row: nothing was sent. The delivery's status is the record that the
        // consumer has it (through the `deliveries_fifo` index on pending rows).
        c.execute(
            "UPDATE deliveries SET status = 'succeeded', next_attempt_at = NULL,
                 lease_until = NULL, lease_owner = NULL, last_error = NULL, updated_at = $3
             WHERE endpoint_id = $1 AND status = 'pending' AND id <= $2
               AND attempts > round_start",
            &[&endpoint_id, &ack, &now],
        )?;
    }
    let polled = c
        .query(
            "SELECT d.id, e.id, e.event_type, e.body, d.created_at
             FROM deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE d.endpoint_id = $1 AND d.status = 'pending'
               AND (d.id > $2 OR d.attempts = d.round_start)
             ORDER BY d.id LIMIT $3",
            &[&endpoint_id, &ack.unwrap_or(0), &(limit as i64)],
        )?
        .iter()
        .map(|r| {
            Ok(Polled {
                delivery_id: r.try_get(0)?,
                event_id: r.try_get(1)?,
                event: r.try_get(2)?,
                body: r.try_get(3)?,
                created_at: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<i64> = polled.iter().map(|p| p.delivery_id).collect();
    c.execute(
        "UPDATE deliveries SET attempts = attempts + 1 WHERE id = ANY($1)",
        &[&ids],
    )?;
    Ok(polled)
}
