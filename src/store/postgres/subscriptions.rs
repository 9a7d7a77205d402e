//! Each tenant's subscriptions (endpoint id, event patterns, payload filter), read inside
//! the publish transaction.
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

/// The endpoints an event of this tenant fans out to: every endpoint that is not disabled.
/// Paused endpoints get their deliveries too; they wait, pending, until the endpoint resumes.
pub fn of(c: &mut impl GenericClient, tenant: &str) -> Result<Vec<Subscriber>> {
    c.query_typed(
        "SELECT id, events, payload_filter FROM endpoints
         WHERE tenant_id = $1 AND status != 'disabled' ORDER BY id",
        &[(&tenant, Type::TEXT)],
    )?
    .iter()
    .map(|r| {
        let events: String = r.try_get(1)?;
        let payload_filter: Option<String> = r.try_get(2)?;
        Ok(Subscriber {
            endpoint_id: r.try_get(0)?,
            events: EventFilter::from_stored(serde_json::from_str(&events).unwrap_or_default()),
            payload_filter: payload_filter.as_deref().map(compiled),
        })
    })
    .collect()
}
