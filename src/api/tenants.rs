//! `/api/v1/tenants` and their keys: admin only.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::body::ApiJson;
use super::{auth::Auth, cursor, list, ok, respond, schemas, AppState};
use crate::clock::now_ms;
use crate::domain::TenantId;
use crate::error::ApiError;
use crate::service::check_tenant_name;

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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    /// 1-64 lower-case letters, digits, `-` or `_`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    id: String,
    /// Default: the id.
    #[schema(max_length = 100, pattern = r"\S")]
    name: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RenameTenant {
    #[schema(max_length = 100, pattern = r"\S")]
    name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    #[schema(max_length = 100)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    limit: Option<String>,
    cursor: Option<String>,
    /// Accepted on every route (see `auth`); the admin routes act across tenants.
    #[allow(dead_code)]
    tenant: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    Ok(check_tenant_name(name)?)
}

#[utoipa::path(
    post,
    operation_id = "createTenant",
    summary = "Create a tenant",
    path = "/api/v1/tenants",
    tag = "tenants",
    description = "Create a tenant (admin): {id, name?}.",
    request_body(content = CreateTenant, content_type = "application/json"),
    responses(
        (status = 201, description = "created", body = schemas::Success<schemas::Tenant>),
        (status = 409, description = "the tenant exists already", body = schemas::ErrorEnvelope),
    )
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
        .create_tenant(id.as_str(), &name, now_ms())
        .await?;
    Ok(respond(StatusCode::CREATED, tenant))
}

#[utoipa::path(
    get,
    operation_id = "listTenants",
    summary = "List tenants",
    path = "/api/v1/tenants",
    tag = "tenants",
    description = "List tenants (admin).",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page"),
    ),
    responses((status = 200, description = "a page of tenants", body = schemas::ListPage<schemas::Tenant>))
)]
async fn list_tenants(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let cursor = cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    Ok(list(state.store.list_tenants(cursor).await?))
}

#[utoipa::path(
    get,
    operation_id = "getTenant",
    summary = "Get a tenant",
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    description = "One tenant (admin).",
    params(("id" = String, Path)),
    responses((status = 200, description = "the tenant", body = schemas::Success<schemas::Tenant>))
)]
async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let id = id.into_inner();
    Ok(ok(state.store.get_tenant(&id).await?))
}

#[utoipa::path(
    patch,
    operation_id = "renameTenant",
    summary = "Rename a tenant",
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    description = "Rename a tenant (admin): {name}.",
    params(("id" = String, Path)),
    request_body(content = RenameTenant, content_type = "application/json"),
    responses((status = 200, description = "the renamed tenant", body = schemas::Success<schemas::Tenant>))
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
    Ok(ok(state.store.rename_tenant(&id, &body.name).await?))
}

#[utoipa::path(
    delete,
    operation_id = "deleteTenant",
    summary = "Delete a tenant",
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    description = "Delete a tenant and everything it owns (admin).",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "deleted", body = schemas::Success<schemas::DeletedTenant>),
        (status = 409, description = "the default tenant cannot be deleted", body = schemas::ErrorEnvelope),
    )
)]
async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let id = id.into_inner();
    state.store.delete_tenant(&id).await?;
    Ok(ok(json!({ "id": id })))
}

#[utoipa::path(
    post,
    operation_id = "createTenantKey",
    summary = "Create a tenant API key",
    path = "/api/v1/tenants/{id}/keys",
    tag = "tenants",
    description = "Create an API key (admin); the token is shown once.",
    params(("id" = String, Path)),
    request_body(content = CreateKey, content_type = "application/json"),
    responses((status = 201, description = "created; `token` is shown this once", body = schemas::Success<schemas::IssuedKey>))
)]
async fn create_key(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let key = state
        .issue_key(&id.into_inner(), body.name.unwrap_or_default())
        .await?;
    Ok(respond(StatusCode::CREATED, key))
}

#[utoipa::path(
    get,
    operation_id = "listTenantKeys",
    summary = "List a tenant's API keys",
    path = "/api/v1/tenants/{id}/keys",
    tag = "tenants",
    description = "A tenant's API keys (admin).",
    params(
        ("id" = String, Path),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page"),
    ),
    responses((status = 200, description = "a page of keys", body = schemas::ListPage<schemas::ApiKey>))
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
    let page = state.store.list_keys(&tenant, cursor).await?;
    Ok(list(page))
}

#[utoipa::path(
    delete,
    operation_id = "revokeTenantKey",
    summary = "Revoke a tenant API key",
    path = "/api/v1/tenants/{id}/keys/{key_id}",
    tag = "tenants",
    description = "Revoke an API key (admin).",
    params(("id" = String, Path), ("key_id" = i64, Path)),
    responses((status = 200, description = "the revoked key", body = schemas::Success<schemas::ApiKey>))
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
        .revoke_key(&tenant, key_id, now_ms())
        .await?))
}
