//! `/healthz` (the process answers), `/readyz` (the database takes a write and the
//! dispatcher is looping), `/metrics` (Prometheus text).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{ok, AppState};
use crate::clock::now_ms;
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    description = "The process is up.",
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn healthz() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    description = "The database takes a write and the dispatcher is running.",
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // A real write (an empty transaction writes nothing, and passes on a full disk).
    state.store.heartbeat(now_ms()).await?;
    if !state.engine.alive() {
        return Err(ApiError::Unavailable(
            "the delivery dispatcher is not running".into(),
        ));
    }
    Ok(ok(json!({ "status": "ready" })))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    description = "Prometheus metrics (OpenMetrics text): attempts by outcome and status class, attempt duration and publish-to-first-attempt histograms, queue depth, in-flight attempts, endpoints by status, store commits.",
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let gauges = state.store.gauges().await?;
    let text = state
        .engine
        .stats
        .metrics
        .render(&gauges, state.store.writer_stats());
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
