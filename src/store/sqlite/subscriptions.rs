//! Each tenant's subscriptions (endpoint id, event patterns and compiled payload filter),
//! cached on the writer thread.
//!
//! A publish needs them for every event; reading and parsing the endpoints' filters for each
//! one was most of a publish's cost on the single writer thread (and a payload filter's
//! JSONPath is compiled only here, when the cache is filled, never per publish). Every change to an
//! endpoint or a tenant is a writer job too, and it calls `invalidate` from inside its
//! transaction, so the next job on the thread (even in the same batch) reads afresh; a
//! failed commit invalidates as well (`writer.rs`), so nothing uncommitted stays cached.
//! The cache is thread-local: only the writer thread ever fills or reads it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rusqlite::Connection;

use super::endpoints;
use crate::store::fanout::Subscriber;
use crate::store::Result;

pub type Subscriptions = Rc<Vec<Subscriber>>;

thread_local! {
    static CACHE: RefCell<HashMap<String, Subscriptions>> = RefCell::new(HashMap::new());
}

/// The endpoints an event of `tenant` may fan out to, from the cache or the database.
pub fn of(conn: &Connection, tenant: &str) -> Result<Subscriptions> {
    if let Some(hit) = CACHE.with(|c| c.borrow().get(tenant).cloned()) {
        return Ok(hit);
    }
    let fresh = Rc::new(endpoints::subscribers(conn, tenant)?);
    CACHE.with(|c| c.borrow_mut().insert(tenant.to_owned(), fresh.clone()));
    Ok(fresh)
}

/// Forgets every tenant's subscriptions (an endpoint or tenant changed).
pub fn invalidate() {
    CACHE.with(|c| c.borrow_mut().clear());
}
