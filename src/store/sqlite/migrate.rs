//! Numbered migrations, the version kept in `PRAGMA user_version`.
//!
//! Each step runs in its own transaction together with the version bump, so a crash leaves
//! the file at one version or the next, never between. A file written by a newer Herald is
//! refused: half-understanding a schema is how data gets lost.

use rusqlite::Connection;

use crate::store::{Result, StoreError};

/// Migration N (1-based) brings the file from version N-1 to N. Append; never edit.
const MIGRATIONS: &[&str] = &[include_str!("../../../schema.sql")];

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = current.max(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Open(format!(
            "this database was written by a newer Herald (schema version {current}, this binary knows {}); upgrade Herald",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_files() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap(); // idempotent
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM tenants WHERE id = 'default'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer Herald"), "{err}");
    }
}
