//! Replay for both front ends: the API's `POST /webhooks/{id}/replay` and the endpoint
//! page's button call `AppState::replay`, which asks the store (`store::replay` has the
//! rule) and adds what only the deployment knows: the default window end (now), and
//! whether `retention` has already pruned part of the window.

use serde::Serialize;

use super::{AppState, Result, ServiceError};
use crate::clock::{self, now_ms, ser};
use crate::store::replay::MAX_LIMIT;
use crate::store::ReplayQuery;

/// A replay as asked for, parsed.
#[derive(Debug, Clone)]
pub struct Window {
    pub since: i64,
    /// `None`: now.
    pub until: Option<i64>,
    /// The previous answer's `next`.
    pub cursor: Option<i64>,
    /// `None`: `MAX_LIMIT`.
    pub limit: Option<usize>,
    pub dry_run: bool,
    /// Stored events read at most (`store::replay::SCAN` for the API).
    pub scan: usize,
}

/// What a replay answers.
#[derive(Debug, Serialize)]
pub struct ReplayAnswer {
    /// The endpoint.
    pub id: i64,
    pub dry_run: bool,
    #[serde(serialize_with = "ser::ms")]
    pub since: i64,
    #[serde(serialize_with = "ser::ms")]
    pub until: i64,
    /// Deliveries created (a dry run: that a replay would create now), one per event.
    pub count: usize,
    /// The first few of those events, oldest first.
    pub event_ids: Vec<String>,
    /// Pass as `cursor` (with the same `since` and `until`) to go on; `null`: done.
    pub next: Option<String>,
    /// Present when `since` is before what `retention` keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Pruned>,
}

/// The part of the window that retention has pruned already.
#[derive(Debug, Serialize)]
pub struct Pruned {
    /// Events older than this are pruned (now − `retention`).
    #[serde(serialize_with = "ser::ms")]
    pub kept_since: i64,
    /// The oldest event of the tenant still stored, if any.
    pub oldest_event: Option<OldestEvent>,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct OldestEvent {
    pub id: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
}

impl Window {
    /// Checks the window: `since` before `until`, a limit from 1 to `MAX_LIMIT`.
    pub fn query(&self, now: i64) -> Result<ReplayQuery> {
        let until = self.until.unwrap_or(now);
        if self.since >= until {
            return Err(ServiceError::invalid(
                "since must be before until (which is now when absent)",
            ));
        }
        let limit = self.limit.unwrap_or(MAX_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ServiceError::invalid(format!(
                "limit must be from 1 to {MAX_LIMIT}"
            )));
        }
        Ok(ReplayQuery {
            since: self.since,
            until,
            after: self.cursor,
            limit,
            scan: self.scan,
            dry_run: self.dry_run,
        })
    }
}

impl AppState {
    /// Creates (or, dry, counts) the deliveries `endpoint` missed in the window.
    pub async fn replay(
        &self,
        tenant: &str,
        endpoint: i64,
        window: Window,
    ) -> Result<ReplayAnswer> {
        let now = now_ms();
        let q = window.query(now)?;
        let (since, until, dry_run) = (q.since, q.until, q.dry_run);
        let done = self.store.replay(tenant, endpoint, q, now).await?;
        if !dry_run && done.count > 0 {
            self.engine.wake();
            tracing::info!(tenant, endpoint, deliveries = done.count, "replayed");
        }
        let kept_since = now.saturating_sub(self.config.retention.as_millis() as i64);
        let retention = (since < kept_since).then(|| {
            let oldest_event = done.oldest.map(|(id, created_at)| OldestEvent { id, created_at });
            let oldest = match &oldest_event {
                Some(e) => format!(
                    "the oldest event still kept is {} of {}",
                    e.id,
                    clock::rfc3339_ms(e.created_at)
                ),
                None => "no event is kept".to_owned(),
            };
            Pruned {
                kept_since,
                message: format!(
                    "events published before {} are pruned (retention) and cannot be replayed; {oldest}",
                    clock::rfc3339_ms(kept_since)
                ),
                oldest_event,
            }
        });
        Ok(ReplayAnswer {
            id: endpoint,
            dry_run,
            since,
            until,
            count: done.count,
            event_ids: done.event_ids,
            next: done.next.map(|n| n.to_string()),
            retention,
        })
    }
}
