//! Endpoints (the seeds' "webhooks"): where a tenant's events go.

use std::sync::OnceLock;

use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use super::subscriptions;
use crate::domain::{EndpointKind, EndpointStatus, Ordering};
use crate::secrets::secret_key::{
    endpoint_owner, open_endpoint_secret, reseal_stored, seal_stored,
};
use crate::store::endpoint_settings::{self as settings, ColumnType, Value};
use crate::store::{
    Circuit, Cursor, Endpoint, EndpointPatch, EndpointSettings, NewEndpoint, Page, Result,
    StoreError,
};

/// The columns Herald keeps beside the settings; `settings::COLUMNS` follow them.
const STATE: &str = "id, tenant_id, kind, disabled_reason, secret, previous_secret, \
    previous_secret_until, failing_since, created_at, updated_at, \
    consecutive_failures::bigint, circuit_opened_at, circuit_next_probe";
/// Where the settings start in a row of `columns()`.
const SETTINGS_AT: usize = 13;

/// Every column an `Endpoint` is read from.
fn columns() -> &'static str {
    static ALL: OnceLock<String> = OnceLock::new();
    ALL.get_or_init(|| format!("{STATE}, {}", settings::column_list()))
}

/// A stored secret (sealed with the deployment's secret key for its endpoint) in clear, for
/// column `idx` of a row of endpoint `id` of `tenant`; `None` when it does not open there.
pub(super) fn secret_at(r: &Row, idx: usize, tenant: &str, id: i64) -> Result<Option<String>> {
    Ok(open_endpoint_secret(r.try_get(idx)?, tenant, id))
}

fn row(r: &Row) -> Result<Endpoint> {
    let (id, tenant): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
    Ok(Endpoint {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        kind: EndpointKind::parse(&r.try_get::<_, String>(2)?).unwrap_or_default(),
        disabled_reason: r.try_get(3)?,
        secret: secret_at(r, 4, &tenant, id)?.unwrap_or_default(),
        previous_secret: secret_at(r, 5, &tenant, id)?,
        previous_secret_until: r.try_get(6)?,
        failing_since: r.try_get(7)?,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
        circuit: Circuit::new(
            r.try_get(11)?,
            r.try_get(12)?,
            r.try_get(10)?,
            crate::clock::now_ms(),
        ),
        fifo_head: None,
        concurrency: None,
        settings: EndpointSettings::read_sealed(
            |i, ty| value_at(r, SETTINGS_AT + i, ty),
            &endpoint_owner(&tenant, id),
        )?,
    })
}

/// One settings column of a row, by its type.
fn value_at(r: &Row, idx: usize, ty: ColumnType) -> Result<Value> {
    Ok(match ty {
        ColumnType::Text => Value::Text(r.try_get(idx)?),
        ColumnType::Bigint => Value::Bigint(r.try_get(idx)?),
        ColumnType::Real => Value::Real(r.try_get(idx)?),
    })
}

type Param = Box<dyn ToSql + Sync>;

/// The settings' values as PostgreSQL parameters, the `SEALED` ones sealed for `owner`.
fn sql_values(s: &EndpointSettings, owner: &str) -> impl Iterator<Item = Param> {
    s.sealed_columns(owner).into_iter().map(|v| -> Param {
        match v {
            Value::Text(t) => Box::new(t),
            Value::Bigint(n) => Box::new(n),
            Value::Real(x) => Box::new(x),
        }
    })
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref()).collect()
}

pub fn create(
    c: &mut impl GenericClient,
    tenant_id: &str,
    new: &NewEndpoint,
    now: i64,
) -> Result<Endpoint> {
    let NewEndpoint {
        kind,
        secret,
        settings: values,
    } = new;
    // The id first: the secret and the sealed settings are sealed for it.
    let id: i64 = c
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('endpoints', 'id'))",
            &[],
        )?
        .try_get(0)?;
    let owner = endpoint_owner(tenant_id, id);
    let fixed: [Param; 5] = [
        Box::new(tenant_id.to_owned()),
        Box::new(kind.as_str().to_owned()),
        Box::new(seal_stored(secret, &owner)),
        Box::new(now),
        Box::new(id),
    ];
    let params: Vec<Param> = fixed
        .into_iter()
        .chain(sql_values(values, &owner))
        .collect();
    let placeholders = (6..6 + settings::COLUMNS.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    c.execute(
        &format!(
            "INSERT INTO endpoints (tenant_id, kind, secret, created_at, updated_at, id, {})
             VALUES ($1, $2, $3, $4, $4, $5, {placeholders})",
            settings::column_list()
        ),
        &refs(&params),
    )?;
    get(c, tenant_id, id)
}

pub fn get(c: &mut impl GenericClient, tenant_id: &str, id: i64) -> Result<Endpoint> {
    let e = c
        .query_opt(
            &format!(
                "SELECT {} FROM endpoints WHERE tenant_id = $1 AND id = $2",
                columns()
            ),
            &[&tenant_id, &id],
        )?
        .map(|r| row(&r))
        .transpose()?
        .ok_or(StoreError::NotFound("webhook"))?;
    with_fifo_head(c, e)
}

