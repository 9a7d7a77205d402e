//! Request bodies: read up to `max_payload`, parsed with errors in our envelope.
//!
//! actix's own `Json` extractor answers errors in plain text; these extractors keep every
//! refusal in the `{"success": false, ...}` shape with a message that names the problem.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::ApiError;

/// The raw body, size-checked.
pub struct RawBody(pub web::Bytes);

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
        // A declared length over the limit is refused before any byte is read, so a client
        // cannot hold a connection open by announcing a huge body and sending it slowly.
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Box::pin(async move {
                Err(ApiError::PayloadTooLarge(format!(
                    "the body is larger than the {limit}-byte limit (max_payload)"
                )))
            });
        }
        let payload = web::Payload::from_request(req, payload);
        Box::pin(async move {
            let payload = payload
                .await
                .map_err(|e| ApiError::invalid(format!("could not read the body: {e}")))?;
            match payload.to_bytes_limited(limit).await {
                Ok(Ok(bytes)) => Ok(RawBody(bytes)),
                Ok(Err(e)) => Err(ApiError::invalid(format!("could not read the body: {e}"))),
                Err(_) => Err(ApiError::PayloadTooLarge(format!(
                    "the body is larger than the {limit}-byte limit (max_payload)"
                ))),
            }
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

/// Parses JSON into `T`, telling syntax errors (`invalid_json`) from shape errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "invalid_json",
            "the request needs a JSON body",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(e.to_string()),
        _ => ApiError::bad("invalid_json", format!("the body is not valid JSON: {e}")),
    })
}
