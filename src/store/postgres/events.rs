//! Events and the publish transaction (the write side of the outbox), on PostgreSQL.
//!
//! A publish enters here in the API's transaction: the tenant's subscriptions lock, the
//! event rows, one pending delivery per matching endpoint, and a NOTIFY, all committed
//! together before the API answers 202, so an accepted event survives kill -9 of Herald.
//! The deliveries leave through any replica's claim round (`outbox.rs`), woken by that
//! NOTIFY. Unlike SQLite's single writer, publishes here run concurrently, so idempotency
//! rests on the unique index rather than on a check before the insert.

use postgres::types::Type;
use postgres::{GenericClient, Row, Transaction};
use serde_json::value::RawValue;

use super::subscriptions;
use crate::store::fanout::Payload;
use crate::store::{Cursor, Event, EventQuery, NewEvent, Page, Published, Result, StoreError};

/// How often a publish tries again for an idempotency key that another transaction held
/// and then gave up (rolled back, or its event pruned at once).
const IDEMPOTENCY_TRIES: usize = 3;

/// Stores events and one pending delivery per subscribed endpoint, all in the caller's
/// transaction: either the events and all their deliveries are committed, or none of it is.
/// An idempotency key seen before returns the first result instead, also when the first
/// publish is still under way in another transaction (the unique index makes the second
/// wait for the first's commit, then answer its result).
pub fn publish(
    c: &mut impl GenericClient,
    tenant_id: &str,
    events: Vec<NewEvent>,
    now: i64,
) -> Result<Vec<Published>> {
    // Two statements, not one: under READ COMMITTED a statement reads from a snapshot taken
    // when it starts, so a lock and a read in one statement would read the endpoints as they
    // were before the lock's wait for a disable to commit.
    subscriptions::lock_shared(c, tenant_id)?;
    fan_out(c, tenant_id, events, now)
}

/// The publish itself, in the caller's transaction.
fn fan_out(
    c: &mut impl GenericClient,
    tenant_id: &str,
    events: Vec<NewEvent>,
    now: i64,
) -> Result<Vec<Published>> {
    let subscribers = subscriptions::of(c, tenant_id)?;
    // Statements on the publish path are typed: one round trip each, no prepare.
    let insert_delivery = "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status,
             next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, 'pending', $4, $4, $4)";
    let mut out = Vec::with_capacity(events.len());
    let mut queued = 0;
    for event in events {
        let (id, seq) = match first_or_replay(c, tenant_id, &event, now)? {
            Ok(inserted) => inserted,
            Err(previous) => {
                out.push(previous);
                continue;
            }
        };
        let mut deliveries = 0;
        // Parsed at most once for this event, and only if a payload filter asks.
        let mut payload = Payload::new(&event.body);
        for s in subscribers.iter() {
            if s.matches(&event.event_type, &mut payload) {
                c.execute_typed(
                    insert_delivery,
                    &[
                        (&seq, Type::INT8),
                        (&s.endpoint_id, Type::INT8),
                        (&tenant_id, Type::TEXT),
                        (&now, Type::INT8),
                    ],
                )?;
                deliveries += 1;
            }
        }
        queued += deliveries;
        out.push(Published {
            id,
            event: event.event_type,
            deliveries,
            replayed: false,
        });
    }
    // Only when something was queued: a publish no endpoint subscribes to should not wake
    // every replica's dispatcher for an empty claim round.
    if queued > 0 {
        super::notify_due(c)?;
    }
    Ok(out)
}

/// Publishes Herald's own events from the engine (`operational.rs`), inside the attempt
/// record's transaction. It does not take the tenant's subscriptions lock: that
/// transaction already holds delivery and endpoint rows, and an endpoint change holding the
/// lock may be waiting for those rows (a deadlock). The cost is the race the lock closes,
/// for these rare events only: an operational event published while an endpoint that
/// subscribes to it is being disabled may leave that one delivery pending.
pub fn publish_in(
    tx: &mut Transaction<'_>,
    tenant_id: &str,
    events: Vec<NewEvent>,
    now: i64,
) -> Result<Vec<Published>> {
    fan_out(tx, tenant_id, events, now)
}

/// Inserts the event (`Ok`: its id and seq), or answers the first result for its
/// idempotency key (`Err`). The unique index decides: an insert whose key another
/// transaction holds waits for that one to end, then does nothing if it committed. Under
/// READ COMMITTED the next statement sees that commit, so the first result is found. Should
/// the holder have rolled back (or its event been pruned since), the insert is tried again.
fn first_or_replay(
    c: &mut impl GenericClient,
    tenant_id: &str,
    event: &NewEvent,
    now: i64,
) -> Result<std::result::Result<(String, i64), Published>> {
    // Bounded: a key whose holders keep rolling back is a client problem (or a bug), and
    // answering 409 beats spinning inside the caller's transaction.
    for _ in 0..IDEMPOTENCY_TRIES {
        if let Some(inserted) = insert_event(c, tenant_id, event, now)? {
            return Ok(Ok(inserted));
        }
        let key = event.idempotency_key.as_deref().unwrap_or_default();
        if let Some(previous) = find_by_idempotency_key(c, tenant_id, key)? {
            return Ok(Err(previous));
        }
    }
    Err(StoreError::Conflict(
        "a publish with this Idempotency-Key is under way; send it again".into(),
    ))
}

