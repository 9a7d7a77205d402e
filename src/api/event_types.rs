//! `/api/v1/event-types`: the optional catalogue. Anyone may read it; the admin edits it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ApiJson;
use super::{auth::Auth, ok, respond, AppState};
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEventType {
    name: String,
    description: Option<String>,
    example: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/api/v1/event-types",
    tag = "event types",
    description = "Create or replace an event type (admin): {name, description?, example?}.",
    request_body(content_type = "application/json", description = "{name, description?, example?}"),
    responses((status = 201, description = "success"), (status = 400, description = "error envelope"))
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
    path = "/api/v1/event-types",
    tag = "event types",
    description = "The event type catalogue, newest first. Query: limit, cursor.",
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
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
    path = "/api/v1/event-types/{name}",
    tag = "event types",
    description = "One event type.",
    params(("name" = String, Path)),
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
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
    path = "/api/v1/event-types/{name}",
    tag = "event types",
    description = "Delete an event type (admin).",
    params(("name" = String, Path)),
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let name = name.into_inner();
    state.store.delete_event_type(&name).await?;
    Ok(ok(json!({ "name": name })))
}
