//! Herald's own events (`herald.endpoint.circuit_opened`, `herald.endpoint.recovered`,
//! `herald.endpoint.disabled`, `herald.delivery.failed`), published in the transaction of
//! the attempt record that caused them, as on SQLite (`sqlite/operational.rs`, which
//! explains who receives them).

use postgres::Transaction;
use serde_json::Value;

use crate::store::{Result, OPERATOR_TENANT};

/// Publishes `kind` about `endpoint` to its tenant and to the operator.
pub fn emit(
    tx: &mut Transaction<'_>,
    endpoint: i64,
    kind: &str,
    data: Value,
    now: i64,
) -> Result<()> {
    let Some(row) = tx.query_opt(
        "SELECT tenant_id, url FROM endpoints WHERE id = $1",
        &[&endpoint],
    )?
    else {
        // The endpoint was deleted while its attempt was in flight: there is no tenant to
        // tell, and the record's transaction must not fail over it.
        return Ok(());
    };
    let (tenant, url): (String, String) = (row.get(0), row.get(1));
    // The operator's own endpoint failing raises nothing: an event about it would be
    // delivered to the same failing endpoint and feed itself.
    if tenant == OPERATOR_TENANT {
        return Ok(());
    }
    let event =
        || crate::store::operational_event(kind, &tenant, endpoint, &url, data.clone(), now);
    // Stored only where an endpoint will receive it (the tenant's log stays free of
    // Herald's own traffic otherwise).
    if subscribed(tx, &tenant, kind)? {
        super::events::publish_in(tx, &tenant, vec![event()], now)?;
    }
    if subscribed(tx, OPERATOR_TENANT, kind)? {
        super::events::publish_in(tx, OPERATOR_TENANT, vec![event()], now)?;
    }
    tracing::info!(endpoint, kind, "operational event");
    Ok(())
}

/// Whether an active or paused endpoint of `tenant` subscribes to `kind`. Read afresh in
/// the record's transaction (no cache to go stale across replicas); a tenant has few
/// endpoints, and these events are rare.
fn subscribed(tx: &mut Transaction<'_>, tenant: &str, kind: &str) -> Result<bool> {
    let rows = tx.query(
        "SELECT events FROM endpoints WHERE tenant_id = $1 AND status <> 'disabled'",
        &[&tenant],
    )?;
    Ok(rows.iter().any(|r| {
        let patterns: Vec<String> =
            // A filter column we cannot read subscribes to nothing, rather than failing
            // the attempt record this runs inside.
            serde_json::from_str(&r.get::<_, String>(0)).unwrap_or_default();
        crate::domain::EventFilter::from_stored(patterns).matches(kind)
    }))
}

/// Endpoints with a client certificate (`Outbox::client_certificates`).
pub fn client_certificates(c: &mut postgres::Client) -> Result<Vec<(i64, String, Option<String>)>> {
    let rows = c.query(
        "SELECT id, client_cert, client_cert_warned FROM endpoints
         WHERE client_cert IS NOT NULL AND tenant_id <> $1",
        &[&OPERATOR_TENANT],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Marks the certificate announced and raises the event in one transaction; the
/// conditional update makes it once across replicas, whichever sweeps first.
pub fn announce_certificate(
    c: &mut postgres::Client,
    endpoint: i64,
    fingerprint: &str,
    data: Value,
    now: i64,
) -> Result<bool> {
    let mut tx = c.transaction()?;
    let changed = tx.execute(
        "UPDATE endpoints SET client_cert_warned = $2
         WHERE id = $1 AND client_cert_warned IS DISTINCT FROM $2",
        &[&endpoint, &fingerprint],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    emit(
        &mut tx,
        endpoint,
        "herald.endpoint.certificate_expiring",
        data,
        now,
    )?;
    tx.commit()?;
    Ok(true)
}
