//! `GET /api/v1/webhooks/{id}/poll`: a poll endpoint's consumer reads its events.
//!
//! Each item carries the exact stored body and the signature headers a push would send,
//! signed now with the endpoint's secret, so one receiver-side check serves push and poll.
//! The endpoint's extra headers are not among them: they are meant for a receiver Herald
//! calls, and the API and pages never show their values (a consumer already has them).
//! The cursor is the acknowledgement: passing it marks succeeded everything up to it that
//! a poll has handed out (a delivery retried since it was read comes back first). `HEAD`
//! acknowledges nothing and hands out nothing: it only says whether the route answers.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{auth::Auth, cursor, schemas, AppState};
use crate::clock::{now_ms, ser};
use crate::domain::{EndpointKind, ExtraHeaders};
use crate::engine::worker::{delivery_headers, WorkerContext};
use crate::error::ApiError;
use crate::store::{Endpoint, Polled, StoreError};
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
        .settings
        .signature
        .as_deref()
        .unwrap_or(&state.config.signature_schemes);
    let previous = endpoint.previous_secret.as_deref().filter(|_| {
        endpoint
            .previous_secret_until
            .is_some_and(|until| until > now)
    });
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
        &ExtraHeaders::default(),
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
    description = "A poll endpoint's pending deliveries, oldest first (query: cursor, limit). Each item has delivery_id, event_id, event, body (the exact signed bytes) and headers (the signature headers a push would carry). Passing cursor (a previous next_cursor) acknowledges every delivery up to it that a poll handed out: they become succeeded and are not answered again; a delivery retried since it was read is answered again. HEAD acknowledges nothing. The endpoint's extra headers are not among the items' headers. A push endpoint answers 409.",
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
    req: HttpRequest,
    id: web::Path<i64>,
    query: web::Query<PollQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let ack = parse_ack(query.cursor.as_deref())?;
    let limit = cursor(query.limit.as_deref(), None)?.limit;
    // Refused before anything is acknowledged or handed out.
    pollable(&state, &auth.tenant, id).await?;
    if crate::server::head::was_head(&req) {
        // Acknowledges and hands out nothing; the body is not sent.
        return Ok(
            HttpResponse::Ok().json(json!({ "success": true, "data": [], "next_cursor": null }))
        );
    }
    let now = now_ms();
    let polled = state
        .store
        .poll_deliveries(&auth.tenant, id, ack, limit, now)
        .await?;
    // Read after the acknowledgement committed, so a rotation in between signs with the new
    // secret (the previous one signs beside it during its grace period anyway).
    let endpoint = state.store.get_endpoint(&auth.tenant, id).await?;
    // A retried delivery handed out again sits below the cursor: never move it back.
    let next_cursor = polled
        .iter()
        .map(|p| p.delivery_id)
        .chain(ack)
        .max()
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

/// The endpoint, if it can be polled: a poll endpoint of this tenant (another tenant's is
/// not found, a push endpoint is a conflict) whose secret opens, so its items can be signed.
async fn pollable(state: &AppState, tenant: &str, id: i64) -> Result<Endpoint, ApiError> {
    let endpoint = state.store.get_endpoint(tenant, id).await?;
    if endpoint.kind != EndpointKind::Poll {
        return Err(StoreError::Conflict(
            "this webhook is a push endpoint; only poll endpoints can be polled".into(),
        )
        .into());
    }
    if endpoint.secret.is_empty() {
        return Err(StoreError::Conflict(
            crate::engine::worker::SECRET_REFUSED.replace("not sent", "not answered"),
        )
        .into());
    }
    Ok(endpoint)
}
