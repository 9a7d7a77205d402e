//! Numbered migrations, the version kept in `PRAGMA user_version`.
//!
//! Each step runs in its own transaction together with the version bump, so a crash leaves
//! the file at one version or the next, never between. A file written by a newer Herald is
//! refused: half-understanding a schema is how data gets lost.

use rusqlite::Connection;

use crate::store::{Result, StoreError};

/// Migration N (1-based) brings the file from version N-1 to N. Append; never edit: a file
/// at version N has already run step N as it was, and an edited step would leave old and
/// new files with different schemas under the same number. Compiled in (`include_str!`)
/// so the binary needs nothing beside it.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../schema.sql"),
    include_str!("migrations/0002_ids_never_reused.sql"),
    include_str!("migrations/0003_delivery_controls.sql"),
    include_str!("migrations/0004_activity_indexes.sql"),
    include_str!("migrations/0005_poll_endpoints.sql"),
    include_str!("migrations/0006_forget_the_old_session_key.sql"),
    include_str!("migrations/0007_endpoint_disable_after.sql"),
    include_str!("migrations/0008_endpoint_attempt_window.sql"),
    include_str!("migrations/0009_event_type_schema.sql"),
    include_str!("migrations/0010_event_traceparent.sql"),
    include_str!("migrations/0011_endpoint_auth.sql"),
    include_str!("migrations/0012_endpoint_transformation.sql"),
    include_str!("migrations/0013_failed_deliveries_list.sql"),
    include_str!("migrations/0014_endpoint_reach.sql"),
    include_str!("migrations/0015_endpoint_payload_filter.sql"),
    include_str!("migrations/0016_first_success_inline_and_rollups.sql"),
];

/// The version this binary writes (`herald migrate` copies a file at this version).
pub fn latest() -> usize {
    MIGRATIONS.len()
}

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    // user_version is a signed 32-bit header field; a negative one can only come from a
    // hand-edited file, and is treated as "never migrated".
    let current = current.max(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Open(format!(
            "this database was written by a newer Herald (schema version {current}, this binary knows {}); upgrade Herald",
            MIGRATIONS.len()
        )));
    }
    // The common start-up: nothing to do, and the foreign-key pragma is left alone.
    if current == MIGRATIONS.len() {
        return Ok(());
    }
    // A migration may rebuild a table that others reference; with foreign keys on, dropping
    // the old table would cascade. They are off for the steps (the pragma is a no-op inside
    // a transaction, so it is set here) and checked before each commit.
    conn.pragma_update(None, "foreign_keys", false)?;
    // Re-enabled whatever the steps did: the writer connection must never run with
    // foreign keys off, or a cascade delete would leave orphans.
    let result = run_steps(conn, current);
    conn.pragma_update(None, "foreign_keys", true)?;
    result
}

