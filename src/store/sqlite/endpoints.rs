//! Endpoints (the seeds' "webhooks"): where a tenant's events go.

use std::sync::{Arc, OnceLock};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::domain::{EndpointKind, EndpointStatus, EventFilter, Ordering, PayloadFilter};
use crate::secrets::secret_key::{endpoint_owner, open_endpoint_secret, seal_stored};
use crate::store::endpoint_settings::{self as settings, ColumnType, Value};
use crate::store::fanout::Subscriber;
use crate::store::{
    Circuit, Cursor, Endpoint, EndpointPatch, EndpointSettings, NewEndpoint, Page, Result,
    StoreError,
};

/// The columns Herald keeps beside the settings; `settings::COLUMNS` follow them.
const STATE: &str = "id, tenant_id, kind, disabled_reason, secret, previous_secret, \
    previous_secret_until, failing_since, created_at, updated_at, consecutive_failures, \
    circuit_opened_at, circuit_next_probe";
/// Where the settings start in a row of `columns()`.
const SETTINGS_AT: usize = 13;

/// Every column an `Endpoint` is read from.
fn columns() -> &'static str {
    static ALL: OnceLock<String> = OnceLock::new();
    ALL.get_or_init(|| format!("{STATE}, {}", settings::column_list()))
}

/// A stored secret (sealed with the deployment's secret key for its endpoint) in clear, for
/// column `idx` of a row of endpoint `id` of `tenant`; `None` when it does not open there.
pub(super) fn secret_at(
    r: &Row,
    idx: usize,
    tenant: &str,
    id: i64,
) -> rusqlite::Result<Option<String>> {
    Ok(open_endpoint_secret(r.get(idx)?, tenant, id))
}

fn row(r: &Row) -> rusqlite::Result<Endpoint> {
    let (id, tenant): (i64, String) = (r.get(0)?, r.get(1)?);
    Ok(Endpoint {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        kind: EndpointKind::parse(&r.get::<_, String>(2)?).unwrap_or_default(),
        disabled_reason: r.get(3)?,
        secret: secret_at(r, 4, &tenant, id)?.unwrap_or_default(),
        previous_secret: secret_at(r, 5, &tenant, id)?,
        previous_secret_until: r.get(6)?,
        failing_since: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        circuit: Circuit::new(r.get(11)?, r.get(12)?, r.get(10)?, crate::clock::now_ms()),
        fifo_head: None,
        concurrency: None,
        settings: EndpointSettings::read_sealed(
            |i, ty| value_at(r, SETTINGS_AT + i, ty),
            &endpoint_owner(&tenant, id),
        )?,
    })
}

/// One settings column of a row, by its type.
fn value_at(r: &Row, idx: usize, ty: ColumnType) -> rusqlite::Result<Value> {
    Ok(match ty {
        ColumnType::Text => Value::Text(r.get(idx)?),
        ColumnType::Bigint => Value::Bigint(r.get(idx)?),
        ColumnType::Real => Value::Real(r.get(idx)?),
    })
}

/// The settings' values as SQLite parameters, the `SEALED` ones sealed for `owner`.
fn sql_values(s: &EndpointSettings, owner: &str) -> impl Iterator<Item = SqlValue> {
    s.sealed_columns(owner).into_iter().map(|v| match v {
        Value::Text(t) => t.map_or(SqlValue::Null, SqlValue::Text),
        Value::Bigint(n) => n.map_or(SqlValue::Null, SqlValue::Integer),
        Value::Real(x) => x.map_or(SqlValue::Null, SqlValue::Real),
    })
}

/// `?from, ?from+1, …`: one placeholder per settings column.
fn placeholders(from: usize) -> String {
    (from..from + settings::COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn create(conn: &Connection, tenant_id: &str, new: &NewEndpoint, now: i64) -> Result<Endpoint> {
    let NewEndpoint {
        kind,
        secret,
        settings: values,
    } = new;
    // The id first: the secret and the sealed settings are sealed for it, so nothing is
    // ever written in clear, not even for a moment inside this transaction. AUTOINCREMENT
    // hands out one more than the larger of the sequence and the largest id; the writer
    // thread is the only one inserting, so the id is still free when the row goes in.
    let id: i64 = conn
        .prepare_cached(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'endpoints'), 0),
                        coalesce((SELECT max(id) FROM endpoints), 0)) + 1",
        )?
        .query_row([], |r| r.get(0))?;
    let owner = endpoint_owner(tenant_id, id);
    let fixed = [
        SqlValue::Text(tenant_id.to_owned()),
        SqlValue::Text(kind.as_str().to_owned()),
        SqlValue::Text(seal_stored(secret, &owner)),
        SqlValue::Integer(now),
        SqlValue::Integer(id),
    ];
    conn.execute(
        &format!(
            "INSERT INTO endpoints (tenant_id, kind, secret, created_at, updated_at, id, {})
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, {})",
            settings::column_list(),
            placeholders(6)
        ),
        params_from_iter(fixed.into_iter().chain(sql_values(values, &owner))),
    )?;
    get(conn, tenant_id, id)
}

