//! Request bodies, read up to a limit and within the shared budget, for the API and the
//! pages alike.
//!
//! `take` and `Taken::read` are the one reader: a body larger than its limit (the API's
//! `max_payload`, a page's form limit) is refused, early when its `Content-Length` says so,
//! and every body is read within the client's share of `max_body_memory` (`body_budget`),
//! and only once its sender is known: an API body after `Auth` (`api::extract`), a form
//! after its session (`pages::guard`). Its refusals are `ApiError`s (413
//! `payload_too_large`, 503 `busy`) so each caller answers them in its own shape.

use std::future::{poll_fn, Future};
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_core::Stream;

use crate::error::ApiError;
use crate::server::body_budget::{BodyBudget, Permit};
use crate::service::AppState;

/// The raw body, size-checked, with the share of `max_body_memory` it holds until dropped.
pub struct RawBody(pub web::Bytes, #[allow(dead_code)] Permit);

/// At most this much is allocated ahead of bytes that have actually arrived.
const PREALLOCATE: usize = 64 * 1024;

/// The refusal of a body over `limit` (413).
pub fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the body is larger than the {limit}-byte limit"))
}

fn busy() -> ApiError {
    ApiError::Busy("the server is reading too many request bodies at once; retry shortly".into())
}

/// The body's declared `Content-Length`, if any.
pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// A request's body, taken from the request and not yet read; reading it (`read`) takes
/// its share of the budget, so an extractor can first check who is sending it.
pub struct Taken {
    req: HttpRequest,
    payload: Pin<Box<dyn Future<Output = Result<web::Payload, actix_web::Error>>>>,
}

/// Takes the request's body (an extractor must, synchronously); nothing is reserved yet.
pub fn take(req: &HttpRequest, payload: &mut Payload) -> Taken {
    Taken {
        req: req.clone(),
        payload: Box::pin(web::Payload::from_request(req, payload)),
    }
}

impl Taken {
    /// Reads a body of at most `limit` bytes within the shared budget and the client's share
    /// of it (the pages' forms use it too, with their own limits).
    pub async fn read(self, limit: usize) -> Result<RawBody, ApiError> {
        let req = &self.req;
        // A declared length over the limit is refused before any byte is read, so a client
        // cannot hold a connection open by announcing a huge body and sending it slowly.
        let declared = declared_length(req);
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let declared = declared.unwrap_or(0) as usize;
        let budget = req
            .app_data::<web::Data<BodyBudget>>()
            .map(|b| b.clone().into_inner());
        let client = req
            .app_data::<web::Data<AppState>>()
            .and_then(|s| crate::server::client_addr::client_key(req, &s.config));
        // The declared length is taken from the budget before any byte is buffered.
        let permit = match &budget {
            None => Some(Permit::unbounded()),
            Some(budget) => budget.reserve(client, declared),
        };
        let Some(mut permit) = permit else {
            return Err(busy());
        };
        let mut payload = self
            .payload
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
    }
}
