//! `/api/v1/tenants` and their keys: admin only.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::body::ApiJson;
use super::{auth::Auth, cursor, list, ok, respond, AppState};
use crate::clock::now_ms;
use crate::domain::TenantId;
use crate::error::ApiError;
use crate::keys;
use crate::store::tenants::{self, ApiKey};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants")
            .route(web::get().to(list_tenants))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/tenants/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(rename))
            .route(web::delete().to(delete)),
    )
    .service(
        web::resource("/tenants/{id}/keys")
            .route(web::get().to(list_keys))
            .route(web::post().to(create_key)),
    )
    .service(web::resource("/tenants/{id}/keys/{key_id}").route(web::delete().to(revoke_key)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    id: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameTenant {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    limit: Option<String>,
    cursor: Option<String>,
}

pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad(
            "validation_error",
            "name must be 1-100 characters",
        ));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    description = "Create a tenant (admin): {id, name?}.",
    request_body(content_type = "application/json", description = "{id, name?}"),
    responses((status = 201, description = "success"), (status = 400, description = "error envelope"))
)]
async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let id = TenantId::parse(&body.id).map_err(|e| ApiError::bad("validation_error", e))?;
    let name = body.name.unwrap_or_else(|| id.as_str().to_owned());
    check_name(&name)?;
    let tenant = state
        .store
        .write(move |c| tenants::create(c, id.as_str(), &name, now_ms()))
        .await?;
    Ok(respond(StatusCode::CREATED, tenant))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    description = "List tenants (admin). Query: limit, cursor.",
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn list_tenants(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let cursor = cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    Ok(list(
        state.store.read(move |c| tenants::list(c, cursor)).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    description = "One tenant (admin).",
    params(("id" = String, Path)),
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let id = id.into_inner();
    Ok(ok(state.store.read(move |c| tenants::get(c, &id)).await?))
}

#[utoipa::path(
    patch,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    description = "Rename a tenant (admin): {name}.",
    params(("id" = String, Path)),
    request_body(content_type = "application/json", description = "{name}"),
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn rename(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    ApiJson(body): ApiJson<RenameTenant>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    check_name(&body.name)?;
    let id = id.into_inner();
    Ok(ok(state
        .store
        .write(move |c| tenants::rename(c, &id, &body.name))
        .await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    description = "Delete a tenant and everything it owns (admin).",
    params(("id" = String, Path)),
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let id = id.into_inner();
    let answer = json!({ "id": id });
    state.store.write(move |c| tenants::delete(c, &id)).await?;
    Ok(ok(answer))
}

/// A key together with its only showing.
#[derive(Serialize)]
pub(crate) struct NewKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub token: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{id}/keys",
    tag = "tenants",
    description = "Create an API key (admin); the token is shown once.",
    params(("id" = String, Path)),
    request_body(content_type = "application/json", description = "{name?}"),
    responses((status = 201, description = "success"), (status = 400, description = "error envelope"))
)]
async fn create_key(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let key = new_key(&state, id.into_inner(), body.name.unwrap_or_default()).await?;
    Ok(respond(StatusCode::CREATED, key))
}

/// Creates a tenant key: random, stored as its hash, returned in clear this once (shared
/// by the API and the pages).
pub(crate) async fn new_key(
    state: &AppState,
    tenant: String,
    name: String,
) -> Result<NewKey, ApiError> {
    if name.chars().count() > 100 {
        return Err(ApiError::bad(
            "validation_error",
            "name: at most 100 characters",
        ));
    }
    let token = keys::generate_api_key();
    let (hash, prefix) = (keys::hash_token(&token), keys::display_prefix(&token));
    let key = state
        .store
        .write(move |c| tenants::create_key(c, &tenant, &name, &prefix, &hash, now_ms()))
        .await?;
    Ok(NewKey { key, token })
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{id}/keys",
    tag = "tenants",
    description = "A tenant's API keys (admin). Query: limit, cursor.",
    params(("id" = String, Path)),
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn list_keys(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    query: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let cursor = cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    let tenant = id.into_inner();
    let page = state
        .store
        .read(move |c| {
            tenants::get(c, &tenant)?;
            tenants::list_keys(c, &tenant, cursor)
        })
        .await?;
    Ok(list(page))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{id}/keys/{key_id}",
    tag = "tenants",
    description = "Revoke an API key (admin).",
    params(("id" = String, Path), ("key_id" = i64, Path)),
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn revoke_key(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let (tenant, key_id) = path.into_inner();
    Ok(ok(state
        .store
        .write(move |c| tenants::revoke_key(c, &tenant, key_id, now_ms()))
        .await?))
}
