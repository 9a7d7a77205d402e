//! Endpoints (the seeds' "webhooks"): where a tenant's events go.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::config::{format_schedule, parse_schedule};
use crate::domain::{EndpointKind, EndpointStatus, EventFilter, Ordering};
use crate::secrets::secret_key::{open_stored, seal_stored};
use crate::store::{
    Circuit, Cursor, Endpoint, EndpointPatch, NewEndpoint, Page, Result, StoreError,
};
use crate::wire::signing::{parse_schemes, Scheme};

const COLUMNS: &str = "id, tenant_id, url, events, description, headers, signature, status, \
    disabled_reason, secret, previous_secret, previous_secret_until, failing_since, created_at, updated_at, rate_limit, consecutive_failures, circuit_opened_at, circuit_next_probe, ordering, retry_schedule, request_timeout_ms, kind";

/// A stored secret (sealed with the deployment's secret key) in clear, for column `idx`.
pub(super) fn secret_at(r: &Row, idx: usize) -> rusqlite::Result<Option<String>> {
    let stored: Option<String> = r.get(idx)?;
    stored.map(|s| open_stored(&s)).transpose().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

fn row(r: &Row) -> rusqlite::Result<Endpoint> {
    let events: String = r.get(3)?;
    let headers: String = r.get(5)?;
    let signature: Option<String> = r.get(6)?;
    let status: String = r.get(7)?;
    Ok(Endpoint {
        id: r.get(0)?,
        kind: EndpointKind::parse(&r.get::<_, String>(22)?).unwrap_or_default(),
        tenant_id: r.get(1)?,
        url: r.get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        description: r.get(4)?,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        signature: signature.and_then(|s| parse_schemes(&s).ok()),
        status: EndpointStatus::parse(&status).unwrap_or(EndpointStatus::Disabled),
        disabled_reason: r.get(8)?,
        secret: secret_at(r, 9)?.unwrap_or_default(),
        previous_secret: secret_at(r, 10)?,
        previous_secret_until: r.get(11)?,
        failing_since: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        rate_limit: r.get(15)?,
        circuit: Circuit::new(r.get(17)?, r.get(18)?, r.get(16)?, crate::clock::now_ms()),
        ordering: Ordering::parse(&r.get::<_, String>(19)?).unwrap_or_default(),
        fifo_head: None,
        concurrency: None,
        retry_schedule: r
            .get::<_, Option<String>>(20)?
            .and_then(|s| parse_schedule(&s).ok()),
        request_timeout: r
            .get::<_, Option<i64>>(21)?
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
    })
}

fn schemes_text(s: &Option<Vec<Scheme>>) -> Option<String> {
    s.as_ref()
        .map(|v| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
}

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub fn create(conn: &Connection, tenant_id: &str, new: &NewEndpoint, now: i64) -> Result<Endpoint> {
    conn.execute(
        "INSERT INTO endpoints (tenant_id, url, events, description, headers, signature, status, secret, created_at, updated_at, rate_limit, ordering,
             retry_schedule, request_timeout_ms, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            tenant_id,
            new.url.as_ref().map_or("", |u| u.as_str()),
            json(&new.filter.patterns()),
            new.description,
            json(new.headers.map()),
            schemes_text(&new.signature),
            new.status.as_str(),
            seal_stored(&new.secret),
            now,
            new.rate_limit,
            new.ordering.as_str(),
            new.retry_schedule.as_deref().map(format_schedule),
            new.request_timeout.map(|d| d.as_millis() as i64),
            new.kind.as_str()
        ],
    )?;
    get(conn, tenant_id, conn.last_insert_rowid())
}

pub fn get(conn: &Connection, tenant_id: &str, id: i64) -> Result<Endpoint> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM endpoints WHERE tenant_id = ?1 AND id = ?2"
    ))?
    .query_row(params![tenant_id, id], row)
    .optional()?
    .ok_or(StoreError::NotFound("webhook"))
    .and_then(|e| with_fifo_head(conn, e))
}

