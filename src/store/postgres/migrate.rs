//! Numbered migrations, the version kept in `schema_version`.
//!
//! Each step runs in one transaction with its version bump, under an advisory lock, so
//! replicas starting at once migrate the database once, and a crash leaves it at one
//! version or the next. A database written by a newer Herald is refused.

use postgres::Client;

use crate::store::{Result, StoreError};

/// Migration N (1-based) brings the database from version N-1 to N. Append; never edit.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_flash_principal.sql"),
    include_str!("migrations/0003_endpoint_disable_after.sql"),
    include_str!("migrations/0004_endpoint_attempt_window.sql"),
    include_str!("migrations/0005_event_type_schema.sql"),
    include_str!("migrations/0006_replicas.sql"),
    include_str!("migrations/0007_event_traceparent.sql"),
    include_str!("migrations/0008_endpoint_auth.sql"),
    include_str!("migrations/0009_endpoint_transformation.sql"),
    include_str!("migrations/0010_failed_deliveries_list.sql"),
    include_str!("migrations/0011_endpoint_reach.sql"),
    include_str!("migrations/0012_endpoint_payload_filter.sql"),
    include_str!("migrations/0013_first_success_inline_and_rollups.sql"),
];

/// The advisory lock key migrations hold ("herald" as a number).
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

pub fn migrate(client: &mut Client) -> Result<()> {
    // One transaction for every pending step and the version row: PostgreSQL's DDL is
    // transactional, so a crash or a failed step leaves the database as it was.
    let mut tx = client.transaction()?;
    // Taken before reading the version: a second replica blocks here, then reads the
    // version the first one committed and has nothing to do.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // A table rather than SQLite's user_version, which PostgreSQL lacks: the version lives
    // in the database itself, so every replica and `herald migrate` read the same one.
    // Created only when missing, asked first: `CREATE TABLE IF NOT EXISTS` on an existing
    // table makes the server send a NOTICE, which every start printed.
    let exists: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        tx.batch_execute("CREATE TABLE schema_version (version integer NOT NULL)")?;
    }
    let current: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.get(0));
    let current = current.unwrap_or(0).max(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Open(format!(
            "this database was written by a newer Herald (schema version {current}, this binary knows {}); upgrade Herald",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql)?;
        tracing::info!(version = index + 1, "database migrated");
    }
    // Delete-then-insert keeps the table at exactly one row without needing a key.
    if current < MIGRATIONS.len() {
        tx.execute("DELETE FROM schema_version", &[])?;
        let version = MIGRATIONS.len() as i32;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The version this binary writes (`herald migrate` checks the target is empty or current).
pub fn latest() -> usize {
    MIGRATIONS.len()
}
