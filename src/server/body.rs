//! Request bodies, read up to a limit and within the shared budget, for the API and the
//! pages alike.
//!
//! `read` is the one reader: a body larger than its limit (the API's `max_payload`, a
//! page's form limit) is refused, early when its `Content-Length` says so, and every body
//! is read within its share of `max_body_memory` (`body_budget`). Its refusals are
//! `ApiError`s (413 `payload_too_large`, 503 `busy`) so each caller answers them in its own
//! shape: the API's extractors (`api::extract`) in the JSON envelope, the pages' forms
//! (`pages::guard`) as an error page.

use std::future::{poll_fn, Future};
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_core::Stream;

use crate::error::ApiError;
use crate::server::body_budget::{BodyBudget, Permit};

/// The raw body, size-checked, with the share of `max_body_memory` it holds until dropped.
pub struct RawBody(pub web::Bytes, #[allow(dead_code)] Permit);

/// At most this much is allocated ahead of bytes that have actually arrived.
const PREALLOCATE: usize = 64 * 1024;

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the body is larger than the {limit}-byte limit"))
}

fn busy() -> ApiError {
    ApiError::Busy("the server is reading too many request bodies at once; retry shortly".into())
}

/// Reads a body of at most `limit` bytes within the shared budget.
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