fn run_steps(conn: &mut Connection, current: usize) -> Result<()> {
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: i64 =
            tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        // Returning drops `tx` uncommitted: the step and its version bump roll back together.
        if broken > 0 {
            return Err(StoreError::Open(format!(
                "migration {} would leave {broken} broken references; nothing was changed",
                index + 1
            )));
        }
        // The version is bumped in the step's own transaction (user_version is part of the
        // database header, written under the same journal), so kill -9 mid-migration
        // leaves either both or neither.
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
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on after migrating");
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer Herald"), "{err}");
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    /// A version-1 file keeps every row and id through version 2, and from then on a
    /// deleted endpoint's id is never handed out again.
    #[test]
    fn version_1_files_keep_their_rows_and_ids_stop_being_reused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.execute_batch(
            "INSERT INTO endpoints (id, tenant_id, url, events, description, headers, status, secret, created_at, updated_at)
                 VALUES (7, 'default', 'https://a.example/', '[\"*\"]', '', '{}', 'active', 'whsec_x', 0, 0);
             INSERT INTO events (seq, id, tenant_id, event_type, body, created_at)
                 VALUES (3, 'evt_1', 'default', 'a.b', '{}', 0);
             INSERT INTO deliveries (id, event_seq, endpoint_id, tenant_id, status, created_at, updated_at)
                 VALUES (5, 3, 7, 'default', 'succeeded', 0, 0);
             INSERT INTO attempts (id, delivery_id, started_at, duration_ms, status_code)
                 VALUES (9, 5, 0, 1, 200);",
        )
        .unwrap();
        tx.commit().unwrap();
        migrate(&mut conn).unwrap();
        let kept: (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT id FROM endpoints), (SELECT id FROM deliveries WHERE endpoint_id = 7),
                        (SELECT id FROM attempts WHERE delivery_id = 5)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(kept, (7, 5, 9));
        conn.execute("DELETE FROM endpoints WHERE id = 7", [])
            .unwrap();
        let orphans: i64 = conn
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(orphans, 0, "the cascade still works on the rebuilt tables");
        conn.execute(
            "INSERT INTO endpoints (tenant_id, url, events, description, headers, status, secret, created_at, updated_at)
             VALUES ('default', 'https://b.example/', '[]', '', '{}', 'active', 'whsec_y', 0, 0)",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 8, "id 7 is not handed out again");
    }

    /// Version 16 counts the attempts already there into the overview's rollups, bucketing
    /// latencies exactly as `store::activity::latency_bucket` does.
    #[test]
    fn version_16_back_fills_the_rollups_from_the_attempts() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        for step in &MIGRATIONS[..15] {
            tx.execute_batch(step).unwrap();
        }
        tx.pragma_update(None, "user_version", 15).unwrap();
        tx.commit().unwrap();
        let hour = crate::store::HOUR_MS;
        let now = crate::clock::now_ms();
        let this_hour = now / hour * hour;
        conn.execute_batch(
            "INSERT INTO endpoints (id, tenant_id, url, events, description, headers, status, secret, created_at, updated_at)
                 VALUES (1, 'default', 'https://a.example/', '[\"*\"]', '', '{}', 'active', 'whsec_x', 0, 0);
             INSERT INTO events (seq, id, tenant_id, event_type, body, created_at)
                 VALUES (1, 'evt_1', 'default', 'a.b', '{}', 0);",
        )
        .unwrap();
        let latencies = [0, 3, 15, 16, 18, 100, 5_000, 1_234_567];
        for (i, latency) in latencies.iter().enumerate() {
            let id = i as i64 + 1;
            let started = this_hour + i as i64; // all in this hour
            conn.execute(
                "INSERT INTO deliveries (id, event_seq, endpoint_id, tenant_id, status, attempts, created_at, updated_at)
                 VALUES (?1, 1, 1, 'default', 'failed', 2, ?2, ?2)",
                rusqlite::params![id, started - latency],
            )
            .unwrap();
            // The first attempt fails (no answer), a retry succeeds an hour later.
            conn.execute(
                "INSERT INTO attempts (delivery_id, started_at, duration_ms, status_code)
                 VALUES (?1, ?2, 1, NULL), (?1, ?3, 1, 204)",
                rusqlite::params![id, started, started + hour],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let hours: Vec<(i64, i64, i64)> = conn
            .prepare("SELECT hour, succeeded, failed FROM activity_hours ORDER BY hour")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let n = latencies.len() as i64;
        assert_eq!(hours, [(this_hour, 0, n), (this_hour + hour, n, 0)]);
        let buckets: Vec<(i64, i32, i64)> = conn
            .prepare("SELECT hour, bucket, count FROM latency_hours ORDER BY bucket")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let expected: Vec<(i64, i32, i64)> = latencies
            .iter()
            .map(|l| (this_hour, crate::store::latency_bucket(*l), 1))
            .collect();
        assert_eq!(
            buckets, expected,
            "only first attempts, bucketed as in Rust"
        );
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'attempts_started'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0);
    }
}
