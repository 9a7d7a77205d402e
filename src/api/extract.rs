//! The API's body extractors: `RawBody` up to `max_payload`, and `ApiJson`, whose errors
//! keep the `{"success": false, ...}` envelope.
//!
//! actix's own `Json` extractor answers errors in plain text; these keep every refusal in
//! the API's shape with a message that names the problem. The reading itself, within the
//! body budget, is `server::body`'s, which the pages' forms use too.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::auth::Authenticating;
use super::AppState;
use crate::error::ApiError;
use crate::server::body::{declared_length, take, too_large, RawBody};

/// A JSON body deserialised into `T` (whose struct should deny unknown fields).
pub struct ApiJson<T>(pub T);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.max_payload)
            .unwrap_or(1 << 20);
        if declared_length(req).is_some_and(|n| n > limit as u64) {
            // At once, before `Auth` has checked (and counted) the token.
            return Box::pin(async move { Err(too_large(limit)) });
        }
        let body = take(req, payload);
        // Nothing is reserved for a caller who is not yet known: the body waits for the
        // handler's `Auth` (when it has one, before the body), which refuses strangers.
        let authenticating = Authenticating::of(req);
        Box::pin(async move {
            if let Some(authenticating) = authenticating {
                if !authenticating.succeeded().await {
                    return Err(ApiError::Unauthorized("not authenticated".into()));
                }
            }
            body.read(limit).await
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = RawBody::from_request(req, payload);
        Box::pin(async move { parse_json(&raw.await?.0).map(ApiJson) })
    }
}

/// A shape error's message without serde's " at line 1 column 42": the position in a
/// one-line body says nothing the message does not.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    message
        .strip_suffix(&suffix)
        .map(str::to_owned)
        .unwrap_or(message)
}

/// Parses JSON into `T`, telling syntax errors (`invalid_json`) from shape errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "invalid_json",
            "the request needs a JSON body",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(without_position(&e)),
        _ => ApiError::bad("invalid_json", format!("the body is not valid JSON: {e}")),
    })
}
