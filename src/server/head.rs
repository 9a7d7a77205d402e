//! `HEAD` is answered like `GET` (RFC 9110): the route runs as a GET and the HTTP layer,
//! which still knows the request was a HEAD, sends the headers without the body.
//!
//! A GET that changes something (a poll's cursor acknowledges) must not do so for a HEAD:
//! the request keeps a mark (`was_head`) its handler can read.

use actix_web::dev::{Service, ServiceRequest};
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest};

/// The mark a HEAD turned into a GET carries.
#[derive(Clone, Copy)]
struct WasHead;

pub fn head_as_get<S>(mut req: ServiceRequest, srv: &S) -> S::Future
where
    S: Service<ServiceRequest>,
{
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(WasHead);
    }
    srv.call(req)
}

/// Whether the client sent this request as a HEAD.
pub fn was_head(req: &HttpRequest) -> bool {
    req.extensions().get::<WasHead>().is_some()
}