/// Fills in a FIFO endpoint's head: its oldest pending delivery, which the rest wait for.
fn with_fifo_head(c: &mut impl GenericClient, mut e: Endpoint) -> Result<Endpoint> {
    if e.settings.ordering == Ordering::Fifo {
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
            "SELECT {} FROM endpoints
             WHERE tenant_id = $1 AND id < $2 AND ($3::text IS NULL OR status = $3)
             ORDER BY id DESC LIMIT $4",
            columns()
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
    let before = current.settings.status;
    let next = patch.clone().apply(current.settings);
    let status_change = Some(next.status).filter(|s| *s != before);
    if let Some(status @ EndpointStatus::Disabled) = status_change {
        set_status(c, id, status, None, now)?;
    }
    let assignments = settings::COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = ${}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    // The status column is written with the rest; its consequences are `set_status`'s.
    let fixed: [Param; 3] = [Box::new(tenant_id.to_owned()), Box::new(id), Box::new(now)];
    let params: Vec<Param> = fixed
        .into_iter()
        .chain(sql_values(&next, &endpoint_owner(tenant_id, id)))
        .collect();
    c.execute(
        &format!(
            "UPDATE endpoints SET updated_at = $3, {assignments} WHERE tenant_id = $1 AND id = $2"
        ),
        &refs(&params),
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
             circuit_backoff_ms = CASE WHEN $2 = 'active' THEN NULL ELSE circuit_backoff_ms END,
             window_start = CASE WHEN $2 = 'active' THEN NULL ELSE window_start END,
             window_succeeded = CASE WHEN $2 = 'active' THEN 0 ELSE window_succeeded END,
             window_failed = CASE WHEN $2 = 'active' THEN 0 ELSE window_failed END,
             window_prev_succeeded = CASE WHEN $2 = 'active' THEN 0 ELSE window_prev_succeeded END,
             window_prev_failed = CASE WHEN $2 = 'active' THEN 0 ELSE window_prev_failed END
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

/// Seals for their endpoint the secrets and `SEALED` settings stored in clear or the legacy
/// way (as SQLite's `reseal` does, on opening); returns how many endpoints it changed.
/// Replicas starting at once may both do it: each write applies only if the row still
/// holds what was read, so a rotation or an edit in between is never undone. One statement
/// per endpoint: a crash leaves the row as it was (the next start seals it) or sealed.
pub fn reseal(c: &mut impl GenericClient) -> Result<usize> {
    if crate::secrets::secret_key::installed().is_none() {
        return Ok(0);
    }
    let sealed = settings::SEALED;
    let names: Vec<&str> = ["secret", "previous_secret"]
        .into_iter()
        .chain(sealed.iter().copied())
        .collect();
    let pending = names
        .iter()
        .map(|c| format!("{c} NOT LIKE 'sealed2:%'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let old = c.query(
        &format!(
            "SELECT id, tenant_id, {} FROM endpoints WHERE {pending}",
            names.join(", ")
        ),
        &[],
    )?;
    let assignments = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} = ${}", 2 + names.len() + i))
        .collect::<Vec<_>>()
        .join(", ");
    let unchanged = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} IS NOT DISTINCT FROM ${}", 2 + i))
        .collect::<Vec<_>>()
        .join(" AND ");
    let statement = format!("UPDATE endpoints SET {assignments} WHERE id = $1 AND {unchanged}");
    let mut changed = 0;
    for r in &old {
        let (id, tenant): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
        let values: Vec<Option<String>> = (0..names.len())
            .map(|i| r.try_get(2 + i))
            .collect::<std::result::Result<_, _>>()?;
        let owner = endpoint_owner(&tenant, id);
        let new: Vec<Option<String>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let v = v.as_deref()?;
                if i < 2 {
                    reseal_stored(v, &owner)
                } else {
                    settings::reseal_value(v, &owner)
                }
            })
            .collect();
        if new.iter().all(Option::is_none) {
            continue;
        }
        let next: Vec<Option<String>> = new
            .into_iter()
            .zip(&values)
            .map(|(new, old)| new.or_else(|| old.clone()))
            .collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
        params.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
        params.extend(next.iter().map(|v| v as &(dyn ToSql + Sync)));
        changed += c.execute(&statement, &params)? as usize;
    }
    Ok(changed)
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
            &seal_stored(new_secret, &endpoint_owner(tenant_id, id)),
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
            "SELECT {} FROM endpoints WHERE status = 'disabled' OR failing_since IS NOT NULL
             ORDER BY coalesce(failing_since, updated_at) DESC, id DESC LIMIT $1",
            columns()
        ),
        &[&(limit as i64)],
    )?
    .iter()
    .map(row)
    .collect()
}
