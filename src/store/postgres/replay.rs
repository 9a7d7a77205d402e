//! Replay on PostgreSQL: the reads and the insert `store::replay` walks the window with.
//!
//! One call is one transaction: its deliveries are committed together (and, with
//! `synchronous_commit = on`, flushed) before the API answers, or none are. Replicas run
//! replays concurrently, so a replay that creates deliveries first takes the tenant's
//! subscriptions lock shared, as a publish does (a concurrent disable or delete of the
//! endpoint waits for it, and cannot cancel the endpoint's pending deliveries under it),
//! then an advisory lock of its own endpoint, exclusive: a second replay of the same
//! endpoint waits, and under READ COMMITTED its reads then see the first one's deliveries,
//! so an event never gets two.

use postgres::types::Type;
use postgres::GenericClient;

use super::{endpoints, subscriptions};
use crate::domain::EndpointStatus;
use crate::store::fanout::Subscriber;
use crate::store::replay::{self, ReplayRows, Row};
use crate::store::{ReplayQuery, Replayed, Result, StoreError};

/// The advisory lock class of replays ("rply"); the endpoint id is the key.
const LOCK_CLASS: i32 = 0x7270_6c79;

/// The replay of `endpoint` (of `tenant`) in the caller's transaction.
pub fn run(
    c: &mut impl GenericClient,
    tenant: &str,
    endpoint: i64,
    q: &ReplayQuery,
    now: i64,
) -> Result<Replayed> {
    if !q.dry_run {
        subscriptions::lock_shared(c, tenant)?;
        // The key is the id's low 32 bits: two endpoints that share them only wait for
        // each other's replays.
        c.execute(
            "SELECT pg_advisory_xact_lock($1, $2::bigint::bit(32)::int)",
            &[&LOCK_CLASS, &endpoint],
        )?;
    }
    let e = endpoints::get(c, tenant, endpoint)?;
    if !q.dry_run && e.settings.status == EndpointStatus::Disabled {
        return Err(StoreError::Conflict(
            "the endpoint is disabled: resume it (or pause it) before replaying; a dry run still counts"
                .into(),
        ));
    }
    let subscriber = Subscriber::of(&e);
    let mut rows = Rows {
        c,
        tenant,
        endpoint,
    };
    let replayed = replay::run(&mut rows, &subscriber, q, now)?;
    if !q.dry_run && replayed.count > 0 {
        super::notify_due(c)?;
    }
    Ok(replayed)
}

struct Rows<'a, C> {
    c: &'a mut C,
    tenant: &'a str,
    endpoint: i64,
}

impl<C: GenericClient> ReplayRows for Rows<'_, C> {
    fn first_seq_at(&mut self, at: i64) -> Result<Option<i64>> {
        // Through `events_created`; the tenant is the walk's business (seq is global).
        Ok(self
            .c
            .query_opt(
                "SELECT seq FROM events WHERE created_at >= $1 ORDER BY created_at LIMIT 1",
                &[&at],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    fn read(&mut self, after: i64, n: usize, bodies: bool) -> Result<Vec<Row>> {
        let rows = self.c.query_typed(
            "SELECT seq, id, event_type, created_at, delivered,
                    CASE WHEN delivered OR NOT $4 THEN NULL ELSE body END
             FROM (SELECT e.seq, e.id, e.event_type, e.created_at, e.body,
                          EXISTS (SELECT 1 FROM deliveries d
                                  WHERE d.event_seq = e.seq AND d.endpoint_id = $3) AS delivered
                   FROM events e WHERE e.tenant_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $5) w
             ORDER BY seq",
            &[
                (&self.tenant, Type::TEXT),
                (&after, Type::INT8),
                (&self.endpoint, Type::INT8),
                (&bodies, Type::BOOL),
                (&(n as i64), Type::INT8),
            ],
        )?;
        rows.iter()
            .map(|r| {
                Ok(Row {
                    seq: r.try_get(0)?,
                    id: r.try_get(1)?,
                    event_type: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    delivered: r.try_get(4)?,
                    body: r.try_get(5)?,
                })
            })
            .collect()
    }

    fn insert(&mut self, seqs: &[i64], now: i64) -> Result<()> {
        // One statement for the whole call's deliveries.
        self.c.execute(
            "INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, status, next_attempt_at,
                 created_at, updated_at)
             SELECT s, $2, $3, 'pending', $4, $4, $4 FROM unnest($1::bigint[]) WITH ORDINALITY AS u(s, i)
             ORDER BY i",
            &[&seqs, &self.endpoint, &self.tenant, &now],
        )?;
        Ok(())
    }

    fn oldest(&mut self) -> Result<Option<(String, i64)>> {
        self.c
            .query_opt(
                "SELECT id, created_at FROM events WHERE tenant_id = $1 ORDER BY seq LIMIT 1",
                &[&self.tenant],
            )?
            .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
    }
}
