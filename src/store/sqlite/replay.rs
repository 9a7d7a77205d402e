//! Replay on SQLite: the reads and the insert `store::replay` walks the window with.
//!
//! A replay that creates deliveries runs as one writer job: its reads, the check that an
//! event has no delivery for the endpoint and the inserts all happen inside the writer's
//! batch transaction (in the job's savepoint), so the deliveries of one call are committed
//! by one COMMIT (fsynced with `durability = full`) or not at all, and no other write (a
//! second replay, a publish, a disable) can run between the check and the insert. A dry
//! run reads on the read-only pool and holds the writer not at all.

use rusqlite::{params, Connection, OptionalExtension};

use super::endpoints;
use crate::domain::EndpointStatus;
use crate::store::fanout::Subscriber;
use crate::store::replay::{self, ReplayRows, Row};
use crate::store::{ReplayQuery, Replayed, Result, StoreError};

/// The replay of `endpoint` (of `tenant`) on this connection; a write must be the writer's.
pub fn run(
    conn: &Connection,
    tenant: &str,
    endpoint: i64,
    q: &ReplayQuery,
    now: i64,
) -> Result<Replayed> {
    let e = endpoints::get(conn, tenant, endpoint)?;
    if !q.dry_run && e.settings.status == EndpointStatus::Disabled {
        return Err(StoreError::Conflict(
            "the endpoint is disabled: resume it (or pause it) before replaying; a dry run still counts"
                .into(),
        ));
    }
    let mut rows = Rows {
        conn,
        tenant,
        endpoint,
    };
    replay::run(&mut rows, &Subscriber::of(&e), q, now)
}

struct Rows<'a> {
    conn: &'a Connection,
    tenant: &'a str,
    endpoint: i64,
}

impl ReplayRows for Rows<'_> {
    fn first_seq_at(&mut self, at: i64) -> Result<Option<i64>> {
        // Through `events_created`; the tenant is the walk's business (seq is global).
        Ok(self
            .conn
            .prepare_cached(
                "SELECT seq FROM events WHERE created_at >= ?1 ORDER BY created_at LIMIT 1",
            )?
            .query_row([at], |r| r.get(0))
            .optional()?)
    }

    fn read(&mut self, after: i64, n: usize, bodies: bool) -> Result<Vec<Row>> {
        // The tenant and seq bound are the `events_tenant` index; the delivery check is one
        // probe of `deliveries_event` per event.
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, id, event_type, created_at, delivered,
                    CASE WHEN delivered OR NOT ?4 THEN NULL ELSE body END
             FROM (SELECT e.*, EXISTS (SELECT 1 FROM deliveries d
                                       WHERE d.event_seq = e.seq AND d.endpoint_id = ?3) AS delivered
                   FROM events e WHERE e.tenant_id = ?1 AND e.seq > ?2 ORDER BY e.seq LIMIT ?5)
             ORDER BY seq",
        )?;
        let rows = stmt.query_map(
            params![self.tenant, after, self.endpoint, bodies, n as i64],
            |r| {
                Ok(Row {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    event_type: r.get(2)?,
                    created_at: r.get(3)?,
                    delivered: r.get(4)?,
                    body: r.get(5)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert(&mut self, seqs: &[i64], now: i64) -> Result<()> {
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4)",
        )?;
        for seq in seqs {
            insert.execute(params![seq, self.endpoint, self.tenant, now])?;
        }
        Ok(())
    }

    fn oldest(&mut self) -> Result<Option<(String, i64)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, created_at FROM events WHERE tenant_id = ?1 ORDER BY seq LIMIT 1",
            )?
            .query_row([self.tenant], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }
}