pub fn get(conn: &Connection, tenant_id: &str, id: i64) -> Result<Endpoint> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM endpoints WHERE tenant_id = ?1 AND id = ?2",
        columns()
    ))?
    .query_row(params![tenant_id, id], row)
    .optional()?
    .ok_or(StoreError::NotFound("webhook"))
    .and_then(|e| with_fifo_head(conn, e))
}

/// Fills in a FIFO endpoint's head: its oldest pending delivery, which the rest wait for.
fn with_fifo_head(conn: &Connection, mut e: Endpoint) -> Result<Endpoint> {
    if e.settings.ordering == Ordering::Fifo {
        e.fifo_head = fifo_head(conn, e.id)?;
    }
    Ok(e)
}

/// The oldest pending delivery of an endpoint (through the `deliveries_fifo` index).
pub fn fifo_head(conn: &Connection, endpoint_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM deliveries WHERE endpoint_id = ?1 AND status = 'pending'
             ORDER BY id LIMIT 1",
        )?
        .query_row([endpoint_id], |r| r.get(0))
        .optional()?)
}

/// Looks an endpoint up by id alone (the engine works across tenants).
pub fn get_any(conn: &Connection, id: i64) -> Result<Endpoint> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM endpoints WHERE id = ?1",
        columns()
    ))?
    .query_row([id], row)
    .optional()?
    .ok_or(StoreError::NotFound("webhook"))
}

pub fn list(
    conn: &Connection,
    tenant_id: &str,
    status: Option<EndpointStatus>,
    cursor: Cursor,
) -> Result<Page<Endpoint>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM endpoints WHERE tenant_id = ?1 AND id < ?2 AND (?3 IS NULL OR status = ?3)
         ORDER BY id DESC LIMIT ?4",
        columns()
    ))?;
    super::page(
        &mut stmt,
        params![
            tenant_id,
            cursor.before.unwrap_or(i64::MAX),
            status.map(|s| s.as_str()),
            cursor.limit as i64 + 1
        ],
        row,
        cursor,
        |e| e.id,
    )
    .and_then(|mut page| {
        page.items = page
            .items
            .into_iter()
            .map(|e| with_fifo_head(conn, e))
            .collect::<Result<_>>()?;
        Ok(page)
    })
}

/// Applies a patch. Status changes carry their consequences in the same transaction:
/// disabling cancels what is pending (nobody will send it), re-activating clears the
/// failure record so auto-disable starts counting afresh.
pub fn update(
    conn: &Connection,
    tenant_id: &str,
    id: i64,
    patch: &EndpointPatch,
    now: i64,
) -> Result<Endpoint> {
    let current = get(conn, tenant_id, id)?;
    let before = current.settings.status;
    let next = patch.clone().apply(current.settings);
    let assignments = settings::COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = ?{}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    // The status column is written with the rest; its consequences follow in `set_status`.
    let fixed = [
        SqlValue::Text(tenant_id.to_owned()),
        SqlValue::Integer(id),
        SqlValue::Integer(now),
    ];
    conn.execute(
        &format!(
            "UPDATE endpoints SET updated_at = ?3, {assignments} WHERE tenant_id = ?1 AND id = ?2"
        ),
        params_from_iter(
            fixed
                .into_iter()
                .chain(sql_values(&next, &endpoint_owner(tenant_id, id))),
        ),
    )?;
    if next.status != before {
        set_status(conn, id, next.status, None, now)?;
    }
    get(conn, tenant_id, id)
}

/// Changes an endpoint's status; used by the API and by the engine (410 Gone, auto-disable).
pub fn set_status(
    conn: &Connection,
    id: i64,
    status: EndpointStatus,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    // A disabled endpoint gets no new deliveries; a re-activated one gets them again.
    super::subscriptions::invalidate();
    conn.execute(
        "UPDATE endpoints SET status = ?2, disabled_reason = ?3, updated_at = ?4,
             failing_since = CASE WHEN ?2 = 'active' THEN NULL ELSE failing_since END,
             consecutive_failures = CASE WHEN ?2 = 'active' THEN 0 ELSE consecutive_failures END,
             circuit_opened_at = CASE WHEN ?2 = 'active' THEN NULL ELSE circuit_opened_at END,
             circuit_next_probe = CASE WHEN ?2 = 'active' THEN NULL ELSE circuit_next_probe END,
             circuit_backoff_ms = CASE WHEN ?2 = 'active' THEN NULL ELSE circuit_backoff_ms END,
             window_start = CASE WHEN ?2 = 'active' THEN NULL ELSE window_start END,
             window_succeeded = CASE WHEN ?2 = 'active' THEN 0 ELSE window_succeeded END,
             window_failed = CASE WHEN ?2 = 'active' THEN 0 ELSE window_failed END,
             window_prev_succeeded = CASE WHEN ?2 = 'active' THEN 0 ELSE window_prev_succeeded END,
             window_prev_failed = CASE WHEN ?2 = 'active' THEN 0 ELSE window_prev_failed END
         WHERE id = ?1",
        params![id, status.as_str(), reason, now],
    )?;
    if status == EndpointStatus::Disabled {
        conn.execute(
            "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, lease_until = NULL,
                 last_error = coalesce(?3, 'endpoint disabled'), updated_at = ?2
             WHERE endpoint_id = ?1 AND status = 'pending'",
            params![id, now, reason.map(|r| format!("endpoint disabled: {r}"))],
        )?;
    }
    Ok(())
}

