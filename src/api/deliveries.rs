//! Delivery history and the actions on it: list, inspect with attempts, retry, recover,
//! and "send test".

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::body::ApiJson;
use super::{auth::Auth, cursor, list, ok, respond, schemas, time_param, AppState};
use crate::clock;
use crate::error::ApiError;
use crate::store::{Attempt, Delivery, DeliveryQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/deliveries").route(web::get().to(list_all)))
        .service(web::resource("/deliveries/{id}").route(web::get().to(get)))
        .service(web::resource("/deliveries/{id}/retry").route(web::post().to(retry)))
        .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(list_for_webhook)))
        .service(web::resource("/webhooks/{id}/test").route(web::post().to(send_test)))
        .service(web::resource("/webhooks/{id}/recover").route(web::post().to(recover)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
    endpoint_id: Option<String>,
    event_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[allow(dead_code)]
    tenant: Option<String>,
}

impl ListQuery {
    fn to_query(&self) -> Result<DeliveryQuery, ApiError> {
        if let Some(s) = &self.status {
            if !["pending", "succeeded", "failed", "cancelled"].contains(&s.as_str()) {
                return Err(ApiError::invalid(
                    "status must be pending, succeeded, failed or cancelled",
                ));
            }
        }
        Ok(DeliveryQuery {
            status: self.status.clone(),
            endpoint_id: self
                .endpoint_id
                .as_deref()
                .map(|e| {
                    e.parse::<i64>()
                        .map_err(|_| ApiError::invalid("endpoint_id must be a number"))
                })
                .transpose()?,
            event_id: self.event_id.clone(),
            since: time_param("since", self.since.as_deref())?,
            until: time_param("until", self.until.as_deref())?,
        })
    }
}

#[utoipa::path(
    get,
    operation_id = "listDeliveries",
    summary = "List deliveries",
    path = "/api/v1/deliveries",
    tag = "deliveries",
    description = "The tenant's deliveries, newest first.",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page"),
        ("status" = Option<schemas::DeliveryStatus>, Query),
        ("endpoint_id" = Option<i64>, Query, description = "only this webhook's"),
        ("event_id" = Option<String>, Query, description = "only this event's"),
        ("since" = Option<String>, Query, description = "ISO-8601 time or unix seconds"),
        ("until" = Option<String>, Query, description = "ISO-8601 time or unix seconds"),
    ),
    responses((status = 200, description = "a page of deliveries", body = schemas::ListPage<schemas::Delivery>))
)]
async fn list_all(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let cursor = cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    let q = query.to_query()?;
    let page = state.store.list_deliveries(&auth.tenant, q, cursor).await?;
    Ok(list(page))
}

#[utoipa::path(
    get,
    operation_id = "listWebhookDeliveries",
    summary = "List a webhook's deliveries",
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "deliveries",
    description = "A webhook's deliveries, newest first.",
    params(
        ("id" = i64, Path),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page"),
        ("status" = Option<schemas::DeliveryStatus>, Query),
        ("event_id" = Option<String>, Query, description = "only this event's"),
        ("since" = Option<String>, Query, description = "ISO-8601 time or unix seconds"),
        ("until" = Option<String>, Query, description = "ISO-8601 time or unix seconds"),
    ),
    responses((status = 200, description = "a page of deliveries", body = schemas::ListPage<schemas::Delivery>))
)]
async fn list_for_webhook(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let cursor = cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    let mut q = query.to_query()?;
    let id = id.into_inner();
    q.endpoint_id = Some(id);
    state.store.get_endpoint(&auth.tenant, id).await?;
    let page = state.store.list_deliveries(&auth.tenant, q, cursor).await?;
    Ok(list(page))
}

#[derive(Serialize)]
struct DeliveryWithAttempts {
    #[serde(flatten)]
    delivery: Delivery,
    attempt_log: Vec<Attempt>,
}

#[utoipa::path(
    get,
    operation_id = "getDelivery",
    summary = "Get a delivery with its attempts",
    path = "/api/v1/deliveries/{id}",
    tag = "deliveries",
    description = "One delivery with its attempt_log.",
    params(("id" = i64, Path)),
    responses((status = 200, description = "the delivery", body = schemas::Success<schemas::DeliveryWithAttempts>))
)]
async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (delivery, attempt_log) = state.store.delivery_with_attempts(&auth.tenant, id).await?;
    Ok(ok(DeliveryWithAttempts {
        delivery,
        attempt_log,
    }))
}

#[utoipa::path(
    post,
    operation_id = "retryDelivery",
    summary = "Retry a delivery",
    path = "/api/v1/deliveries/{id}/retry",
    tag = "deliveries",
    description = "Queue a finished delivery again now, with a fresh retry schedule.",
    params(("id" = i64, Path)),
    responses(
        (status = 202, description = "queued", body = schemas::Success<schemas::Delivery>),
        (status = 409, description = "the delivery is still pending", body = schemas::ErrorEnvelope),
    )
)]
async fn retry(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let delivery = state.retry_delivery(&auth.tenant, id.into_inner()).await?;
    Ok(respond(StatusCode::ACCEPTED, delivery))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Recover {
    /// An RFC 3339 time or unix seconds.
    #[schema(schema_with = schemas::time)]
    since: String,
}

#[utoipa::path(
    post,
    operation_id = "recoverWebhookDeliveries",
    summary = "Re-queue a webhook's failed deliveries",
    path = "/api/v1/webhooks/{id}/recover",
    tag = "deliveries",
    description = "Re-queue this webhook's failed deliveries created since a time.",
    params(("id" = i64, Path)),
    request_body(content = Recover, content_type = "application/json"),
    responses((status = 202, description = "queued again", body = schemas::Success<schemas::Recovered>))
)]
async fn recover(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
    ApiJson(body): ApiJson<Recover>,
) -> Result<HttpResponse, ApiError> {
    let since = clock::parse(&body.since)
        .map_err(|e| ApiError::bad("validation_error", format!("since: {e}")))?;
    let id = id.into_inner();
    let recovered = state.recover(&auth.tenant, id, since).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        json!({ "id": id, "recovered": recovered }),
    ))
}

#[utoipa::path(
    post,
    operation_id = "sendWebhookTest",
    summary = "Send a test event to a webhook",
    path = "/api/v1/webhooks/{id}/test",
    tag = "deliveries",
    description = "Send a webhook.test event to this webhook now, whatever its filter.",
    params(("id" = i64, Path)),
    responses((status = 202, description = "queued", body = schemas::Success<schemas::TestSent>))
)]
async fn send_test(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (event_id, delivery_id) = state.send_test(&auth.tenant, id.into_inner()).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        json!({ "event_id": event_id, "delivery_id": delivery_id, "event": "webhook.test" }),
    ))
}
