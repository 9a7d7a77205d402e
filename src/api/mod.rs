//! The JSON API under `/api/v1` (and the seeds' `/api/webhooks` alias).
//!
//! Handlers are thin: validate input into domain types, call one store function, answer in
//! the seeds' envelope. Every refusal is an `ApiError`; nothing here writes SQL.

pub mod auth;
pub(crate) mod deliveries;
pub(crate) mod event_types;
mod events;
mod extract;
mod health;
mod openapi;
mod poll;
mod replay;
mod schemas;
pub(crate) mod tenants;
pub(crate) mod webhooks;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ApiError;
pub use crate::service::AppState;
use crate::store::{Cursor, Page};
pub use openapi::allowed_methods;

/// `{"success": true, "data": ...}` with a status. An answer that carries a secret (a new
/// endpoint's `secret`, a new key's `token`) is marked `Cache-Control: no-store`, so no
/// browser or proxy cache keeps a copy of what is shown only once.
pub fn respond(status: StatusCode, data: impl Serialize) -> HttpResponse {
    let body = json!({ "success": true, "data": data });
    let mut response = HttpResponse::build(status);
    if carries_secret(&body["data"]) {
        response.insert_header((header::CACHE_CONTROL, "no-store"));
    }
    response.json(body)
}

/// Whether an answer's data holds a `secret` or `token` field (at its top level or in its
/// items: a list of new keys counts too).
fn carries_secret(data: &Value) -> bool {
    match data {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| matches!(k.as_str(), "secret" | "token") && v.is_string()),
        Value::Array(items) => items.iter().any(carries_secret),
        _ => false,
    }
}

pub fn ok(data: impl Serialize) -> HttpResponse {
    respond(StatusCode::OK, data)
}

/// A list: `data` stays an array (the seeds' shape) and `next_cursor` sits beside it.
pub fn list<T: Serialize>(page: Page<T>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "success": true,
        "data": page.items,
        "next_cursor": page.next_cursor,
    }))
}

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// Parses the `limit` and `cursor` query parameters every list takes.
pub fn cursor(limit: Option<&str>, cursor: Option<&str>) -> Result<Cursor, ApiError> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    "invalid_pagination",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    // Only the canonical spelling of a positive number (what `next_cursor` holds, and what
    // the OpenAPI document promises): no sign, no leading zero, at most 18 digits.
    let canonical = |c: &str| {
        (1..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) && !c.starts_with('0')
    };
    let before = match cursor {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|_| canonical(c))
                .ok_or_else(|| {
                    ApiError::bad(
                        "invalid_pagination",
                        "cursor is not valid; pass the next_cursor of a previous page",
                    )
                })?,
        ),
    };
    Ok(Cursor { before, limit })
}

/// Parses an optional time filter (`since`, `until`).
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| crate::clock::parse(v).map_err(|e| ApiError::invalid(format!("{name}: {e}"))))
        .transpose()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::invalid(format!("invalid query string: {e}")).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|e, _| {
        ApiError::bad("invalid_id", format!("invalid id in the path: {e}")).into()
    }))
    .configure(health::configure)
    .configure(openapi::configure)
    .service(
        web::scope("/api/v1")
            .configure(webhooks::configure)
            .configure(poll::configure)
            .configure(events::configure)
            .configure(event_types::configure)
            .configure(tenants::configure)
            .configure(deliveries::configure)
            .configure(replay::configure),
    )
    .service(web::scope("/api").configure(webhooks::configure));
}

/// Answers unknown routes in the envelope.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_secrets_are_not_cached() {
        let cached = |data: Value| {
            respond(StatusCode::OK, data)
                .headers()
                .get(header::CACHE_CONTROL)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            cached(json!({"id": 1, "secret": "whsec_x"})).as_deref(),
            Some("no-store")
        );
        assert_eq!(
            cached(json!({"id": 1, "token": "hk_x"})).as_deref(),
            Some("no-store")
        );
        assert_eq!(
            cached(json!([{"token": "hk_x"}])).as_deref(),
            Some("no-store")
        );
        assert_eq!(cached(json!({"id": 1, "name": "secret"})), None);
    }
}
