//! Deployment-wide values kept in the `settings` table, shared by every replica.
//!
//! Each function is a statement or two in autocommit: nothing here needs to join a wider
//! transaction, and a committed value is durable before its caller goes on.

use postgres::Client;

use crate::store::Result;

/// Stores `value` unless the key already has one; returns the value that is now stored.
/// First writer wins, so replicas starting at once agree on one value.
pub fn get_or_insert(c: &mut Client, key: &str, value: &str) -> Result<String> {
    c.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[&key, &value],
    )?;
    // A second statement sees the winner: under READ COMMITTED it reads what any replica
    // committed before it started, including a row our DO NOTHING deferred to.
    Ok(
        c.query_one("SELECT value FROM settings WHERE key = $1", &[&key])?
            .get(0),
    )
}

/// Stores `value` under `key`, replacing what was there.
pub fn set(c: &mut Client, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )?;
    Ok(())
}

/// The value of `key`, if it has one.
pub fn get(c: &mut Client, key: &str) -> Result<Option<String>> {
    Ok(
        c.query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
            .map(|r| r.get(0)),
    )
}

/// Adds one to the integer under `key` (0 when absent) in one statement; returns the new value.
// One upsert: the row lock serialises replicas incrementing at once, so no increment is
// lost the way a read-then-write would lose one.
pub fn increment(c: &mut Client, key: &str) -> Result<i64> {
    Ok(c.query_one(
        "INSERT INTO settings (key, value) VALUES ($1, '1')
         ON CONFLICT (key) DO UPDATE SET value = (settings.value::bigint + 1)::text
         RETURNING value::bigint",
        &[&key],
    )?
    .get(0))
}