pub fn delete(conn: &Connection, tenant_id: &str, id: i64) -> Result<()> {
    let n = conn.execute(
        "DELETE FROM endpoints WHERE tenant_id = ?1 AND id = ?2",
        params![tenant_id, id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("webhook"));
    }
    Ok(())
}

/// Seals for their endpoint the secrets and `SEALED` settings still stored in clear (files
/// written before they were sealed, or by a process without the key) or sealed the legacy
/// way (before the seal named its endpoint); returns how many endpoints it changed. Runs
/// on opening, after the migrations: the re-seal step that needs the key they do not have.
/// Each endpoint's row is rewritten in one statement, so a crash leaves it either as it
/// was (and the next open seals it) or sealed.
pub fn reseal(conn: &Connection) -> Result<usize> {
    if crate::secrets::secret_key::installed().is_none() {
        return Ok(0);
    }
    let names = settings::resealed_columns();
    let pending = names
        .iter()
        .map(|c| format!("{c} NOT LIKE 'sealed2:%'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let old: Vec<(i64, String, Vec<Option<String>>)> = conn
        .prepare(&format!(
            "SELECT id, tenant_id, {} FROM endpoints WHERE {pending}",
            names.join(", ")
        ))?
        .query_map([], |r| {
            let values = (0..names.len())
                .map(|i| r.get(2 + i))
                .collect::<rusqlite::Result<_>>()?;
            Ok((r.get(0)?, r.get(1)?, values))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let assignments = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} = ?{}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let mut changed = 0;
    for (id, tenant, values) in &old {
        let Some(next) = settings::resealed(values, &endpoint_owner(tenant, *id)) else {
            continue;
        };
        let params = std::iter::once(SqlValue::Integer(*id)).chain(
            next.into_iter()
                .map(|v| v.map_or(SqlValue::Null, SqlValue::Text)),
        );
        conn.execute(
            &format!("UPDATE endpoints SET {assignments} WHERE id = ?1"),
            params_from_iter(params),
        )?;
        changed += 1;
    }
    Ok(changed)
}

/// Installs a new secret; the old one keeps signing beside it until `grace_until`.
pub fn rotate_secret(
    conn: &Connection,
    tenant_id: &str,
    id: i64,
    new_secret: &str,
    grace_until: i64,
    now: i64,
) -> Result<Endpoint> {
    get(conn, tenant_id, id)?;
    conn.execute(
        "UPDATE endpoints SET previous_secret = secret, previous_secret_until = ?4, secret = ?3, updated_at = ?5
         WHERE tenant_id = ?1 AND id = ?2",
        params![
            tenant_id,
            id,
            seal_stored(new_secret, &endpoint_owner(tenant_id, id)),
            grace_until,
            now
        ],
    )?;
    get(conn, tenant_id, id)
}

/// The endpoints an event of this tenant fans out to: every endpoint that is not disabled.
/// Paused endpoints get their deliveries too; they wait, pending, until the endpoint resumes.
/// Payload filters are compiled here, once per fill of the writer's cache (`subscriptions`).
pub fn subscribers(conn: &Connection, tenant_id: &str) -> Result<Vec<Subscriber>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, events, payload_filter FROM endpoints
         WHERE tenant_id = ?1 AND status != 'disabled' ORDER BY id",
    )?;
    let rows = stmt.query_map([tenant_id], |r| {
        let events: String = r.get(1)?;
        let payload_filter: Option<String> = r.get(2)?;
        Ok(Subscriber {
            endpoint_id: r.get(0)?,
            events: EventFilter::from_stored(serde_json::from_str(&events).unwrap_or_default()),
            payload_filter: payload_filter.map(|f| Arc::new(PayloadFilter::from_stored(&f))),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Endpoints of every tenant that need a person's attention: disabled, or failing since
/// their last success. Newest problems first, at most `limit`.
pub fn troubled(conn: &Connection, limit: usize) -> Result<Vec<Endpoint>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM endpoints WHERE status = 'disabled' OR failing_since IS NOT NULL
             ORDER BY coalesce(failing_since, updated_at) DESC LIMIT ?1",
        )?
        .query_map([limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter().map(|id| get_any(conn, id)).collect()
}
