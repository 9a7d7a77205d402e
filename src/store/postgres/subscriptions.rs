//! Each tenant's subscriptions (endpoint id, event patterns, payload filter), read inside
//! the publish transaction (one statement for every tenant of a publish batch).
//!
//! SQLite caches them on its one writer thread; here any replica may change an endpoint, so
//! a cache in one process could serve another's stale filters. A publish reads the tenant's
//! endpoints afresh (one indexed read of a small table) and matches them in Rust with the
//! same `fanout::Subscriber` as SQLite. What is cached is only what cannot go stale: a
//! payload filter's compiled JSONPath, keyed by its text (`COMPILED`), so a publish reads
//! the text and compiles nothing it has compiled before.
//!
//! A per-tenant advisory lock orders publishes against the changes that must not interleave
//! with them: a publish holds it shared (publishes never wait for each other), and
//! disabling or deleting an endpoint, or deleting the tenant, holds it exclusive. Without
//! it, a publish that read an endpoint as active could insert a pending delivery after a
//! concurrent disable had cancelled the endpoint's pending ones (a delivery nobody would
//! ever send), or insert a row that points at an endpoint a concurrent delete removes (a
//! foreign-key error for the publisher). The lock lasts until the transaction ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use postgres::types::Type;
use postgres::GenericClient;

use crate::domain::{EventFilter, PayloadFilter};
use crate::store::fanout::Subscriber;
use crate::store::Result;

/// Compiled payload filters by their text, for every tenant of this process. Bounded: past
/// `COMPILED_MAX` distinct texts it starts afresh (a compile is microseconds; the bound only
/// keeps a deployment with endless distinct filters from growing without end).
static COMPILED: OnceLock<Mutex<HashMap<String, Arc<PayloadFilter>>>> = OnceLock::new();
const COMPILED_MAX: usize = 10_000;

fn compiled(text: &str) -> Arc<PayloadFilter> {
    let mut cache = COMPILED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(hit) = cache.get(text) {
        return hit.clone();
    }
    if cache.len() >= COMPILED_MAX {
        cache.clear();
    }
    let fresh = Arc::new(PayloadFilter::from_stored(text));
    cache.insert(text.to_owned(), fresh.clone());
    fresh
}

/// The advisory lock class of subscription locks ("subs"); the tenant's hash is the key.
const LOCK_CLASS: i32 = 0x7375_6273;

/// Taken by every publish of `tenant`, until its transaction ends.
pub fn lock_shared(c: &mut impl GenericClient, tenant: &str) -> Result<()> {
    // Typed: one round trip on every publish's path.
    c.query_typed(
        "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))",
        &[(&LOCK_CLASS, Type::INT4), (&tenant, Type::TEXT)],
    )?;
    Ok(())
}

/// Taken by a change that a publish of `tenant` must see whole or not at all (disabling
/// or deleting an endpoint, deleting the tenant): waits for the publishes under way.
pub fn lock_exclusive(c: &mut impl GenericClient, tenant: &str) -> Result<()> {
    c.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_CLASS, &tenant],
    )?;
    Ok(())
}

/// Like `lock_exclusive`, without waiting: false when a publish or change holds it.
pub fn try_lock_exclusive(c: &mut impl GenericClient, tenant: &str) -> Result<bool> {
    Ok(c.query_one(
        "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_CLASS, &tenant],
    )?
    .get(0))
}

/// Taken by every publish batch for each of its `tenants` (sorted, so every batch takes
/// them in one order), until its transaction ends; one statement whatever their number.
pub fn lock_shared_all(c: &mut impl GenericClient, tenants: &[&str]) -> Result<()> {
    c.query_typed(
        "SELECT count(pg_advisory_xact_lock_shared($1, hashtext(t)))
         FROM unnest($2::text[]) AS t",
        &[(&LOCK_CLASS, Type::INT4), (&tenants, Type::TEXT_ARRAY)],
    )?;
    Ok(())
}

/// The endpoints an event of each of `tenants` fans out to: every endpoint that is not
/// disabled, by tenant, in id order. Paused endpoints get their deliveries too; they wait,
/// pending, until the endpoint resumes. A tenant that does not exist is missing from the
/// map (one with no endpoints maps to none): read in the same statement, after the
/// subscriptions lock, which a tenant's deletion takes exclusive, so a tenant found here
/// stays until the publish commits.
pub fn of_tenants(
    c: &mut impl GenericClient,
    tenants: &[&str],
) -> Result<HashMap<String, Vec<Subscriber>>> {
    let rows = c.query_typed(
        "SELECT t.id, e.id, e.events, e.payload_filter
         FROM tenants t
         LEFT JOIN endpoints e ON e.tenant_id = t.id AND e.status != 'disabled'
         WHERE t.id = ANY($1::text[]) ORDER BY t.id, e.id",
        &[(&tenants, Type::TEXT_ARRAY)],
    )?;
    let mut by_tenant: HashMap<String, Vec<Subscriber>> = HashMap::with_capacity(tenants.len());
    for r in rows {
        let subscribers = by_tenant.entry(r.try_get(0)?).or_default();
        let Some(endpoint_id) = r.try_get(1)? else {
            continue; // a tenant without endpoints
        };
        let events: String = r.try_get(2)?;
        let payload_filter: Option<String> = r.try_get(3)?;
        subscribers.push(Subscriber {
            endpoint_id,
            events: EventFilter::from_stored(serde_json::from_str(&events).unwrap_or_default()),
            payload_filter: payload_filter.as_deref().map(compiled),
        });
    }
    Ok(by_tenant)
}
