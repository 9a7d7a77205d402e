//! `/api/v1/events`: publishing (the front door of the outbox) and the event log.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{auth::Auth, cursor, list, ok, respond, schemas, time_param, AppState};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::server::body::RawBody;
use crate::store::{Delivery, Event, EventQuery, NewEvent, Published};
use crate::telemetry::{PublishSpan, TRACEPARENT};
use crate::wire::payload::{self, PayloadError};

/// The most events one batch request may carry.
pub const MAX_BATCH: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/events")
            .route(web::get().to(list_events))
            .route(web::post().to(publish)),
    )
    .service(web::resource("/events/batch").route(web::post().to(publish_batch)))
    .service(web::resource("/events/{id}").route(web::get().to(get)));
}

impl From<PayloadError> for ApiError {
    fn from(e: PayloadError) -> Self {
        ApiError::bad(e.code, e.message)
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let raw = v.to_str().map_err(|_| {
                ApiError::bad(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be visible ASCII",
                )
            })?;
            Ok(Some(payload::idempotency_key(raw)?))
        }
    }
}

/// Writes the events and answers only once the writer's transaction has committed:
/// a 202 means the event and every delivery row are on disk.
async fn store_events(
    state: &AppState,
    tenant: String,
    events: Vec<NewEvent>,
    batch: bool,
) -> Result<Vec<Published>, ApiError> {
    state.check_schemas(&events, batch).await?;
    let now = now_ms();
    let published = state.store.publish(&tenant, events, now).await?;
    if published.iter().any(|p| !p.replayed && p.deliveries > 0) {
        state.engine.wake();
    }
    Ok(published)
}

fn accepted(data: impl Serialize, replayed: bool) -> HttpResponse {
    let mut response = respond(StatusCode::ACCEPTED, data);
    if replayed {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    response
}

#[utoipa::path(
    post,
    operation_id = "publishEvent",
    summary = "Publish an event",
    path = "/api/v1/events",
    tag = "events",
    description = "Publish one event (a JSON object with a string `event`); 202 once it and its deliveries are durable.",
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried publish with the same key answers the first result (header `Idempotent-Replayed: true`) instead of a second event")),
    request_body(content = schemas::PublishPayload, content_type = "application/json", description = "the payload object, delivered as compact JSON"),
    responses((status = 202, description = "stored with its deliveries", body = schemas::Success<schemas::Published>))
)]
async fn publish(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let trace = PublishSpan::start(&auth.tenant, incoming_traceparent(&req));
    let published = publish_one(&state, &auth, &req, &body.0, trace.traceparent()).await;
    trace.end(outcome(&published));
    let first = published?
        .pop()
        .ok_or_else(|| ApiError::invalid("nothing was published"))?;
    tracing::debug!(tenant = %auth.tenant, event = %first.id, deliveries = first.deliveries, "published");
    let replayed = first.replayed;
    Ok(accepted(first, replayed))
}

async fn publish_one(
    state: &AppState,
    auth: &Auth,
    req: &HttpRequest,
    body: &[u8],
    traceparent: Option<&str>,
) -> Result<Vec<Published>, ApiError> {
    let mut event = payload::from_bytes(body, now_ms())?;
    event.idempotency_key = idempotency_key(req)?;
    event.traceparent = traceparent.map(str::to_owned);
    store_events(state, auth.tenant.clone(), vec![event], false).await
}

/// The producer's W3C `traceparent`, the parent of the publish's span (`telemetry`).
fn incoming_traceparent(req: &HttpRequest) -> Option<&str> {
    req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok())
}

/// What the publish's span records: the events, or the status that refused them.
fn outcome(published: &Result<Vec<Published>, ApiError>) -> Result<&[Published], u16> {
    published.as_deref().map_err(|e| e.status_code().as_u16())
}

