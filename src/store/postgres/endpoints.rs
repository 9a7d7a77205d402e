//! Endpoints (the seeds' "webhooks"): where a tenant's events go.

use std::time::Duration;

use postgres::{GenericClient, Row};
use serde::Serialize;

use super::subscriptions;
use crate::config::{format_schedule, parse_schedule};
use crate::domain::{EndpointKind, EndpointStatus, Ordering};
use crate::secrets::secret_key::{open_stored, seal_stored};
use crate::store::{
    Circuit, Cursor, Endpoint, EndpointPatch, NewEndpoint, Page, Result, StoreError,
};
use crate::wire::signing::{parse_schemes, Scheme};

const COLUMNS: &str = "id, tenant_id, url, events, description, headers, signature, status, \
    disabled_reason, secret, previous_secret, previous_secret_until, failing_since, created_at, \
    updated_at, rate_limit, consecutive_failures::bigint, circuit_opened_at, circuit_next_probe, \
    ordering, retry_schedule, request_timeout_ms, kind";

/// A stored secret (sealed with the deployment's secret key) in clear, for column `idx`.
pub(super) fn secret_at(r: &Row, idx: usize) -> Result<Option<String>> {
    let stored: Option<String> = r.try_get(idx)?;
    stored
        .map(|s| open_stored(&s))
        .transpose()
        .map_err(|e| StoreError::Backend(format!("an endpoint secret cannot be opened: {e}")))
}