/// Fills in a FIFO endpoint's head: its oldest pending delivery, which the rest wait for.
fn with_fifo_head(conn: &Connection, mut e: Endpoint) -> Result<Endpoint> {
    if e.ordering == Ordering::Fifo {
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
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM endpoints WHERE id = ?1"))?
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
        "SELECT {COLUMNS} FROM endpoints WHERE tenant_id = ?1 AND id < ?2 AND (?3 IS NULL OR status = ?3)
         ORDER BY id DESC LIMIT ?4"
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
    let signature = match &patch.signature {
        Some(s) => schemes_text(s),
        None => schemes_text(&current.signature),
    };
    conn.execute(
        "UPDATE endpoints SET url = ?3, events = ?4, description = ?5, headers = ?6, signature = ?7, updated_at = ?8,
             rate_limit = ?9, ordering = ?10, retry_schedule = ?11, request_timeout_ms = ?12
         WHERE tenant_id = ?1 AND id = ?2",
        params![
            tenant_id,
            id,
            patch.url.as_ref().map_or(current.url.as_str(), |u| u.as_str()),
            patch.filter.as_ref().map_or_else(|| json(&current.events), |f| json(&f.patterns())),
            patch.description.as_ref().unwrap_or(&current.description),
            patch.headers.as_ref().map_or_else(|| json(&current.headers), |h| json(h.map())),
            signature,
            now,
            patch.rate_limit.unwrap_or(current.rate_limit),
            patch.ordering.unwrap_or(current.ordering).as_str(),
            patch
                .retry_schedule
                .clone()
                .unwrap_or(current.retry_schedule)
                .as_deref()
                .map(format_schedule),
            patch
                .request_timeout
                .unwrap_or(current.request_timeout)
                .map(|d| d.as_millis() as i64)
        ],
    )?;
    if let Some(status) = patch.status {
        if status != current.status {
            set_status(conn, id, status, None, now)?;
        }
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
             circuit_backoff_ms = CASE WHEN ?2 = 'active' THEN NULL ELSE circuit_backoff_ms END
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

/// Seals the secrets still stored in clear (files written before secrets were sealed, or
/// by a process without the key); returns how many endpoints it changed.
pub fn seal_cleartext(conn: &Connection) -> Result<usize> {
    if crate::secrets::secret_key::installed().is_none() {
        return Ok(0);
    }
    let clear: Vec<(i64, String, Option<String>)> = conn
        .prepare(
            "SELECT id, secret, previous_secret FROM endpoints
             WHERE secret NOT LIKE 'sealed1:%' OR previous_secret NOT LIKE 'sealed1:%'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let seal = |s: &str| {
        if crate::secrets::secret_key::is_sealed(s) {
            s.to_owned()
        } else {
            seal_stored(s)
        }
    };
    for (id, secret, previous) in &clear {
        conn.execute(
            "UPDATE endpoints SET secret = ?2, previous_secret = ?3 WHERE id = ?1",
            params![id, seal(secret), previous.as_deref().map(seal)],
        )?;
    }
    Ok(clear.len())
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
        params![tenant_id, id, seal_stored(new_secret), grace_until, now],
    )?;
    get(conn, tenant_id, id)
}

/// The endpoints an event of this tenant fans out to: every endpoint that is not disabled.
/// Paused endpoints get their deliveries too; they wait, pending, until the endpoint resumes.
pub fn subscribers(conn: &Connection, tenant_id: &str) -> Result<Vec<(i64, EventFilter)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, events FROM endpoints WHERE tenant_id = ?1 AND status != 'disabled' ORDER BY id",
    )?;
    let rows = stmt.query_map([tenant_id], |r| {
        let events: String = r.get(1)?;
        Ok((
            r.get::<_, i64>(0)?,
            EventFilter::from_stored(serde_json::from_str(&events).unwrap_or_default()),
        ))
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
