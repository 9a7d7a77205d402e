//! The one error type of the HTTP API and its mapping to status + envelope.
//!
//! It sits at the HTTP edge, above the service layer (whose `ServiceError` it maps) and
//! below the API and the pages: the body reader (`server::body`) refuses with it, and the
//! pages turn it into an error page (`pages::render`).
//!
//! Handlers return `Result<_, ApiError>`; `ResponseError` turns every variant into
//! `{"success": false, "error": {"code", "message"}}`. Storage failures become 503 (the disk
//! or database is unavailable) with the details logged, never shown: a client learns that it
//! may retry, not how our SQL looks.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    StorageFull(String),
    /// Too much is in flight right now (request bodies): retry after a moment.
    #[error("{0}")]
    Busy(String),
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::bad("invalid_request", message)
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Conflict { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Unavailable(_) => "storage_unavailable",
            ApiError::StorageFull(_) => "storage_full",
            ApiError::Busy(_) => "busy",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::StorageFull(_) | ApiError::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Busy(_) = self {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        response.json(json!({
            "success": false,
            "error": { "code": self.code(), "message": self.to_string() },
        }))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(message) => ApiError::Conflict {
                code: "conflict",
                message,
            },
            StoreError::Full => {
                tracing::error!("the disk is full: writes are refused until space returns");
                ApiError::StorageFull(
                    "the server's disk is full; nothing was stored, retry later".into(),
                )
            }
            // Logged once, where the fsync failed (`lifecycle::fail_stop`).
            StoreError::Stopped => ApiError::Unavailable(
                "the database failed to sync to disk; the server is restarting, retry shortly"
                    .into(),
            ),
            // Logged once per outage, by the store (`postgres/liveness.rs`).
            StoreError::Unreachable => {
                ApiError::Unavailable("the database is unreachable; retry later".into())
            }
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::Unavailable("the database is unavailable; retry later".into())
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid { code, message } => ApiError::bad(code, message),
            ServiceError::Store(e) => e.into(),
        }
    }
}
