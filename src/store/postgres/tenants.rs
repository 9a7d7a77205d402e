//! Tenants and their API keys, on PostgreSQL.
//!
//! The same operations as `sqlite/tenants.rs`, over any `GenericClient` so a caller can run
//! them inside its own transaction. A write is answered only after its transaction
//! commits, and PostgreSQL's commit is durable (WAL flushed) unless the operator turned
//! `synchronous_commit` off: that is what makes an acknowledged tenant or key survive
//! kill -9 of Herald. Several replicas may share the database, so what the SQLite writer
//! serialises for free is made safe here by statements and locks.

use postgres::{GenericClient, Row};

use super::subscriptions;
use crate::store::{ApiKey, Cursor, NewKey, Page, Result, StoreError, Tenant};

fn tenant_row(r: &Row) -> Result<Tenant> {
    Ok(Tenant {
        rowid: r.try_get(0)?,
        id: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: r.try_get(3)?,
    })
}

/// `rowid` is an identity column here (SQLite's implicit rowid): the order tenants were
/// created in, which the list pages by.
const TENANT_COLUMNS: &str = "rowid, id, name, created_at";

pub fn create(c: &mut impl GenericClient, id: &str, name: &str, now: i64) -> Result<Tenant> {
    let inserted = c.execute(
        // DO NOTHING and a row count: two replicas creating the same id race safely, and a
        // duplicate is a 409, not an aborted transaction (a unique violation would poison
        // the caller's transaction on PostgreSQL).
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        &[&id, &name, &now],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "tenant `{id}` already exists"
        )));
    }
    get(c, id)
}

pub fn get(c: &mut impl GenericClient, id: &str) -> Result<Tenant> {
    c.query_opt(
        &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"),
        &[&id],
    )?
    .map(|r| tenant_row(&r))
    .transpose()?
    .ok_or(StoreError::NotFound("tenant"))
}

pub fn exists(c: &mut impl GenericClient, id: &str) -> Result<bool> {
    Ok(c.query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&id])?
        .is_some())
}

pub fn list(c: &mut impl GenericClient, cursor: Cursor) -> Result<Page<Tenant>> {
    let rows = c.query(
        &format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE rowid < $1 ORDER BY rowid DESC LIMIT $2"
        ),
        &[
            &cursor.before.unwrap_or(i64::MAX),
            &super::limit_plus_one(cursor),
        ],
    )?;
    super::page(rows, tenant_row, cursor, |t| t.rowid)
}

pub fn rename(c: &mut impl GenericClient, id: &str, name: &str) -> Result<Tenant> {
    let n = c.execute("UPDATE tenants SET name = $2 WHERE id = $1", &[&id, &name])?;
    if n == 0 {
        return Err(StoreError::NotFound("tenant"));
    }
    get(c, id)
}

/// Deletes a tenant and, by cascade, its keys, endpoints, events and deliveries. It holds
/// the tenant's subscriptions lock, so no publish is halfway through inserting rows that
/// point at what the cascade removes.
pub fn delete(c: &mut impl GenericClient, id: &str) -> Result<()> {
    // The default tenant is what the admin addresses when no tenant is named.
    if id == "default" {
        return Err(StoreError::Conflict(
            "the default tenant cannot be deleted".into(),
        ));
    }
    // Before the DELETE, in the order a publish takes them (subscriptions lock, then
    // rows): the cascade waits for publishes under way instead of deadlocking with them.
    subscriptions::lock_exclusive(c, id)?;
    let n = c.execute("DELETE FROM tenants WHERE id = $1", &[&id])?;
    if n == 0 {
        return Err(StoreError::NotFound("tenant"));
    }
    Ok(())
}

fn key_row(r: &Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        name: r.try_get(2)?,
        prefix: r.try_get(3)?,
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

const KEY_COLUMNS: &str = "id, tenant_id, name, prefix, created_at, revoked_at";

pub fn create_key(c: &mut impl GenericClient, new: &NewKey, now: i64) -> Result<ApiKey> {
    // A 404 rather than a foreign-key violation, which would abort the transaction.
    if !exists(c, &new.tenant_id)? {
        return Err(StoreError::NotFound("tenant"));
    }
    // RETURNING: the row as stored in the same round trip, without relying on a
    // "last id" that another replica's insert could race.
    let row = c.query_one(
        &format!(
            "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"
        ),
        &[&new.tenant_id, &new.name, &new.prefix, &new.key_hash, &now],
    )?;
    key_row(&row)
}

/// Scoped by tenant as well as id: key ids are global, and one tenant must not see
/// another's key by guessing ids.
pub fn get_key(c: &mut impl GenericClient, tenant_id: &str, id: i64) -> Result<ApiKey> {
    c.query_opt(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"),
        &[&tenant_id, &id],
    )?
    .map(|r| key_row(&r))
    .transpose()?
    .ok_or(StoreError::NotFound("key"))
}

pub fn list_keys(
    c: &mut impl GenericClient,
    tenant_id: &str,
    cursor: Cursor,
) -> Result<Page<ApiKey>> {
    let rows = c.query(
        &format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id < $2
             ORDER BY id DESC LIMIT $3"
        ),
        &[
            &tenant_id,
            &cursor.before.unwrap_or(i64::MAX),
            &super::limit_plus_one(cursor),
        ],
    )?;
    super::page(rows, key_row, cursor, |k| k.id)
}

/// Revokes a key; revoking twice keeps the first revocation time.
pub fn revoke_key(
    c: &mut impl GenericClient,
    tenant_id: &str,
    id: i64,
    now: i64,
) -> Result<ApiKey> {
    // Read first so another tenant's key answers 404 like a missing one.
    get_key(c, tenant_id, id)?;
    c.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2",
        &[&tenant_id, &id, &now],
    )?;
    get_key(c, tenant_id, id)
}

/// The key with this hash, if it exists and is not revoked.
pub fn active_key(c: &mut impl GenericClient, key_hash: &str) -> Result<Option<ApiKey>> {
    // Every request with a tenant key asks this: one round trip, not a prepare and a run.
    c.query_typed_opt(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"),
        &[(&key_hash, postgres::types::Type::TEXT)],
    )?
    .map(|r| key_row(&r))
    .transpose()
}

/// Whether a portal session's key still opens the portal (revoking a key ends its sessions).
pub fn key_is_active(c: &mut impl GenericClient, tenant_id: &str, key_id: i64) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM api_keys WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        &[&tenant_id, &key_id],
    )?
    .is_some())
}
