//! "Try it": an endpoint's transformation (or one not saved yet) run on a sample, as the
//! API's `POST /webhooks/{id}/transformation/test` and the endpoint page's form show it.
//! The run is the one a delivery gets (`wire::transform::run`, same sandbox and limits),
//! on a blocking thread so a run that spends its whole budget holds no HTTP worker.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{AppState, Result, ServiceError};
use crate::wire::transform::{self, Outcome, Transformation};

/// What a trial came to: the request that would be sent, a cancel, or the error.
#[derive(Debug, Serialize)]
pub struct Trial {
    /// `send`, `cancel` or `error`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// The body that would be signed and sent, byte for byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl AppState {
    /// Runs `source` (or, when `None`, the endpoint's saved transformation) on `payload`
    /// as a delivery of `event_type` to endpoint `id` would. The endpoint's URL is the
    /// input's; a URL the transformation returns is checked as a delivery's would be.
    pub async fn try_transformation(
        &self,
        tenant: &str,
        id: i64,
        source: Option<String>,
        event_type: String,
        payload: Box<RawValue>,
    ) -> Result<Trial> {
        let endpoint = self.store.get_endpoint(tenant, id).await?;
        let url = endpoint.settings.url_str().to_owned();
        if url.is_empty() {
            return Err(ServiceError::invalid(
                "a poll endpoint has no transformation: its consumer reads the events as published",
            ));
        }
        let saved = endpoint.settings.transformation;
        if source.is_none() && saved.is_none() {
            return Err(ServiceError::invalid(
                "this endpoint has no transformation; send `transformation` to try one",
            ));
        }
        let allow_private = self.config.allow_private_targets;
        let run = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let transformation = match source {
                Some(s) => Transformation::parse(&s).map_err(|e| format!("transformation: {e}")),
                None => saved.ok_or_else(|| "this endpoint has no transformation".to_owned()),
            };
            let outcome = transformation
                .and_then(|t| transform::run_for(&t, &url, &event_type, &payload, allow_private));
            (outcome, started.elapsed())
        });
        let (outcome, took) = run
            .await
            .map_err(|_| ServiceError::invalid("the transformation's run was lost"))?;
        let duration_ms = took.as_millis() as u64;
        Ok(match outcome {
            Ok(Outcome::Send(r)) => Trial {
                outcome: "send",
                method: Some(r.method),
                url: Some(r.url),
                headers: Some(r.headers),
                body: Some(r.body),
                error: None,
                duration_ms,
            },
            Ok(Outcome::Cancel) => Trial {
                outcome: "cancel",
                method: None,
                url: None,
                headers: None,
                body: None,
                error: None,
                duration_ms,
            },
            Err(e) => Trial {
                outcome: "error",
                method: None,
                url: None,
                headers: None,
                body: None,
                error: Some(e),
                duration_ms,
            },
        })
    }
}
