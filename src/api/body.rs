//! Request bodies: read up to `max_payload`, parsed with errors in our envelope.
//!
//! actix's own `Json` extractor answers errors in plain text; these extractors keep every
//! refusal in the `{"success": false, ...}` shape with a message that names the problem.
//! Every body is read within its share of `max_body_memory` (`crate::server::body_budget`).

use std::future::{poll_fn, Future};
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_core::Stream;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::ApiError;
use crate::server::body_budget::{BodyBudget, Permit};

/// The raw body, size-checked, with the share of `max_body_memory` it holds until dropped.
pub struct RawBody(pub web::Bytes, #[allow(dead_code)] Permit);

/// A JSON body deserialised into `T` (whose struct should deny unknown fields).
pub struct ApiJson<T>(pub T);

/// At most this much is allocated ahead of bytes that have actually arrived.
const PREALLOCATE: usize = 64 * 1024;

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the body is larger than the {limit}-byte limit"))
}

fn busy() -> ApiError {
    ApiError::Busy("the server is reading too many request bodies at once; retry shortly".into())
}

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.max_payload)
            .unwrap_or(1 << 20);
        read(req, payload, limit)
    }
}

/// Reads a body of at most `limit` bytes within the shared budget (the pages' forms use it
/// too, with their own limit).
pub fn read(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Pin<Box<dyn Future<Output = Result<RawBody, ApiError>>>> {
    let budget = req
        .app_data::<web::Data<BodyBudget>>()
        .map(|b| b.clone().into_inner());
    // A declared length over the limit is refused before any byte is read, so a client
    // cannot hold a connection open by announcing a huge body and sending it slowly.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Box::pin(async move { Err(too_large(limit)) });
    }
    let declared = declared.unwrap_or(0) as usize;
    // The declared length is taken from the budget before any byte is buffered.
    let permit = match &budget {
        None => Some(Permit::unbounded()),
        Some(budget) => budget.reserve(declared),
    };
    let Some(mut permit) = permit else {
        return Box::pin(async move { Err(busy()) });
    };
    let payload = web::Payload::from_request(req, payload);
    Box::pin(async move {
        let mut payload = payload
            .await
            .map_err(|e| ApiError::invalid(format!("could not read the body: {e}")))?;
        let mut bytes = web::BytesMut::with_capacity(declared.min(PREALLOCATE));
        while let Some(chunk) = poll_fn(|cx| Pin::new(&mut payload).poll_next(cx)).await {
            let chunk =
                chunk.map_err(|e| ApiError::invalid(format!("could not read the body: {e}")))?;
            let total = bytes.len() + chunk.len();
            if total > limit {
                return Err(too_large(limit));
            }
            // A chunked body (or one longer than declared) grows its share as it arrives.
            if !permit.grow_to(total) {
                return Err(busy());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(RawBody(bytes.freeze(), permit))
    })
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
