//! Ported from the SQLite backend (to be filled).

use postgres::Transaction;

use crate::store::{NewEvent, Published, Result};

/// Publishes inside the caller's transaction (stand-in until the port lands).
pub fn publish_in(
    _tx: &mut Transaction<'_>,
    _tenant: &str,
    _events: Vec<NewEvent>,
    _now: i64,
) -> Result<Vec<Published>> {
    super::not_yet()
}
