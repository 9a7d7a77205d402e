//! `POST /api/v1/webhooks/{id}/replay`: the deliveries an endpoint missed (published while
//! it was disabled, or before it existed), created after the fact; `?dry_run=true` counts
//! them. The rule is `store::replay`'s; the retention note `service::replay`'s.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::ApiJson;
use super::{auth::Auth, respond, schemas, AppState};
use crate::clock;
use crate::error::ApiError;
use crate::service::replay::Window;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/webhooks/{id}/replay").route(web::post().to(replay)));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Events published at or after this time. An RFC 3339 time or unix seconds.
    #[schema(schema_with = schemas::time)]
    since: String,
    /// And before this one; absent: now.
    #[schema(schema_with = schemas::time)]
    until: Option<String>,
    /// The `next` of the previous answer, to go on with the same window.
    #[schema(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
    /// Create at most this many deliveries in this call (default and most: 10000).
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayParams {
    dry_run: Option<String>,
    #[allow(dead_code)]
    tenant: Option<String>,
}

fn time(name: &str, v: &str) -> Result<i64, ApiError> {
    clock::parse(v).map_err(|e| ApiError::bad("validation_error", format!("{name}: {e}")))
}

#[utoipa::path(
    post,
    operation_id = "replayWebhook",
    summary = "Replay what a webhook missed",
    path = "/api/v1/webhooks/{id}/replay",
    tag = "deliveries",
    description = "Create a delivery to this webhook for every event published in [since, until) that it matches now (events patterns and payload filter) and has no delivery for yet: events published while it was disabled, or before it existed. Oldest first; an event never gets a second delivery, so a second replay of the same window creates nothing (failed or cancelled deliveries are retried with recover or retry instead). Each call creates at most `limit` (10000) deliveries and reads at most 100000 stored events, and answers `next` to go on (pass it as `cursor` with the same since and until); its deliveries are committed together. `dry_run=true` answers the count and the first event ids and creates nothing. When since is before what `retention` keeps, `retention` says so and names the oldest event kept. A disabled webhook is refused (409) unless dry; a paused one keeps the deliveries waiting; a poll webhook's consumer reads them in its next polls, after what is already queued. `webhook.test` events are never replayed.",
    params(
        ("id" = i64, Path),
        ("dry_run" = Option<bool>, Query, description = "count only, create nothing"),
    ),
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "the deliveries were created", body = schemas::Success<schemas::Replay>),
        (status = 200, description = "dry run: what a replay would create", body = schemas::Success<schemas::Replay>),
        (status = 409, description = "the webhook is disabled", body = schemas::ErrorEnvelope),
    )
)]
async fn replay(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
    params: web::Query<ReplayParams>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<HttpResponse, ApiError> {
    let dry_run = match params.dry_run.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "dry_run must be true or false, not `{other}`"
            )))
        }
    };
    let cursor = body
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0 && c.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    ApiError::bad(
                        "invalid_pagination",
                        "cursor is not valid; pass the next of a previous replay",
                    )
                })
        })
        .transpose()?;
    let window = Window {
        since: time("since", &body.since)?,
        until: body
            .until
            .as_deref()
            .map(|u| time("until", u))
            .transpose()?,
        cursor,
        limit: body.limit,
        dry_run,
        scan: crate::store::replay::SCAN,
    };
    let answer = state.replay(&auth.tenant, id.into_inner(), window).await?;
    let status = if dry_run {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(respond(status, answer))
}