/// Inserts the event; `None` when its idempotency key is taken.
fn insert_event(
    c: &mut impl GenericClient,
    tenant_id: &str,
    event: &NewEvent,
    now: i64,
) -> Result<Option<(String, i64)>> {
    let id = format!("evt_{}", ulid::Ulid::new());
    let row = c.query_typed_opt(
        "INSERT INTO events (id, tenant_id, event_type, body, idempotency_key, created_at, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING seq",
        &[
            (&id, Type::TEXT),
            (&tenant_id, Type::TEXT),
            (&event.event_type, Type::TEXT),
            (&event.body, Type::TEXT),
            (&event.idempotency_key, Type::TEXT),
            (&now, Type::INT8),
            (&event.traceparent, Type::TEXT),
        ],
    )?;
    Ok(match row {
        Some(r) => Some((id, r.try_get(0)?)),
        None => None,
    })
}

/// The earlier publish with this key, answered as it was (the same id and delivery count),
/// so a retried request is indistinguishable from the first and nothing fans out twice.
fn find_by_idempotency_key(
    c: &mut impl GenericClient,
    tenant_id: &str,
    key: &str,
) -> Result<Option<Published>> {
    c.query_opt(
        "SELECT e.id, e.event_type, (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq)
         FROM events e WHERE e.tenant_id = $1 AND e.idempotency_key = $2",
        &[&tenant_id, &key],
    )?
    .map(|r| {
        Ok(Published {
            id: r.try_get(0)?,
            event: r.try_get(1)?,
            deliveries: r.try_get::<_, i64>(2)? as usize,
            replayed: true,
        })
    })
    .transpose()
}

/// Inserts one event for exactly one endpoint, whatever its filter ("send test").
pub fn insert_for_endpoint(
    c: &mut impl GenericClient,
    tenant_id: &str,
    endpoint_id: i64,
    event: &NewEvent,
    now: i64,
) -> Result<(String, i64)> {
    // Like a publish: a test delivery must not be inserted behind a concurrent disable
    // that already cancelled the endpoint's pending deliveries.
    subscriptions::lock_shared(c, tenant_id)?;
    let id = format!("evt_{}", ulid::Ulid::new());
    let seq: i64 = c
        .query_one(
            "INSERT INTO events (id, tenant_id, event_type, body, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING seq",
            &[&id, &tenant_id, &event.event_type, &event.body, &now],
        )?
        .try_get(0)?;
    let delivery: i64 = c
        .query_one(
            "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status, next_attempt_at,
                 created_at, updated_at)
             VALUES ($1, $2, $3, 'pending', $4, $4, $4) RETURNING id",
            &[&seq, &endpoint_id, &tenant_id, &now],
        )?
        .try_get(0)?;
    super::notify_due(c)?;
    Ok((id, delivery))
}

const COLUMNS: &str = "seq, id, tenant_id, event_type, body, created_at";

fn row(r: &Row) -> Result<Event> {
    let body: String = r.try_get(4)?;
    Ok(Event {
        seq: r.try_get(0)?,
        id: r.try_get(1)?,
        tenant_id: r.try_get(2)?,
        event: r.try_get(3)?,
        // The body was produced by our canonical serialiser, so it is valid JSON.
        payload: RawValue::from_string(body)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON")),
        created_at: r.try_get(5)?,
    })
}

/// Scoped by tenant: another tenant's event id answers 404, as if it did not exist.
pub fn get(c: &mut impl GenericClient, tenant_id: &str, id: &str) -> Result<Event> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"),
        &[&tenant_id, &id],
    )?
    .map(|r| row(&r))
    .transpose()?
    .ok_or(StoreError::NotFound("event"))
}

pub fn list(
    c: &mut impl GenericClient,
    tenant_id: &str,
    q: &EventQuery,
    cursor: Cursor,
) -> Result<Page<Event>> {
    // The casts give the optional parameters their types up front: `$3 IS NULL` gives
    // PostgreSQL nothing to infer a type from.
    let rows = c.query(
        &format!(
            "SELECT {COLUMNS} FROM events
             WHERE tenant_id = $1 AND seq < $2 AND ($3::text IS NULL OR event_type = $3)
               AND ($4::bigint IS NULL OR created_at >= $4)
               AND ($5::bigint IS NULL OR created_at < $5)
             ORDER BY seq DESC LIMIT $6"
        ),
        &[
            &tenant_id,
            &cursor.before.unwrap_or(i64::MAX),
            &q.event_type,
            &q.since,
            &q.until,
            &super::limit_plus_one(cursor),
        ],
    )?;
    super::page(rows, row, cursor, |e| e.seq)
}
