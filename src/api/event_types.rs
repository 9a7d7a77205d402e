//! `/api/v1/event-types`: the optional catalogue. Anyone may read it; the admin edits it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ApiJson;
use super::{auth::Auth, ok, respond, schemas, AppState};
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/event-types")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/event-types/{name}")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    );
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateEventType {
    /// Such as `job.completed`.
    #[schema(pattern = "^[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,126}[A-Za-z0-9_:-])?$")]
    name: String,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// An example payload.
    #[schema(value_type = Option<Object>)]
    example: Option<Value>,
    /// A JSON Schema (draft 2020-12) every published payload of this type must satisfy;
    /// a publish that fails it is refused with 400 `schema_violation`.
    #[schema(value_type = Option<Object>)]
    schema: Option<Value>,
}

#[utoipa::path(
    post,
    operation_id = "createEventType",
    summary = "Create or replace an event type",
    path = "/api/v1/event-types",
    tag = "event types",
    description = "Create or replace an event type (admin): {name, description?, example?, schema?}. A `schema` (JSON Schema draft 2020-12) is enforced at publish; an invalid schema, or an example that fails it, is refused with 400.",
    request_body(content = CreateEventType, content_type = "application/json"),
    responses((status = 201, description = "created or replaced", body = schemas::Success<schemas::EventType>))
)]
async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateEventType>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let created = state
        .upsert_event_type(
            &body.name,
            body.description.unwrap_or_default(),
            body.example,
            body.schema,
        )
        .await?;
    Ok(respond(StatusCode::CREATED, created))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    limit: Option<String>,
    cursor: Option<String>,
    #[allow(dead_code)]
    tenant: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listEventTypes",
    summary = "List event types",
    path = "/api/v1/event-types",
    tag = "event types",
    description = "The event type catalogue, newest first.",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page"),
    ),
    responses((status = 200, description = "a page of event types", body = schemas::ListPage<schemas::EventType>))
)]
async fn list(
    state: web::Data<AppState>,
    _auth: Auth,
    query: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let cursor = super::cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    let page = state.store.list_event_types(cursor).await?;
    Ok(super::list(page))
}

#[utoipa::path(
    get,
    operation_id = "getEventType",
    summary = "Get an event type",
    path = "/api/v1/event-types/{name}",
    tag = "event types",
    description = "One event type.",
    params(("name" = String, Path)),
    responses((status = 200, description = "the event type", body = schemas::Success<schemas::EventType>))
)]
async fn get(
    state: web::Data<AppState>,
    _auth: Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    Ok(ok(state.store.get_event_type(&name).await?))
}

#[utoipa::path(
    delete,
    operation_id = "deleteEventType",
    summary = "Delete an event type",
    path = "/api/v1/event-types/{name}",
    tag = "event types",
    description = "Delete an event type (admin).",
    params(("name" = String, Path)),
    responses((status = 200, description = "deleted", body = schemas::Success<schemas::DeletedByName>))
)]
async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let name = name.into_inner();
    state.delete_event_type(&name).await?;
    Ok(ok(json!({ "name": name })))
}
