//! Admin pages (`/admin`) and the tenant portal (`/portal`): server-rendered HTML, askama
//! templates from `templates/`, one embedded CSS file, no JavaScript.
//!
//! A request enters through a scope that names its `Area`. Handlers start with an extractor
//! from `guard` saying who is asking (a signed session cookie, see `session`) and, for the
//! tenant pages, which tenant the page shows: the admin picks one in the URL
//! (`/admin/tenants/<id>/…`), a portal session is bound to its key's tenant (`/portal/…`).
//! The endpoint, event and delivery pages are the same handlers in both areas, and every
//! query they make takes that tenant, so a portal user cannot reach another tenant's data.
//!
//! Every POST carries the session's CSRF token (`guard::Posted`) and answers with a
//! redirect (POST-redirect-GET); a one-time message rides along (`flash`). The actions
//! themselves are the JSON API's shared functions and the store's, never a copy of them.

mod auth_form;
mod charts;
mod deliveries;
mod endpoint_actions;
mod endpoint_health;
mod endpoints;
mod event_types;
mod events;
pub mod flash;
mod format;
mod guard;
mod login;
mod overview;
mod render;
mod resource;
mod session;
mod tenant_actions;
mod tenants;
mod transformation;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse};

use render::{render_error, Area, PageError};
use resource::page;

/// The stylesheet, compiled into the binary.
const CSS: &str = include_str!("../../templates/herald.css");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .app_data(Area::Admin)
            .app_data(query_config())
            .wrap(from_fn(error_pages))
            .service(page(web::resource("/static/herald.css")).get(css))
            .configure(login::configure)
            .configure(overview::configure)
            .configure(tenants::configure)
            .configure(tenant_actions::configure)
            .configure(event_types::configure)
            .service(web::scope("/tenants/{tenant}").configure(tenant_pages))
            .default_service(web::to(not_found)),
    )
    .service(
        web::scope("/portal")
            .app_data(Area::Portal)
            .app_data(query_config())
            .wrap(from_fn(error_pages))
            .configure(login::configure)
            .service(page(web::resource(["", "/"])).get(portal_home))
            .configure(tenant_pages)
            .default_service(web::to(not_found)),
    );
}

/// The pages of one tenant, mounted under both areas.
fn tenant_pages(cfg: &mut web::ServiceConfig) {
    cfg.configure(endpoints::configure)
        .configure(transformation::configure)
        .configure(endpoint_actions::configure)
        .configure(events::configure)
        .configure(deliveries::configure);
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| PageError::bad(format!("invalid filter: {e}")).into())
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(CSS)
}

async fn portal_home(_: guard::Signed) -> HttpResponse {
    render::see_other("/portal/endpoints")
}

async fn not_found() -> Result<HttpResponse, PageError> {
    Err(PageError::not_found("page"))
}

/// Renders a `PageError` as the area's error page (or, for a missing session on a GET, as
/// a redirect to its login form). Errors are raised where the area is unknown — a `?` on a
/// store call deep in a handler — so the scope finishes them here, where it is known.
async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse, actix_web::Error> {
    let area = guard::area_of(req.request());
    let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
    let here = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let res = next.call(req).await?.map_into_boxed_body();
    let page = match res
        .response()
        .error()
        .and_then(|e| e.as_error::<PageError>())
    {
        Some(e) => render_error(area, e, is_get, &here),
        None => return Ok(res),
    };
    Ok(res.into_response(page))
}
