//! `GET /api/v1/webhooks/{id}/poll`: a poll endpoint's consumer reads its events.
//!
//! Each item carries the exact stored body and the signature headers a push would send,
//! signed now with the endpoint's secret, so one receiver-side check serves push and poll.
//! The cursor is the acknowledgement: passing it marks everything up to it succeeded.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{auth::Auth, cursor, schemas, AppState};
use crate::clock::{now_ms, ser};
use crate::engine::worker::{delivery_headers, WorkerContext};
use crate::error::ApiError;
use crate::store::{Endpoint, Polled};
use crate::wire::signing::SignInput;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/webhooks/{id}/poll").route(web::get().to(poll)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    cursor: Option<String>,
    limit: Option<String>,
    #[allow(dead_code)]
    tenant: Option<String>,
}

/// One pending delivery as the consumer reads it.
#[derive(Serialize)]
struct PolledItem {
    delivery_id: i64,
    event_id: String,
    event: String,
    /// The stored body, byte for byte: what the signatures cover.
    body: String,
    headers: BTreeMap<String, String>,
    #[serde(serialize_with = "ser::ms")]
    created_at: i64,
}

/// The ack cursor: the id of the last delivery the consumer has handled.
fn parse_ack(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    match cursor {
        None | Some("") => Ok(None),
        // Digits only, as documented (`parse` would also take a sign).
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|_| c.len() <= 18 && c.bytes().all(|b| b.is_ascii_digit()))
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad(
                    "invalid_pagination",
                    "cursor is not valid; pass the next_cursor of a previous poll",
                )
            }),
    }
}

fn signed(state: &AppState, endpoint: &Endpoint, p: Polled, now: i64) -> PolledItem {
    let names = WorkerContext::header_names(&state.config);
    let schemes = endpoint
        .signature
        .as_deref()
        .unwrap_or(&state.config.signature_schemes);
    let previous = endpoint.previous_secret.as_deref().filter(|_| {
        endpoint
            .previous_secret_until
            .is_some_and(|until| until > now)
    });
    let extra = crate::domain::ExtraHeaders::from_stored(endpoint.headers.clone());
    let headers = delivery_headers(
        schemes,
        &names,
        &SignInput {
            event_id: &p.event_id,
            timestamp: now / 1000,
            body: p.body.as_bytes(),
            secret: &endpoint.secret,
            previous_secret: previous,
        },
        &extra,
    );
    PolledItem {
        delivery_id: p.delivery_id,
        event_id: p.event_id,
        event: p.event,
        body: p.body,
        headers: headers.into_iter().collect(),
        created_at: p.created_at,
    }
}

#[utoipa::path(
    get,
    operation_id = "pollWebhook",
    summary = "Poll a poll endpoint's events",
    path = "/api/v1/webhooks/{id}/poll",
    tag = "webhooks",
    description = "A poll endpoint's pending deliveries, oldest first (query: cursor, limit). Each item has delivery_id, event_id, event, body (the exact signed bytes) and headers (the signature headers a push would carry). Passing cursor (a previous next_cursor) acknowledges every delivery up to it: they become succeeded and are not answered again. A push endpoint answers 409.",
    params(
        ("id" = i64, Path),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous poll; acknowledges every delivery up to it"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
    ),
    responses(
        (status = 200, description = "pending deliveries, oldest first", body = schemas::ListPage<schemas::PolledItem>),
        (status = 409, description = "not a poll endpoint", body = schemas::ErrorEnvelope),
    )
)]
async fn poll(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
    query: web::Query<PollQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let ack = parse_ack(query.cursor.as_deref())?;
    let limit = cursor(query.limit.as_deref(), None)?.limit;
    let now = now_ms();
    let polled = state
        .store
        .poll_deliveries(&auth.tenant, id, ack, limit, now)
        .await?;
    // Read after the acknowledgement committed, so a rotation in between signs with the new
    // secret (the previous one signs beside it during its grace period anyway).
    let endpoint = state.store.get_endpoint(&auth.tenant, id).await?;
    let next_cursor = polled
        .last()
        .map(|p| p.delivery_id)
        .or(ack)
        .map(|c| c.to_string());
    let items: Vec<PolledItem> = polled
        .into_iter()
        .map(|p| signed(&state, &endpoint, p, now))
        .collect();
    tracing::debug!(tenant = %auth.tenant, endpoint = id, read = items.len(), "polled");
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": items,
        "next_cursor": next_cursor,
    })))
}