/// Reads `{"events": [...]}` with the JavaScript-faithful parser (see `canonical_json::parse`).
fn batch_items(bytes: &[u8]) -> Result<Vec<Value>, ApiError> {
    let value = crate::wire::canonical_json::parse(bytes)
        .map_err(|e| ApiError::bad("invalid_json", format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(ApiError::bad(
            "invalid_batch",
            "the body must be {\"events\": [...]}",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| k.as_str() != "events") {
        return Err(ApiError::bad(
            "invalid_batch",
            format!("unknown field `{unknown}`, expected `events`"),
        ));
    }
    match map.remove("events") {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(ApiError::bad(
            "invalid_batch",
            "`events` must be an array of payloads",
        )),
    }
}

#[derive(Serialize)]
struct BatchResult {
    events: Vec<Published>,
    deliveries: usize,
}

/// All or nothing: one invalid item refuses the whole batch, and the valid batch is one
/// job in the writer, so it commits as a unit. With `Idempotency-Key: K`, item `i` gets
/// the key `K #i`, so a retried batch returns the same events.
#[utoipa::path(
    post,
    operation_id = "publishEventBatch",
    summary = "Publish a batch of events",
    path = "/api/v1/events/batch",
    tag = "events",
    description = "Publish up to 1000 events atomically: {events: [...]}. With Idempotency-Key K, item i gets the key `K #i`.",
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried batch answer the same events")),
    request_body(content = schemas::PublishBatch, content_type = "application/json"),
    responses((status = 202, description = "all stored with their deliveries", body = schemas::Success<schemas::BatchPublished>))
)]
async fn publish_batch(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let trace = PublishSpan::start(&auth.tenant, incoming_traceparent(&req));
    let published = publish_many(&state, auth, &req, &body.0, trace.traceparent()).await;
    trace.end(outcome(&published));
    let published = published?;
    let replayed = published.iter().all(|p| p.replayed);
    let deliveries = published.iter().map(|p| p.deliveries).sum();
    Ok(accepted(
        BatchResult {
            events: published,
            deliveries,
        },
        replayed,
    ))
}

/// Every item shares the batch's span: one request, one publish in the trace.
async fn publish_many(
    state: &AppState,
    auth: Auth,
    req: &HttpRequest,
    body: &[u8],
    traceparent: Option<&str>,
) -> Result<Vec<Published>, ApiError> {
    let items = batch_items(body)?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "invalid_batch",
            format!("`events` must hold 1 to {MAX_BATCH} payloads"),
        ));
    }
    let key = idempotency_key(req)?;
    let now = now_ms();
    let mut events = Vec::with_capacity(items.len());
    for (i, value) in items.into_iter().enumerate() {
        let mut event = payload::from_value(value, now)
            .map_err(|e| ApiError::bad(e.code, format!("events[{i}]: {}", e.message)))?;
        // A space cannot occur in a client's key, so a single publish can never reuse
        // (or collide with) the key of a batch item.
        event.idempotency_key = key.as_ref().map(|k| format!("{k} #{i}"));
        event.traceparent = traceparent.map(str::to_owned);
        events.push(event);
    }
    store_events(state, auth.tenant, events, true).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    event: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[allow(dead_code)]
    tenant: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listEvents",
    summary = "List events",
    path = "/api/v1/events",
    tag = "events",
    description = "The event log, newest first.",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page"),
        ("event" = Option<String>, Query, description = "only this event type"),
        ("since" = Option<String>, Query, description = "ISO-8601 time or unix seconds"),
        ("until" = Option<String>, Query, description = "ISO-8601 time or unix seconds"),
    ),
    responses((status = 200, description = "a page of events", body = schemas::ListPage<schemas::Event>))
)]
async fn list_events(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let cursor = cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    let q = EventQuery {
        event_type: query.event.clone(),
        since: time_param("since", query.since.as_deref())?,
        until: time_param("until", query.until.as_deref())?,
    };
    let page = state.store.list_events(&auth.tenant, q, cursor).await?;
    Ok(list(page))
}

#[derive(Serialize)]
struct EventWithDeliveries {
    #[serde(flatten)]
    event: Event,
    deliveries: Vec<Delivery>,
}

#[utoipa::path(
    get,
    operation_id = "getEvent",
    summary = "Get an event with its deliveries",
    path = "/api/v1/events/{id}",
    tag = "events",
    description = "One event with its deliveries.",
    params(("id" = String, Path)),
    responses((status = 200, description = "the event", body = schemas::Success<schemas::EventWithDeliveries>))
)]
async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let event = state.store.get_event(&auth.tenant, &id).await?;
    let deliveries = state.store.event_deliveries(&auth.tenant, &id).await?;
    Ok(ok(EventWithDeliveries { event, deliveries }))
}
