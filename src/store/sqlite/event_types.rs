//! The catalogue of event types: deployment-wide, optional.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::value::RawValue;

use crate::store::{Cursor, EventType, NewEventType, Page, Result, StoreError};

fn row(r: &Row) -> rusqlite::Result<EventType> {
    let example: Option<String> = r.get(2)?;
    Ok(EventType {
        name: r.get(0)?,
        description: r.get(1)?,
        // Stored canonical by the API; a row that is not JSON shows no example rather than
        // failing the whole catalogue.
        example: example.and_then(|e| RawValue::from_string(e).ok()),
        schema: r
            .get::<_, Option<String>>(5)?
            .and_then(|e| RawValue::from_string(e).ok()),
        created_at: r.get(3)?,
        rowid: r.get(4)?,
    })
}

/// Creates or replaces an event type (PUT semantics on POST: the catalogue is declarative).
pub fn upsert(conn: &Connection, new: &NewEventType, now: i64) -> Result<EventType> {
    // An upsert that leaves created_at and rowid alone: a replaced type keeps its place in
    // the newest-first list, and pushing the same catalogue at every deploy is a no-op.
    conn.execute(
        "INSERT INTO event_types (name, description, example, schema, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO UPDATE SET description = excluded.description, example = excluded.example,
             schema = excluded.schema",
        params![new.name, new.description, new.example, new.schema, now],
    )?;
    get(conn, &new.name)
}

pub fn get(conn: &Connection, name: &str) -> Result<EventType> {
    conn.query_row(
        "SELECT name, description, example, created_at, rowid, schema FROM event_types WHERE name = ?1",
        [name],
        row,
    )
    .optional()?
    .ok_or(StoreError::NotFound("event type"))
}

/// The whole catalogue by name (`all_event_types`). The LIMIT is a guard against a
/// runaway catalogue, not paging: a product defines tens of event types, not thousands.
pub fn list(conn: &Connection) -> Result<Vec<EventType>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, description, example, created_at, rowid, schema FROM event_types ORDER BY name LIMIT 1000",
    )?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One page of the catalogue for the API, newest first like every other list.
pub fn list_page(conn: &Connection, cursor: Cursor) -> Result<Page<EventType>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, description, example, created_at, rowid, schema FROM event_types
         WHERE rowid < ?1 ORDER BY rowid DESC LIMIT ?2",
    )?;
    super::page(
        &mut stmt,
        params![cursor.before.unwrap_or(i64::MAX), cursor.limit as i64 + 1],
        row,
        cursor,
        |t| t.rowid,
    )
}

/// Deletes only the catalogue entry: events of that type and endpoint filters naming it
/// are left as they are, since the catalogue documents events rather than gating them.
pub fn delete(conn: &Connection, name: &str) -> Result<()> {
    if conn.execute("DELETE FROM event_types WHERE name = ?1", [name])? == 0 {
        return Err(StoreError::NotFound("event type"));
    }
    Ok(())
}
