//! Events and the publish transaction (the write side of the outbox), on PostgreSQL.
//!
//! Publishes enter here in batches (`group.rs` gathers the requests that arrive while the
//! previous batch commits, as SQLite's writer thread does): the subscriptions lock of each
//! tenant in the batch, the event rows, one pending delivery per matching endpoint, and a
//! NOTIFY, all committed together before any of the batch's requests is answered 202, so
//! an accepted event survives kill -9 of Herald. Each table gets one statement per batch
//! (a multi-row `INSERT … SELECT FROM unnest(…)`), so a batch of 60 publishes costs
//! PostgreSQL about what one did. The deliveries leave through any replica's claim round
//! (`outbox.rs`), woken by that NOTIFY.
//!
//! Unlike SQLite's single writer, several transactions publish at once (another batch,
//! another replica), so idempotency rests on the unique index rather than on a check
//! before the insert; within a batch, the second use of a key is answered from the first
//! before anything is sent to the database.

use std::collections::HashMap;

use postgres::types::Type;
use postgres::{GenericClient, Row, Transaction};
use serde_json::value::RawValue;

use super::subscriptions;
use crate::store::fanout::{Payload, Subscriber};
use crate::store::{Cursor, Event, EventQuery, NewEvent, Page, Published, Result, StoreError};

/// How often a publish tries again for an idempotency key that another transaction held
/// and then gave up (rolled back, or its event pruned at once).
const IDEMPOTENCY_TRIES: usize = 3;

/// One publish request: a tenant's events (one, or a batch request's), as the API handed
/// them over.
pub struct Publish {
    pub tenant: String,
    pub events: Vec<NewEvent>,
    pub now: i64,
}

/// What one request of a batch is answered: its events, or why it wrote nothing (a tenant
/// that does not exist). An error that fails the whole batch is the outer `Result`.
pub type Answer = Result<Vec<Published>>;

/// Stores every request's events and one pending delivery per subscribed endpoint, all in
/// the caller's transaction: either the whole batch is committed, or none of it is. A
/// request for a tenant that does not exist is answered `NotFound` and writes nothing,
/// without failing the others. An idempotency key seen before returns the first result
/// instead, also when the first publish is still under way in another transaction (the
/// unique index makes the insert wait for that one's commit, then answer its result), and
/// when it is an earlier request (or event) of the same batch.
pub fn publish(c: &mut impl GenericClient, batch: &[&Publish]) -> Result<Vec<Answer>> {
    let mut tenants: Vec<&str> = batch.iter().map(|p| p.tenant.as_str()).collect();
    // Sorted: every batch takes its tenants' locks in one order, so two batches (of this
    // replica or another) never wait for each other in a cycle through a disable queued
    // between them.
    tenants.sort_unstable();
    tenants.dedup();
    // Two statements, not one: under READ COMMITTED a statement reads from a snapshot taken
    // when it starts, so a lock and a read in one statement would read the endpoints as they
    // were before the lock's wait for a disable to commit.
    subscriptions::lock_shared_all(c, &tenants)?;
    let subscribers = subscriptions::of_tenants(c, &tenants)?;
    fan_out(c, batch, &subscribers)
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
    let tenants = [tenant_id];
    let subscribers = subscriptions::of_tenants(tx, &tenants)?;
    let publish = Publish {
        tenant: tenant_id.to_owned(),
        events,
        now,
    };
    fan_out(tx, &[&publish], &subscribers)?.remove(0)
}

/// An event of the batch on its way to the database.
struct Planned<'a> {
    tenant: &'a str,
    event: &'a NewEvent,
    now: i64,
    id: String,
    written: Written,
}

enum Written {
    /// Not yet: its insert met a key another transaction held (or has not run).
    No,
    /// Inserted by this batch: its seq, and how many deliveries it fanned out to.
    Inserted { seq: i64, deliveries: usize },
    /// An earlier publish with its key, answered instead.
    Replayed(Published),
}

/// Where one event of a request gets its answer: an event planned for the database, or
/// (a key used twice in the batch) the first event that used its key.
enum Slot {
    Own(usize),
    Same(usize),
}

