//! The few queries only the admin pages and the portal need.

use rusqlite::{params, Connection, OptionalExtension};

use super::endpoints::{self, Endpoint};
use super::Result;

/// The key a portal login names: its id and tenant, if it exists and is not revoked.
pub fn key_for_hash(conn: &Connection, key_hash: &str) -> Result<Option<(i64, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, tenant_id FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
        )?
        .query_row([key_hash], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Whether a portal session's key still opens the portal (revoking a key ends its sessions).
pub fn key_is_active(conn: &Connection, tenant_id: &str, key_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM api_keys WHERE tenant_id = ?1 AND id = ?2 AND revoked_at IS NULL",
        )?
        .query_row(params![tenant_id, key_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Endpoints of every tenant that need a person's attention: disabled, or failing since
/// their last success. Newest problems first, at most `limit`.
pub fn troubled_endpoints(conn: &Connection, limit: usize) -> Result<Vec<Endpoint>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM endpoints WHERE status = 'disabled' OR failing_since IS NOT NULL
             ORDER BY coalesce(failing_since, updated_at) DESC LIMIT ?1",
        )?
        .query_map([limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter()
        .map(|id| endpoints::get_any(conn, id))
        .collect()
}
