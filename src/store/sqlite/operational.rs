//! Herald's own events: `herald.endpoint.circuit_opened`, `herald.endpoint.recovered`,
//! `herald.endpoint.disabled` and `herald.delivery.failed`, published through the normal
//! delivery path (signed, retried, in the history) in the same transaction as the attempt
//! record that caused them.
//!
//! Each goes to the endpoint's own tenant, where endpoints that subscribe to `herald.*` (or
//! to the exact name) get it (`*` does not: a product opts in to these; a tenant with no
//! such endpoint does not store it at all), and to the
//! operator's endpoint in the reserved `_herald` tenant when `operator_webhook` is set. An
//! event about Herald's own events is never emitted (a failing operator endpoint must not
//! feed itself).

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use super::{events, subscriptions, tenants};
use crate::store::Result;

use crate::store::OPERATOR_TENANT;

/// Publishes `kind` about `endpoint` to its tenant and to the operator.
pub fn emit(conn: &Connection, endpoint: i64, kind: &str, data: Value, now: i64) -> Result<()> {
    let Some((tenant, url)) = conn
        .prepare_cached("SELECT tenant_id, url FROM endpoints WHERE id = ?1")?
        .query_row([endpoint], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?
    else {
        return Ok(());
    };
    if tenant == OPERATOR_TENANT {
        return Ok(());
    }
    let event =
        || crate::store::operational_event(kind, &tenant, endpoint, &url, data.clone(), now);
    // Stored only where an endpoint will receive it: the event log of a tenant that does
    // not subscribe stays free of Herald's own traffic.
    if subscribed(conn, &tenant, kind)? {
        events::publish(conn, &tenant, vec![event()], now)?;
    }
    if tenants::exists(conn, OPERATOR_TENANT)? && subscribed(conn, OPERATOR_TENANT, kind)? {
        events::publish(conn, OPERATOR_TENANT, vec![event()], now)?;
    }
    tracing::info!(endpoint, kind, "operational event");
    Ok(())
}

fn subscribed(conn: &Connection, tenant: &str, kind: &str) -> Result<bool> {
    Ok(subscriptions::of(conn, tenant)?
        .iter()
        .any(|s| s.events.matches(kind)))
}

/// Endpoints with a client certificate (`Outbox::client_certificates`).
pub fn client_certificates(conn: &Connection) -> Result<Vec<(i64, String, Option<String>)>> {
    let rows = conn
        .prepare_cached(
            "SELECT id, client_cert, client_cert_warned FROM endpoints
             WHERE client_cert IS NOT NULL AND tenant_id != ?1",
        )?
        .query_map([OPERATOR_TENANT], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Marks the certificate announced and raises the event, in one transaction: a crash
/// between them cannot announce it twice or lose the announcement.
pub fn announce_certificate(
    conn: &Connection,
    endpoint: i64,
    fingerprint: &str,
    data: Value,
    now: i64,
) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE endpoints SET client_cert_warned = ?2
         WHERE id = ?1 AND client_cert_warned IS NOT ?2",
        rusqlite::params![endpoint, fingerprint],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    emit(
        conn,
        endpoint,
        "herald.endpoint.certificate_expiring",
        data,
        now,
    )?;
    Ok(true)
}