fn row(r: &Row) -> Result<Endpoint> {
    let events: String = r.try_get(3)?;
    let headers: String = r.try_get(5)?;
    let signature: Option<String> = r.try_get(6)?;
    let status: String = r.try_get(7)?;
    Ok(Endpoint {
        id: r.try_get(0)?,
        kind: EndpointKind::parse(&r.try_get::<_, String>(22)?).unwrap_or_default(),
        tenant_id: r.try_get(1)?,
        url: r.try_get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        description: r.try_get(4)?,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        signature: signature.and_then(|s| parse_schemes(&s).ok()),
        status: EndpointStatus::parse(&status).unwrap_or(EndpointStatus::Disabled),
        disabled_reason: r.try_get(8)?,
        secret: secret_at(r, 9)?.unwrap_or_default(),
        previous_secret: secret_at(r, 10)?,
        previous_secret_until: r.try_get(11)?,
        failing_since: r.try_get(12)?,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
        rate_limit: r.try_get(15)?,
        circuit: Circuit::new(
            r.try_get(17)?,
            r.try_get(18)?,
            r.try_get(16)?,
            crate::clock::now_ms(),
        ),
        ordering: Ordering::parse(&r.try_get::<_, String>(19)?).unwrap_or_default(),
        fifo_head: None,
        concurrency: None,
        retry_schedule: r
            .try_get::<_, Option<String>>(20)?
            .and_then(|s| parse_schedule(&s).ok()),
        request_timeout: r
            .try_get::<_, Option<i64>>(21)?
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

pub fn create(
    c: &mut impl GenericClient,
    tenant_id: &str,
    new: &NewEndpoint,
    now: i64,
) -> Result<Endpoint> {
    let id: i64 = c
        .query_one(
            "INSERT INTO endpoints (tenant_id, url, events, description, headers, signature, status,
                 secret, created_at, updated_at, rate_limit, ordering, retry_schedule,
                 request_timeout_ms, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14)
             RETURNING id",
            &[
                &tenant_id,
                &new.url.as_ref().map_or("", |u| u.as_str()),
                &json(&new.filter.patterns()),
                &new.description,
                &json(new.headers.map()),
                &schemes_text(&new.signature),
                &new.status.as_str(),
                &seal_stored(&new.secret),
                &now,
                &new.rate_limit,
                &new.ordering.as_str(),
                &new.retry_schedule.as_deref().map(format_schedule),
                &new.request_timeout.map(|d| d.as_millis() as i64),
                &new.kind.as_str(),
            ],
        )?
        .try_get(0)?;
    get(c, tenant_id, id)
}

pub fn get(c: &mut impl GenericClient, tenant_id: &str, id: i64) -> Result<Endpoint> {
    let e = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM endpoints WHERE tenant_id = $1 AND id = $2"),
            &[&tenant_id, &id],
        )?
        .map(|r| row(&r))
        .transpose()?
        .ok_or(StoreError::NotFound("webhook"))?;
    with_fifo_head(c, e)
}

/// Fills in a FIFO endpoint's head: its oldest pending delivery, which the rest wait for.
fn with_fifo_head(c: &mut impl GenericClient, mut e: Endpoint) -> Result<Endpoint> {
    if e.ordering == Ordering::Fifo {
        e.fifo_head = fifo_head(c, e.id)?;
    }
    Ok(e)
}

/// The oldest pending delivery of an endpoint (through the `deliveries_fifo` index).
pub fn fifo_head(c: &mut impl GenericClient, endpoint_id: i64) -> Result<Option<i64>> {
    c.query_opt(
        "SELECT id FROM deliveries WHERE endpoint_id = $1 AND status = 'pending'
         ORDER BY id LIMIT 1",
        &[&endpoint_id],
    )?
    .map(|r| r.try_get(0))
    .transpose()
    .map_err(Into::into)
}

pub fn list(
    c: &mut impl GenericClient,
    tenant_id: &str,
    status: Option<EndpointStatus>,
    cursor: Cursor,
) -> Result<Page<Endpoint>> {
    let rows = c.query(
        &format!(
            "SELECT {COLUMNS} FROM endpoints
             WHERE tenant_id = $1 AND id < $2 AND ($3::text IS NULL OR status = $3)
             ORDER BY id DESC LIMIT $4"
        ),
        &[
            &tenant_id,
            &cursor.before.unwrap_or(i64::MAX),
            &status.map(|s| s.as_str()),
            &super::limit_plus_one(cursor),
        ],
    )?;
    let mut page = super::page(rows, row, cursor, |e| e.id)?;
    page.items = page
        .items
        .into_iter()
        .map(|e| with_fifo_head(c, e))
        .collect::<Result<_>>()?;
    Ok(page)
}

/// Applies a patch. Status changes carry their consequences in the same transaction:
/// disabling cancels what is pending (nobody will send it), re-activating clears the
/// failure record so auto-disable starts counting afresh.
pub fn update(
    c: &mut impl GenericClient,
    tenant_id: &str,
    id: i64,
    patch: &EndpointPatch,
    now: i64,
) -> Result<Endpoint> {
    // A new filter or status must not interleave with a publish of this tenant (see
    // `subscriptions`); the lock also orders concurrent patches of one endpoint, so each
    // reads the other's result before merging its own.
    subscriptions::lock_exclusive(c, tenant_id)?;
    let current = get(c, tenant_id, id)?;
    // Rows are locked deliveries first, then the endpoint, in the order the engine's
    // attempt records lock them, so the two never wait for each other in a cycle.
    let status_change = patch.status.filter(|s| *s != current.status);
    if let Some(status @ EndpointStatus::Disabled) = status_change {
        set_status(c, id, status, None, now)?;
    }
    let signature = match &patch.signature {
        Some(s) => schemes_text(s),
        None => schemes_text(&current.signature),
    };
    c.execute(
        "UPDATE endpoints SET url = $3, events = $4, description = $5, headers = $6, signature = $7,
             updated_at = $8, rate_limit = $9, ordering = $10, retry_schedule = $11,
             request_timeout_ms = $12
         WHERE tenant_id = $1 AND id = $2",
        &[
            &tenant_id,
            &id,
            &patch
                .url
                .as_ref()
                .map_or(current.url.as_str(), |u| u.as_str()),
            &patch
                .filter
                .as_ref()
                .map_or_else(|| json(&current.events), |f| json(&f.patterns())),
            patch.description.as_ref().unwrap_or(&current.description),
            &patch
                .headers
                .as_ref()
                .map_or_else(|| json(&current.headers), |h| json(h.map())),
            &signature,
            &now,
            &patch.rate_limit.unwrap_or(current.rate_limit),
            &patch.ordering.unwrap_or(current.ordering).as_str(),
            &patch
                .retry_schedule
                .clone()
                .unwrap_or(current.retry_schedule)
                .as_deref()
                .map(format_schedule),
            &patch
                .request_timeout
                .unwrap_or(current.request_timeout)
                .map(|d| d.as_millis() as i64),
        ],
    )?;
    if let Some(status) = status_change.filter(|s| *s != EndpointStatus::Disabled) {
        set_status(c, id, status, None, now)?;
    }
    get(c, tenant_id, id)
}

/// Changes an endpoint's status, in the caller's transaction, which holds the tenant's
/// subscriptions lock (`update`), so no publish under way adds a pending delivery after the
/// cancellation. Disabling cancels what is pending; activating (a resume, a re-enable)
/// clears the failure record and wakes every replica's dispatcher, since the endpoint's
/// pending deliveries are due again. (The engine's auto-disable, `outbox.rs`, calls it too,
/// once it has taken that lock.)
pub(super) fn set_status(
    c: &mut impl GenericClient,
    id: i64,
    status: EndpointStatus,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    if status == EndpointStatus::Disabled {
        // Deliveries first, then the endpoint: the engine's lock order (see `update`).
        c.execute(
            "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL,
                 lease_until = NULL, lease_owner = NULL,
                 last_error = coalesce($3::text, 'endpoint disabled'), updated_at = $2
             WHERE endpoint_id = $1 AND status = 'pending'",
            &[
                &id,
                &now,
                &reason.map(|r| format!("endpoint disabled: {r}")),
            ],
        )?;
    }
    c.execute(
        "UPDATE endpoints SET status = $2, disabled_reason = $3, updated_at = $4,
             failing_since = CASE WHEN $2 = 'active' THEN NULL ELSE failing_since END,
             consecutive_failures = CASE WHEN $2 = 'active' THEN 0 ELSE consecutive_failures END,
             circuit_opened_at = CASE WHEN $2 = 'active' THEN NULL ELSE circuit_opened_at END,
             circuit_next_probe = CASE WHEN $2 = 'active' THEN NULL ELSE circuit_next_probe END,
             circuit_backoff_ms = CASE WHEN $2 = 'active' THEN NULL ELSE circuit_backoff_ms END
         WHERE id = $1",
        &[&id, &status.as_str(), &reason, &now],
    )?;
    if status == EndpointStatus::Active {
        super::notify_due(c)?;
    }
    Ok(())
}

/// Deletes an endpoint with its deliveries (by cascade), under the tenant's subscriptions
/// lock: a publish under way must not be left inserting a delivery for it.
pub fn delete(c: &mut impl GenericClient, tenant_id: &str, id: i64) -> Result<()> {
    subscriptions::lock_exclusive(c, tenant_id)?;
    // Its deliveries first (the cascade would lock the endpoint, then them): the engine's
    // lock order, see `update`.
    c.execute(
        "DELETE FROM deliveries WHERE tenant_id = $1 AND endpoint_id = $2",
        &[&tenant_id, &id],
    )?;
    let n = c.execute(
        "DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2",
        &[&tenant_id, &id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("webhook"));
    }
    Ok(())
}

/// Installs a new secret; the old one keeps signing beside it until `grace_until`.
pub fn rotate_secret(
    c: &mut impl GenericClient,
    tenant_id: &str,
    id: i64,
    new_secret: &str,
    grace_until: i64,
    now: i64,
) -> Result<Endpoint> {
    // `previous_secret = secret` reads the row under the UPDATE's lock, so two rotations
    // at once chain (the second keeps the first's secret as previous), as on SQLite.
    let n = c.execute(
        "UPDATE endpoints SET previous_secret = secret, previous_secret_until = $4, secret = $3,
             updated_at = $5
         WHERE tenant_id = $1 AND id = $2",
        &[
            &tenant_id,
            &id,
            &seal_stored(new_secret),
            &grace_until,
            &now,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("webhook"));
    }
    get(c, tenant_id, id)
}

/// Endpoints of every tenant that need a person's attention: disabled, or failing since
/// their last success. Newest problems first, at most `limit`.
pub fn troubled(c: &mut impl GenericClient, limit: usize) -> Result<Vec<Endpoint>> {
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM endpoints WHERE status = 'disabled' OR failing_since IS NOT NULL
             ORDER BY coalesce(failing_since, updated_at) DESC, id DESC LIMIT $1"
        ),
        &[&(limit as i64)],
    )?
    .iter()
    .map(row)
    .collect()
}
