//! `/healthz` (the process answers), `/readyz` (the database takes a write and the
//! dispatcher is looping), `/metrics` (Prometheus text, in the encoding the scraper asks for).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{ok, schemas, AppState};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::metrics::Format;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources rather than `cfg.route`, which would put the GET guard on the resource
    // itself and answer another method 404 instead of 405.
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

#[utoipa::path(
    get,
    operation_id = "getHealth",
    summary = "Liveness",
    path = "/healthz",
    tag = "health",
    description = "The process is up.",
    responses((status = 200, description = "up", body = schemas::Success<schemas::Status>))
)]
async fn healthz() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    operation_id = "getReadiness",
    summary = "Readiness",
    path = "/readyz",
    tag = "health",
    description = "The database takes a write and the dispatcher is running.",
    responses(
        (status = 200, description = "ready", body = schemas::Success<schemas::Status>),
        (status = 503, description = "not ready: the database is unavailable or full, an fsync failed (the server is restarting), checkpoints fail with the WAL past `wal_alarm_size`, or the dispatcher stopped", body = schemas::ErrorEnvelope),
    )
)]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // A real write (an empty transaction writes nothing, and passes on a full disk).
    state.store.heartbeat(now_ms()).await?;
    let writer = state.store.writer_stats();
    if writer.checkpoint_failing && writer.wal_bytes > state.config.wal_alarm_size {
        // Every commit is still safe in the WAL, but it grows toward a full disk.
        return Err(ApiError::Unavailable(format!(
            "WAL checkpoints are failing and the WAL has grown to {} MiB (over wal_alarm_size); check the disk",
            writer.wal_bytes >> 20
        )));
    }
    if !state.engine.alive() {
        return Err(ApiError::Unavailable(
            "the delivery dispatcher is not running".into(),
        ));
    }
    Ok(ok(json!({ "status": "ready" })))
}

#[utoipa::path(
    get,
    operation_id = "getMetrics",
    summary = "Prometheus metrics",
    path = "/metrics",
    tag = "health",
    description = "Prometheus metrics: OpenMetrics text when `Accept` names `application/openmetrics-text` (as Prometheus does), else the classic text format 0.0.4 (what `promtool check metrics` reads). Attempts by outcome and status class, attempt duration and publish-to-first-attempt histograms, queue depth, in-flight attempts, endpoints by status, store commits.",
    responses(
        (status = 200, description = "the metrics", content(
            (String = "text/plain; version=0.0.4; charset=utf-8"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )),
        (status = 503, description = "the database is unavailable", body = schemas::ErrorEnvelope),
    )
)]
async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let gauges = state.store.gauges().await?;
    let text = state
        .engine
        .stats
        .metrics
        .render_as(format, &gauges, state.store.writer_stats());
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((header::VARY, "Accept"))
        .body(text))
}
