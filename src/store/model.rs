//! The store's records: what every backend takes and returns. Plain data, no SQL; the
//! API and the pages serialise them, the engine reads them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::clock::ser;
use crate::domain::{EndpointStatus, EndpointUrl, EventFilter, ExtraHeaders};
use crate::signing::Scheme;

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    #[serde(skip)]
    pub rowid: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub tenant_id: String,
    pub name: String,
    pub prefix: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    #[serde(serialize_with = "ser::opt_ms")]
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub status: EndpointStatus,
    pub description: String,
    #[serde(serialize_with = "ser::masked_headers")]
    pub headers: BTreeMap<String, String>,
    /// The endpoint's own schemes; `None` means the deployment default.
    pub signature: Option<Vec<Scheme>>,
    pub disabled_reason: Option<String>,
    pub tenant_id: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ms")]
    pub updated_at: i64,
    #[serde(skip)]
    pub secret: String,
    #[serde(skip)]
    pub previous_secret: Option<String>,
    #[serde(skip)]
    pub previous_secret_until: Option<i64>,
    #[serde(skip)]
    pub failing_since: Option<i64>,
}

/// A validated endpoint to create.
pub struct NewEndpoint {
    pub url: EndpointUrl,
    pub filter: EventFilter,
    pub secret: String,
    pub description: String,
    pub headers: ExtraHeaders,
    pub signature: Option<Vec<Scheme>>,
    pub status: EndpointStatus,
}

/// A validated partial update; `None` leaves a field as it is.
#[derive(Default)]
pub struct EndpointPatch {
    pub url: Option<EndpointUrl>,
    pub filter: Option<EventFilter>,
    pub description: Option<String>,
    pub headers: Option<ExtraHeaders>,
    pub signature: Option<Option<Vec<Scheme>>>,
    pub status: Option<EndpointStatus>,
}

/// An event ready to store: its type and the canonical body every attempt will send.
#[derive(Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub body: String,
    pub idempotency_key: Option<String>,
}

/// What a publish answers.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub id: String,
    pub event: String,
    pub deliveries: usize,
    /// True when an earlier publish with the same idempotency key is returned instead.
    #[serde(skip)]
    pub replayed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    pub event: String,
    pub payload: Box<RawValue>,
    pub tenant_id: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    #[serde(skip)]
    pub seq: i64,
}

/// Filters of the event list.
#[derive(Debug, Default, Clone)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub event: String,
    pub endpoint_id: i64,
    pub status: String,
    pub attempts: i64,
    #[serde(serialize_with = "ser::opt_ms")]
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ms")]
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub id: i64,
    #[serde(serialize_with = "ser::ms")]
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response_headers: Option<serde_json::Map<String, serde_json::Value>>,
    pub response_body: Option<String>,
}

/// Filters of a delivery list.
#[derive(Debug, Default, Clone)]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub endpoint_id: Option<i64>,
    pub event_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Counts for the overview page and /metrics.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub pending: i64,
    pub succeeded_24h: i64,
    pub failed_24h: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub example: Option<Box<RawValue>>,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    #[serde(skip)]
    pub rowid: i64,
}

/// A delivery a worker may send now, with everything the request needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub tenant_id: String,
    pub event_id: String,
    pub body: String,
    pub url: String,
    pub headers: ExtraHeaders,
    /// The endpoint's own schemes, or `None` for the deployment default.
    pub schemes: Option<Vec<Scheme>>,
    pub secret: String,
    /// The previous secret while its rotation grace period lasts.
    pub previous_secret: Option<String>,
    /// Attempts made in the current round before this one.
    pub round_attempts: u32,
}

/// What became of a delivery after one attempt (decided by `engine::retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    RetryAt(i64),
    Failed,
}

/// One finished attempt, ready to be written.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_headers: Option<serde_json::Map<String, serde_json::Value>>,
    pub response_body: Option<String>,
    pub verdict: Verdict,
    /// The endpoint answered 410 Gone: it asks never to be called again.
    pub gone: bool,
}

/// A tenant key to store: only its hash and a prefix a person can recognise.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
}

/// A validated catalogue entry; `example` is canonical JSON.
#[derive(Debug, Clone)]
pub struct NewEventType {
    pub name: String,
    pub description: String,
    pub example: Option<String>,
}
