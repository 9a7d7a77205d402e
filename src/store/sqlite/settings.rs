//! Deployment-wide values kept in the `settings` table.
//!
//! A small key/value table for what must outlive a restart and is not configuration: ids
//! generated once, counters, markers. Every write goes through the writer thread, so a
//! value is on disk before its caller goes on using it.

use rusqlite::{params, Connection};

use crate::store::Result;

/// Stores `value` unless the key already has one; returns the value that is now stored.
/// First writer wins, so two processes starting at once agree on one value.
pub fn get_or_insert(conn: &Connection, key: &str, value: &str) -> Result<String> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        params![key, value],
    )?;
    Ok(
        conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })?,
    )
}

/// Stores `value` under `key`, replacing what was there.
pub fn set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The value of `key`, if it has one.
pub fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Adds one to the integer under `key` (0 when absent) in one statement; returns the new value.
// One statement (an upsert with RETURNING) rather than read-then-write, so the count stays
// right even if a second process ever shares the file.
pub fn increment(conn: &Connection, key: &str) -> Result<i64> {
    Ok(conn.query_row(
        "INSERT INTO settings (key, value) VALUES (?1, '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
         RETURNING CAST(value AS INTEGER)",
        [key],
        |r| r.get(0),
    )?)
}