/// The publish itself, in the caller's transaction, against `subscribers` (by tenant; a
/// tenant missing from it does not exist).
fn fan_out(
    c: &mut impl GenericClient,
    batch: &[&Publish],
    subscribers: &HashMap<String, Vec<Subscriber>>,
) -> Result<Vec<Answer>> {
    let mut planned: Vec<Planned<'_>> = Vec::new();
    let mut first_of_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut slots: Vec<Option<Vec<Slot>>> = Vec::with_capacity(batch.len());
    for p in batch {
        if !subscribers.contains_key(&p.tenant) {
            slots.push(None);
            continue;
        }
        let mut own = Vec::with_capacity(p.events.len());
        for event in &p.events {
            if let Some(key) = event.idempotency_key.as_deref() {
                if let Some(&first) = first_of_key.get(&(p.tenant.as_str(), key)) {
                    own.push(Slot::Same(first));
                    continue;
                }
                first_of_key.insert((p.tenant.as_str(), key), planned.len());
            }
            own.push(Slot::Own(planned.len()));
            planned.push(Planned {
                tenant: &p.tenant,
                event,
                now: p.now,
                // ULIDs sort by time and need no coordination across replicas.
                id: format!("evt_{}", ulid::Ulid::new()),
                written: Written::No,
            });
        }
        slots.push(Some(own));
    }
    insert_or_replay(c, &mut planned)?;
    let queued = insert_deliveries(c, &mut planned, subscribers)?;
    // Only when something was queued: a publish no endpoint subscribes to should not wake
    // every replica's dispatcher for an empty claim round.
    if queued > 0 {
        super::notify_due(c)?;
    }
    Ok(slots
        .into_iter()
        .map(|own| match own {
            None => Err(StoreError::NotFound("tenant")),
            Some(own) => Ok(own.iter().map(|slot| answer(&planned, slot)).collect()),
        })
        .collect())
}

