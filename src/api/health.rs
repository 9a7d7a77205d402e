//! `/healthz` (the process answers), `/readyz` (the database takes a write and the
//! dispatcher is looping), `/metrics` (Prometheus text).

use std::fmt::Write;
use std::sync::atomic::Ordering;

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
    description = "Prometheus text exposition.",
    responses((status = 200, description = "success"), (status = 400, description = "error envelope"))
)]
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let counts = state.store.counts(None, now_ms()).await?;
    let writer = state.store.writer_stats();
    let engine = &state.engine.stats;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "herald_deliveries_pending",
        "gauge",
        "Deliveries waiting to be sent.",
        counts.pending as u64,
    );
    metric(
        "herald_deliveries_succeeded_24h",
        "gauge",
        "Deliveries that succeeded in the last 24 hours.",
        counts.succeeded_24h as u64,
    );
    metric(
        "herald_deliveries_failed_24h",
        "gauge",
        "Deliveries that failed for good in the last 24 hours.",
        counts.failed_24h as u64,
    );
    metric(
        "herald_attempts_total",
        "counter",
        "HTTP attempts made since start.",
        engine.attempts.load(Ordering::Relaxed),
    );
    metric(
        "herald_attempts_succeeded_total",
        "counter",
        "Attempts answered with 2xx since start.",
        engine.succeeded.load(Ordering::Relaxed),
    );
    metric(
        "herald_attempts_failed_total",
        "counter",
        "Attempts that failed since start.",
        engine.failed_attempts.load(Ordering::Relaxed),
    );
    metric(
        "herald_store_commits_total",
        "counter",
        "Write transactions committed (group commits).",
        writer.commits,
    );
    metric(
        "herald_store_write_jobs_total",
        "counter",
        "Write jobs committed; jobs/commits is the group-commit factor.",
        writer.jobs,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
