//! The engine's side of the outbox on PostgreSQL: leases shared by replicas.

use postgres::Client;

use crate::store::{AttemptRecord, ClaimRequest, Claimed, HealthPolicy, Result};

pub fn claim_due(_c: &mut Client, _replica: &str, _req: &ClaimRequest) -> Result<Vec<Claimed>> {
    super::not_yet()
}

pub fn record_attempts(
    _c: &mut Client,
    _replica: &str,
    _records: &[AttemptRecord],
    _policy: HealthPolicy,
    _now: i64,
) -> Result<()> {
    super::not_yet()
}

pub fn release(_c: &mut Client, _replica: &str, _ids: &[i64]) -> Result<()> {
    super::not_yet()
}

pub fn next_due(_c: &mut Client, _now: i64) -> Result<Option<i64>> {
    Ok(None)
}

pub fn prune(_c: &mut Client, _before: i64, _batch: usize) -> Result<usize> {
    Ok(0)
}
