//! Tenants and their API keys.
//!
//! The write functions here take the writer's connection (`writer.rs`): they run inside a
//! group commit, and the caller is answered only after that COMMIT, so a tenant or key
//! Herald acknowledged survives kill -9. Reads take a pooled read-only connection.
//! Keys are stored as hashes only; `active_key` is the lookup every request with a
//! tenant key makes.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::store::{ApiKey, Cursor, NewKey, Page, Result, StoreError, Tenant};

fn tenant_row(r: &Row) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        rowid: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
    })
}

const TENANT_COLUMNS: &str = "rowid, id, name, created_at";

pub fn create(conn: &Connection, id: &str, name: &str, now: i64) -> Result<Tenant> {
    let inserted = conn.execute(
        // DO NOTHING and a row count, not a constraint error: a duplicate is told apart
        // from any other failure without parsing SQLite's error text.
        "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
        params![id, name, now],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "tenant `{id}` already exists"
        )));
    }
    get(conn, id)
}

pub fn get(conn: &Connection, id: &str) -> Result<Tenant> {
    conn.query_row(
        &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
        [id],
        tenant_row,
    )
    .optional()?
    .ok_or(StoreError::NotFound("tenant"))
}

pub fn exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tenants WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Pages by rowid (creation order), not by id: ids are names a person chose, so a cursor
/// on them would not be "older than this".
pub fn list(conn: &Connection, cursor: Cursor) -> Result<Page<Tenant>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE rowid < ?1 ORDER BY rowid DESC LIMIT ?2"
    ))?;
    super::page(
        &mut stmt,
        params![cursor.before.unwrap_or(i64::MAX), cursor.limit as i64 + 1],
        tenant_row,
        cursor,
        |t| t.rowid,
    )
}

pub fn rename(conn: &Connection, id: &str, name: &str) -> Result<Tenant> {
    let n = conn.execute(
        "UPDATE tenants SET name = ?2 WHERE id = ?1",
        params![id, name],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("tenant"));
    }
    get(conn, id)
}

/// Deletes a tenant and, by cascade, its keys, endpoints, events and deliveries.
pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    // The default tenant is what the admin addresses when no tenant is named (and what
    // single-tenant deployments live in); deleting it would strand them.
    if id == "default" {
        return Err(StoreError::Conflict(
            "the default tenant cannot be deleted".into(),
        ));
    }
    let n = conn.execute("DELETE FROM tenants WHERE id = ?1", [id])?;
    if n == 0 {
        return Err(StoreError::NotFound("tenant"));
    }
    Ok(())
}

fn key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

const KEY_COLUMNS: &str = "id, tenant_id, name, prefix, created_at, revoked_at";

pub fn create_key(conn: &Connection, new: &NewKey, now: i64) -> Result<ApiKey> {
    // Checked first so a missing tenant answers 404 rather than surfacing as a foreign-key
    // failure from inside the batch.
    if !exists(conn, &new.tenant_id)? {
        return Err(StoreError::NotFound("tenant"));
    }
    conn.execute(
        "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![new.tenant_id, new.name, new.prefix, new.key_hash, now],
    )?;
    // last_insert_rowid is this connection's: safe because the writer connection runs one
    // job at a time.
    get_key(conn, &new.tenant_id, conn.last_insert_rowid())
}

/// Scoped by tenant as well as id: key ids are global, and one tenant must not read (or
/// learn the existence of) another's key by guessing ids.
pub fn get_key(conn: &Connection, tenant_id: &str, id: i64) -> Result<ApiKey> {
    conn.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 AND id = ?2"),
        params![tenant_id, id],
        key_row,
    )
    .optional()?
    .ok_or(StoreError::NotFound("key"))
}

pub fn list_keys(conn: &Connection, tenant_id: &str, cursor: Cursor) -> Result<Page<ApiKey>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
    ))?;
    super::page(
        &mut stmt,
        params![
            tenant_id,
            cursor.before.unwrap_or(i64::MAX),
            cursor.limit as i64 + 1
        ],
        key_row,
        cursor,
        |k| k.id,
    )
}

/// Revokes a key; revoking twice keeps the first revocation time.
pub fn revoke_key(conn: &Connection, tenant_id: &str, id: i64, now: i64) -> Result<ApiKey> {
    // Read first so a key of another tenant answers 404 like a missing one.
    get_key(conn, tenant_id, id)?;
    conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3) WHERE tenant_id = ?1 AND id = ?2",
        params![tenant_id, id, now],
    )?;
    get_key(conn, tenant_id, id)
}

/// The key with this hash, if it exists and is not revoked. `key_hash` is UNIQUE, so this
/// is one index probe per authenticated request.
pub fn active_key(conn: &Connection, key_hash: &str) -> Result<Option<ApiKey>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"
    ))?;
    Ok(stmt.query_row([key_hash], key_row).optional()?)
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
