//! The store's records: what every backend takes and returns. Plain data, no SQL; the
//! API and the pages serialise them, the engine reads them.

use serde::Serialize;
use serde_json::value::RawValue;

use super::endpoint_settings::EndpointSettings;
use crate::clock::ser;
use crate::domain::{EndpointKind, ExtraHeaders};
use crate::wire::signing::Scheme;

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    /// The integer key list cursors page by (`store::page`): tenant ids are user-chosen
    /// strings, which do not sort by age.
    #[serde(skip)]
    pub rowid: i64,
}

/// A key as lists show it: never the key or its hash, only what lets a person tell
/// their keys apart.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub tenant_id: String,
    pub name: String,
    pub prefix: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    /// Revoked keys stay listed, marked, so a person sees which key stopped working when.
    #[serde(serialize_with = "ser::opt_ms")]
    pub revoked_at: Option<i64>,
}

/// An endpoint as stored: its settings (`endpoint_settings.rs`, answered flat beside the
/// rest) and what Herald keeps about it.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: i64,
    /// `push` or `poll`, chosen at creation; a poll endpoint has no URL.
    #[serde(rename = "type")]
    pub kind: EndpointKind,
    #[serde(flatten)]
    pub settings: EndpointSettings,
    pub disabled_reason: Option<String>,
    /// The circuit breaker's state.
    pub circuit: Circuit,
    /// For a FIFO endpoint: the delivery at the head, which every later one waits for.
    pub fifo_head: Option<i64>,
    /// Requests in flight the engine allows it now (adaptive; filled by the front ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    pub tenant_id: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ms")]
    pub updated_at: i64,
    // The signing secrets (in clear here, sealed in the database) are never serialised:
    // an endpoint is answered by list and get calls, the secret only on create and rotate.
    #[serde(skip)]
    pub secret: String,
    #[serde(skip)]
    pub previous_secret: Option<String>,
    #[serde(skip)]
    pub previous_secret_until: Option<i64>,
    /// Start of the current run of failures, for the auto-disable rule; internal state,
    /// the circuit is what the API shows.
    #[serde(skip)]
    pub failing_since: Option<i64>,
}

/// An endpoint's circuit: `closed` (deliveries flow), `open` (they wait for the next
/// probe), or `half_open` (the probe is due or on its way).
#[derive(Debug, Clone, Serialize)]
pub struct Circuit {
    /// A `&'static str` rather than an enum: it is only ever shown (API, pages), and the
    /// three words are the API's.
    pub state: &'static str,
    #[serde(serialize_with = "ser::opt_ms")]
    pub since: Option<i64>,
    #[serde(serialize_with = "ser::opt_ms")]
    pub next_probe: Option<i64>,
    pub consecutive_failures: i64,
}

impl Circuit {
    pub fn new(
        opened_at: Option<i64>,
        next_probe: Option<i64>,
        failures: i64,
        now: i64,
    ) -> Circuit {
        // Derived from the stored times, not stored itself: "half open" is just "the probe
        // is due", which changes with the clock and would go stale in a column.
        let state = match (opened_at, next_probe) {
            (None, _) => "closed",
            (Some(_), Some(probe)) if probe <= now => "half_open",
            (Some(_), _) => "open",
        };
        Circuit {
            state,
            since: opened_at,
            // A closed circuit has no probe, whatever a stale column still says.
            next_probe: opened_at.and(next_probe),
            consecutive_failures: failures,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.state == "closed"
    }
}

/// A validated endpoint to create. Built only from parsed types (`EndpointUrl`,
/// `EventFilter`, `ExtraHeaders`), so a backend writes it without checking anything again.
pub struct NewEndpoint {
    pub kind: EndpointKind,
    pub secret: String,
    pub settings: EndpointSettings,
}

/// A pending delivery of a poll endpoint, as the consumer reads it.
#[derive(Debug, Clone)]
pub struct Polled {
    pub delivery_id: i64,
    pub event_id: String,
    pub event: String,
    pub body: String,
    pub created_at: i64,
}

/// An event ready to store (`wire::payload` makes it from a published body, so the
/// delivery format's layer needs nothing of the store's).
pub use crate::wire::payload::NewEvent;

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
    /// Raw, not parsed: the stored canonical text is answered byte for byte, so what a
    /// client reads is what was signed.
    pub payload: Box<RawValue>,
    pub tenant_id: String,
    #[serde(serialize_with = "ser::ms")]
    pub created_at: i64,
    /// The integer key deliveries reference and lists page by; the public id is a string.
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
    /// `pending`, `succeeded`, `failed` or `cancelled`, as stored: the schema's CHECK is
    /// the one list.
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

#[derive(Debug, Clone, Serialize)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub example: Option<Box<RawValue>>,
    /// The JSON Schema (draft 2020-12) its payloads must satisfy, if any.
    pub schema: Option<Box<RawValue>>,
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
    /// Opened from its seal when claimed: the worker signs without a database round trip.
    pub secret: String,
    /// The previous secret while its rotation grace period lasts.
    /// Signing with both lets receivers switch to the new secret at their own pace.
    pub previous_secret: Option<String>,
    /// Attempts made in the current round before this one.
    pub round_attempts: u32,
    /// The endpoint's own rate limit (requests per second), if it has one.
    pub rate_limit: Option<f64>,
    /// When the endpoint was last sent to (ms), so a limit holds across restarts.
    pub last_attempt_at: Option<i64>,
    /// A FIFO endpoint: one request in flight, in publish order.
    pub fifo: bool,
    /// The endpoint's own retry schedule and request timeout, if it has them.
    pub retry_schedule: Option<Vec<std::time::Duration>>,
    pub request_timeout: Option<std::time::Duration>,
    /// Attempts made before this one, all rounds (0: this is the first, for the
    /// publish → first-attempt latency metric).
    pub attempts: u32,
    /// When the delivery was created (the publish), ms.
    pub created_at: i64,
    /// It carries one of Herald's own events (`herald.…`).
    pub operational: bool,
    /// The publish's W3C `traceparent`, stored with the event: the attempt's span is its
    /// child (`engine::telemetry`). `None` when tracing was off at the publish.
    pub traceparent: Option<String>,
    /// How to authenticate to the endpoint, opened from its seal when claimed.
    pub auth: Option<crate::domain::EndpointAuth>,
    /// The event's type (a transformation reads it as `webhook.eventType`).
    pub event_type: String,
    /// The endpoint's transformation, run before the body is signed.
    pub transformation: Option<crate::wire::transform::Transformation>,
    /// The endpoint's client certificate, CA bundle and proxy, as stored (the key and the
    /// proxy's credentials opened from their seals).
    pub reach: Reach,
}

