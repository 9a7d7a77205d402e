//! The catalogue of event types: deployment-wide, optional.

use postgres::{GenericClient, Row};
use serde_json::value::RawValue;

use crate::store::{Cursor, EventType, NewEventType, Page, Result, StoreError};

const COLUMNS: &str = "name, description, example, created_at, rowid, schema";

fn row(r: &Row) -> Result<EventType> {
    let example: Option<String> = r.try_get(2)?;
    Ok(EventType {
        name: r.try_get(0)?,
        description: r.try_get(1)?,
        // A row that is not JSON shows no example rather than failing the catalogue.
        example: example.and_then(|e| RawValue::from_string(e).ok()),
        schema: r
            .try_get::<_, Option<String>>(5)?
            .and_then(|e| RawValue::from_string(e).ok()),
        created_at: r.try_get(3)?,
        rowid: r.try_get(4)?,
    })
}

/// Creates or replaces an event type (PUT semantics on POST: the catalogue is declarative).
/// A replaced type keeps its place (`rowid`) and creation time, as on SQLite.
pub fn upsert(c: &mut impl GenericClient, new: &NewEventType, now: i64) -> Result<EventType> {
    let r = c.query_one(
        &format!(
            "INSERT INTO event_types (name, description, example, schema, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET description = excluded.description, example = excluded.example,
                 schema = excluded.schema
             RETURNING {COLUMNS}"
        ),
        &[&new.name, &new.description, &new.example, &new.schema, &now],
    )?;
    row(&r)
}

pub fn get(c: &mut impl GenericClient, name: &str) -> Result<EventType> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM event_types WHERE name = $1"),
        &[&name],
    )?
    .map(|r| row(&r))
    .transpose()?
    .ok_or(StoreError::NotFound("event type"))
}

pub fn list(c: &mut impl GenericClient) -> Result<Vec<EventType>> {
    // `COLLATE "C"`: byte order, as SQLite's default BINARY collation sorts names.
    c.query(
        // COLLATE "C": byte order, as SQLite sorts text, so both backends list the
        // catalogue in the same order whatever the database's locale.
        &format!("SELECT {COLUMNS} FROM event_types ORDER BY name COLLATE \"C\" LIMIT 1000"),
        &[],
    )?
    .iter()
    .map(row)
    .collect()
}

/// One page of the catalogue for the API, newest first like every other list.
pub fn list_page(c: &mut impl GenericClient, cursor: Cursor) -> Result<Page<EventType>> {
    let rows = c.query(
        &format!("SELECT {COLUMNS} FROM event_types WHERE rowid < $1 ORDER BY rowid DESC LIMIT $2"),
        &[
            &cursor.before.unwrap_or(i64::MAX),
            &super::limit_plus_one(cursor),
        ],
    )?;
    super::page(rows, row, cursor, |t| t.rowid)
}

pub fn delete(c: &mut impl GenericClient, name: &str) -> Result<()> {
    if c.execute("DELETE FROM event_types WHERE name = $1", &[&name])? == 0 {
        return Err(StoreError::NotFound("event type"));
    }
    Ok(())
}