fn answer(planned: &[Planned<'_>], slot: &Slot) -> Published {
    let (index, replayed) = match *slot {
        Slot::Own(i) => (i, false),
        Slot::Same(i) => (i, true),
    };
    let p = &planned[index];
    match &p.written {
        Written::Inserted { deliveries, .. } => Published {
            id: p.id.clone(),
            event: p.event.event_type.clone(),
            deliveries: *deliveries,
            replayed,
        },
        Written::Replayed(previous) => previous.clone(),
        Written::No => unreachable!("insert_or_replay writes or replays every planned event"),
    }
}

/// Inserts the planned events (one statement), and answers those whose idempotency key is
/// taken with the first result for it. The unique index decides: an insert whose key
/// another transaction holds waits for that one to end, then skips the row if it
/// committed; under READ COMMITTED the next statement sees that commit, so the first result
/// is found. Should the holder have rolled back (or its event been pruned since), the
/// insert is tried again for those rows.
fn insert_or_replay(c: &mut impl GenericClient, planned: &mut [Planned<'_>]) -> Result<()> {
    let mut todo: Vec<usize> = (0..planned.len()).collect();
    // Bounded: a key whose holders keep rolling back is a client problem (or a bug), and
    // answering 409 beats spinning inside the caller's transaction.
    for _ in 0..IDEMPOTENCY_TRIES {
        if todo.is_empty() {
            return Ok(());
        }
        let inserted = insert_events(c, planned, &todo)?;
        todo.retain(|&i| match inserted.get(planned[i].id.as_str()) {
            Some(&seq) => {
                planned[i].written = Written::Inserted { seq, deliveries: 0 };
                false
            }
            None => true,
        });
        if todo.is_empty() {
            return Ok(());
        }
        let mut previous = find_by_idempotency_keys(c, planned, &todo)?;
        todo.retain(|&i| {
            let key = (
                planned[i].tenant.to_owned(),
                planned[i].event.idempotency_key.clone().unwrap_or_default(),
            );
            match previous.remove(&key) {
                Some(first) => {
                    planned[i].written = Written::Replayed(first);
                    false
                }
                None => true,
            }
        });
    }
    if todo.is_empty() {
        return Ok(());
    }
    // Fails the batch; its requests are then published one by one (`group.rs`), and only
    // the one with this key is answered 409.
    Err(StoreError::Conflict(
        "a publish with this Idempotency-Key is under way; send it again".into(),
    ))
}

/// Inserts the events `rows` of `planned`, in their order (so a request's events get
/// ascending seqs); answers the seq of each inserted one by its id. A row whose idempotency
/// key is taken is skipped.
fn insert_events(
    c: &mut impl GenericClient,
    planned: &[Planned<'_>],
    rows: &[usize],
) -> Result<HashMap<String, i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut tenants = Vec::with_capacity(rows.len());
    let mut types = Vec::with_capacity(rows.len());
    let mut bodies = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut times = Vec::with_capacity(rows.len());
    let mut traces = Vec::with_capacity(rows.len());
    for &i in rows {
        let p = &planned[i];
        ids.push(p.id.as_str());
        tenants.push(p.tenant);
        types.push(p.event.event_type.as_str());
        bodies.push(p.event.body.as_str());
        keys.push(p.event.idempotency_key.as_deref());
        times.push(p.now);
        traces.push(p.event.traceparent.as_deref());
    }
    // Typed: one round trip, no prepare. unnest walks the arrays in step, in order.
    let inserted = c.query_typed(
        "INSERT INTO events (id, tenant_id, event_type, body, idempotency_key, created_at, traceparent)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::int8[], $7::text[])
         ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING id, seq",
        &[
            (&ids, Type::TEXT_ARRAY),
            (&tenants, Type::TEXT_ARRAY),
            (&types, Type::TEXT_ARRAY),
            (&bodies, Type::TEXT_ARRAY),
            (&keys, Type::TEXT_ARRAY),
            (&times, Type::INT8_ARRAY),
            (&traces, Type::TEXT_ARRAY),
        ],
    )?;
    inserted
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// One pending delivery per (inserted event, subscribed endpoint), in one statement, in
/// the events' order: an endpoint's deliveries (whose ids order FIFO sends) follow the
/// order its events were published in. Answers how many were queued.
fn insert_deliveries(
    c: &mut impl GenericClient,
    planned: &mut [Planned<'_>],
    subscribers: &HashMap<String, Vec<Subscriber>>,
) -> Result<usize> {
    let (mut seqs, mut endpoints, mut tenants, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in planned.iter_mut() {
        let Written::Inserted { seq, deliveries } = &mut p.written else {
            continue;
        };
        // Parsed at most once for this event, and only if a payload filter asks.
        let mut payload = Payload::new(&p.event.body);
        for s in subscribers.get(p.tenant).into_iter().flatten() {
            if s.matches(&p.event.event_type, &mut payload) {
                seqs.push(*seq);
                endpoints.push(s.endpoint_id);
                tenants.push(p.tenant);
                times.push(p.now);
                *deliveries += 1;
            }
        }
    }
    if seqs.is_empty() {
        return Ok(0);
    }
    c.execute_typed(
        "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status,
             next_attempt_at, created_at, updated_at)
         SELECT s, e, t, 'pending', n, n, n
         FROM unnest($1::int8[], $2::int8[], $3::text[], $4::int8[]) AS u(s, e, t, n)",
        &[
            (&seqs, Type::INT8_ARRAY),
            (&endpoints, Type::INT8_ARRAY),
            (&tenants, Type::TEXT_ARRAY),
            (&times, Type::INT8_ARRAY),
        ],
    )?;
    Ok(seqs.len())
}

/// The earlier publishes with the keys of `rows`, by (tenant, key), answered as they were
/// (the same id and delivery count), so a retried request is indistinguishable from the
/// first and nothing fans out twice.
fn find_by_idempotency_keys(
    c: &mut impl GenericClient,
    planned: &[Planned<'_>],
    rows: &[usize],
) -> Result<HashMap<(String, String), Published>> {
    let tenants: Vec<&str> = rows.iter().map(|&i| planned[i].tenant).collect();
    let keys: Vec<&str> = rows
        .iter()
        .map(|&i| {
            planned[i]
                .event
                .idempotency_key
                .as_deref()
                .unwrap_or_default()
        })
        .collect();
    let found = c.query_typed(
        "SELECT e.tenant_id, e.idempotency_key, e.id, e.event_type,
                (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq)
         FROM unnest($1::text[], $2::text[]) AS k(tenant_id, idempotency_key)
         JOIN events e ON e.tenant_id = k.tenant_id AND e.idempotency_key = k.idempotency_key",
        &[(&tenants, Type::TEXT_ARRAY), (&keys, Type::TEXT_ARRAY)],
    )?;
    found
        .iter()
        .map(|r| {
            Ok((
                (r.try_get(0)?, r.try_get(1)?),
                Published {
                    id: r.try_get(2)?,
                    event: r.try_get(3)?,
                    deliveries: r.try_get::<_, i64>(4)? as usize,
                    replayed: true,
                },
            ))
        })
        .collect()
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