/// How a worker reaches an endpoint beyond its URL (`domain::reach`, README: Reaching
/// receivers), as stored. All `None` for most endpoints, which share one agent; the engine
/// builds (and caches) a TLS and proxy setup from the others (`engine::agents`).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Reach {
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub ca_bundle: Option<String>,
    pub proxy: Option<String>,
    pub proxy_credentials: Option<String>,
}

impl std::fmt::Debug for Reach {
    // The key and the proxy's credentials stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("client_cert", &self.client_cert.is_some())
            .field("ca_bundle", &self.ca_bundle.is_some())
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// What became of a delivery after one attempt (decided by `engine::retry`). A retry
/// carries its absolute time (ms), computed by the engine, so the store writes it as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    RetryAt(i64),
    Failed,
    /// Not sent, by the endpoint's own choice (its transformation set `cancel`): the
    /// delivery ends `cancelled`, and the endpoint's health neither gains nor loses.
    Cancelled,
    /// Failed for good before anything was sent (the endpoint's transformation failed):
    /// the delivery ends `failed`, but the receiver was not asked, so its endpoint's
    /// health neither gains nor loses (a broken transformation opens no circuit).
    Unsent,
}

impl Verdict {
    /// The delivery's status after this verdict, and when it is next due (a retry only):
    /// what both backends' recorders write.
    pub fn outcome(self) -> (&'static str, Option<i64>) {
        match self {
            Verdict::Succeeded => ("succeeded", None),
            Verdict::RetryAt(at) => ("pending", Some(at)),
            Verdict::Failed | Verdict::Unsent => ("failed", None),
            Verdict::Cancelled => ("cancelled", None),
        }
    }
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
    /// The endpoint asked for no requests before this time (ms): 429 or 503 with
    /// `Retry-After`. The engine holds the endpoint's other deliveries back until then.
    pub backoff_until: Option<i64>,
    /// The delivery carries one of Herald's own events: its failure raises no further one.
    pub operational: bool,
}

/// A tenant key to store: only its hash and a prefix a person can recognise. The key
/// itself is shown once at creation and never reaches the store, so a stolen database
/// holds no usable key.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
}

/// A validated catalogue entry; `example` is canonical JSON, stored as text and answered
/// raw, like an event's payload.
#[derive(Debug, Clone)]
pub struct NewEventType {
    pub name: String,
    pub description: String,
    pub example: Option<String>,
    /// Canonical JSON, compiled once before it is stored (`service::schemas::compile`).
    pub schema: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Circuit;

    #[test]
    fn a_circuit_is_half_open_once_its_probe_is_due() {
        assert_eq!(Circuit::new(None, None, 2, 1_000).state, "closed");
        assert_eq!(Circuit::new(Some(0), Some(2_000), 5, 1_000).state, "open");
        assert_eq!(
            Circuit::new(Some(0), Some(1_000), 5, 1_000).state,
            "half_open"
        );
        assert!(Circuit::new(None, Some(5), 0, 0).next_probe.is_none());
    }
}

/// A replay's window and page (`Deliveries::replay`, `store::replay`).
#[derive(Debug, Clone)]
pub struct ReplayQuery {
    /// Events created at or after `since` and before `until` (ms).
    pub since: i64,
    pub until: i64,
    /// Continue after this event (the previous answer's `next`).
    pub after: Option<i64>,
    /// Create at most this many deliveries (1 to `replay::MAX_LIMIT`).
    pub limit: usize,
    /// Read at most this many stored events, delivered ones included (1 to `replay::SCAN`;
    /// the endpoint page's count reads fewer than the API's replay).
    pub scan: usize,
    /// Count only; create nothing.
    pub dry_run: bool,
}

/// What a replay created (a dry run: would create).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    /// Deliveries created, one per event.
    pub count: usize,
    /// The first few of those events' ids, oldest first.
    pub event_ids: Vec<String>,
    /// Where the next call continues; `None` once the window is done.
    pub next: Option<i64>,
    /// The tenant's oldest event still stored (id, created_at): retention pruned the older.
    pub oldest: Option<(String, i64)>,
}
