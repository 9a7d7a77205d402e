//! The shapes of the API's answers, for the OpenAPI document only.
//!
//! The records the handlers answer are the store's (`store::model`), serialised with their
//! own helpers (times as RFC 3339 strings, a poll endpoint's empty URL as `null`, masked
//! header values); these types describe what that serialisation produces, so the store stays
//! free of documentation concerns. The schemathesis run (tests/hardening/schemathesis.rs)
//! checks every answer against them, so they cannot drift unnoticed.
#![allow(dead_code)]

use std::collections::BTreeMap;

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// An event name (`job.completed`): 1-128 letters, digits, `.`, `_`, `-`, `:`, not starting
/// or ending with `.` (`domain::EventName`).
pub const EVENT_NAME: &str = "^[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,126}[A-Za-z0-9_:-])?$";
/// An endpoint's subscription: an event name, `*`, or a prefix wildcard (`book.*`).
pub const EVENT_PATTERN: &str =
    r"^(\*|[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,126}[A-Za-z0-9_:-])?(\.\*)?)$";
/// A tenant id (`domain::TenantId`).
pub const TENANT_ID: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// A time as `clock::parse` reads it: RFC 3339, or unix seconds.
pub fn time() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime),
        )))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^-?[0-9]{1,15}$")),
        )
        .description(Some("an RFC 3339 time, or unix seconds"))
        .into()
}

/// `{"success": true, "data": ...}`.
#[derive(ToSchema)]
pub struct Success<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

/// A page of a list, newest first: `data` is the array, `next_cursor` fetches the next page.
#[derive(ToSchema)]
pub struct ListPage<T> {
    /// Always `true`.
    pub success: bool,
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Every refusal: `{"success": false, "error": {"code", "message"}}`.
#[derive(ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(ToSchema)]
pub struct ErrorBody {
    /// A snake_case code: `invalid_request`, `validation_error`, `invalid_json`,
    /// `invalid_pagination`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `method_not_allowed`, `payload_too_large`, `too_many_requests`, `busy`,
    /// `storage_unavailable`, `storage_full`, …
    #[schema(example = "not_found")]
    pub code: String,
    /// A sentence for a person.
    pub message: String,
}

#[derive(ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct ApiKey {
    pub id: i64,
    pub tenant_id: String,
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

/// A new key: the token is shown this once.
#[derive(ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub token: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Push,
    Poll,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    Active,
    Paused,
    Disabled,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureScheme {
    Standard,
    Timestamped,
    Body,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    Parallel,
    Fifo,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// The endpoint's circuit breaker.
#[derive(ToSchema)]
pub struct Circuit {
    pub state: CircuitState,
    #[schema(format = DateTime)]
    pub since: Option<String>,
    #[schema(format = DateTime)]
    pub next_probe: Option<String>,
    pub consecutive_failures: i64,
}

/// How Herald authenticates to an endpoint, by `type`: HTTP Basic, a static bearer token, or
/// an OAuth2 access token fetched with the client credentials grant (cached until shortly
/// before `expires_in`, replaced once when the endpoint answers 401). The secret
/// (`password`, `token`, `client_secret`) is write-only: answers show `********`, and
/// `********` sent back keeps the stored one. `token_url` passes the same address rules as
/// an endpoint URL.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EndpointAuthInput {
    Basic {
        /// No `:`.
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    #[serde(rename = "oauth2_client_credentials")]
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        /// Sent as the token request's `scope`.
        scope: Option<String>,
        /// Sent as the token request's `audience` (Auth0 and others ask for one).
        audience: Option<String>,
    },
}

/// An endpoint (the seeds call it a webhook).
#[derive(ToSchema)]
pub struct Webhook {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: EndpointKind,
    /// `null` for a poll endpoint.
    pub url: Option<String>,
    pub events: Vec<String>,
    pub status: EndpointStatus,
    pub description: String,
    /// Extra headers sent with each delivery: names only, every value `********`.
    pub headers: BTreeMap<String, String>,
    /// The endpoint's schemes; `null`: the deployment default.
    pub signature: Option<Vec<SignatureScheme>>,
    pub disabled_reason: Option<String>,
    /// Requests per second; `null`: the deployment's `rate_limit`.
    pub rate_limit: Option<f64>,
    pub circuit: Circuit,
    pub ordering: Ordering,
    pub fifo_head: Option<i64>,
    /// Requests in flight the engine allows it now (adaptive).
    #[schema(minimum = 0)]
    pub concurrency: Option<i64>,
    /// Its own retry schedule such as `"10s,1m"`; `null`: the deployment's.
    pub retry_schedule: Option<String>,
    /// Its own request timeout such as `"5s"`; `null`: the deployment's.
    pub request_timeout: Option<String>,
    /// Disabled after failing this long without a success, such as `"12h"`; `null`: the
    /// deployment's `disable_after`.
    pub disable_after: Option<String>,
    /// The client certificate presented to this endpoint (mTLS); its key is never answered.
    pub client_certificate: Option<ClientCertificate>,
    /// PEM: the only roots trusted for this endpoint; `null`: the web's and `extra_ca_file`.
    pub ca_bundle: Option<String>,
    /// Its own proxy (the password masked `********`) or `none`; `null`: the deployment's.
    pub proxy: Option<String>,
    /// How Herald authenticates to it, every secret `********`; `null`: no auth.
    pub auth: Option<EndpointAuthInput>,
    /// Its transformation's JavaScript source; `null`: deliveries go as published.
    pub transformation: Option<String>,
    /// Its JSONPath filter expression over the payload; `null`: none (every event that
    /// `events` matches).
    pub filter: Option<String>,
    pub tenant_id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// What is shown of an endpoint's client certificate.
#[derive(ToSchema)]
pub struct ClientCertificate {
    /// RFC 4514 distinguished name.
    pub subject: String,
    pub issuer: String,
    /// SHA-256 of the DER, `AB:CD:…` as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint_sha256: String,
    #[schema(format = DateTime)]
    pub not_before: String,
    #[schema(format = DateTime)]
    pub not_after: String,
}

/// What a transformation's trial came to (`POST /webhooks/{id}/transformation/test`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TransformationTrial {
    /// `send`: the request below would go; `cancel`: nothing would be sent; `error`: the
    /// delivery would fail with `error`.
    #[schema(pattern = "^(send|cancel|error)$")]
    pub outcome: String,
    pub method: Option<String>,
    pub url: Option<String>,
    /// Headers the transformation adds (beside the signature and extra headers).
    pub headers: Option<BTreeMap<String, String>>,
    /// The body that would be signed and sent, byte for byte.
    pub body: Option<String>,
    pub error: Option<String>,
    #[schema(minimum = 0)]
    pub duration_ms: i64,
}

/// An endpoint with its signing secret: answered on create and on rotate only.
#[derive(ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
    /// Present when the chosen `secret_key` gives a key shorter than Standard Webhooks'
    /// 24 bytes: it was accepted, and says so.
    pub warning: Option<String>,
}

/// What a publish answers.
#[derive(ToSchema)]
pub struct Published {
    pub id: String,
    pub event: String,
    /// Deliveries queued (0 when no active endpoint subscribes).
    #[schema(minimum = 0)]
    pub deliveries: i64,
}

#[derive(ToSchema)]
pub struct BatchPublished {
    pub events: Vec<Published>,
    #[schema(minimum = 0)]
    pub deliveries: i64,
}

#[derive(ToSchema)]
pub struct Event {
    pub id: String,
    pub event: String,
    /// The payload as published (with `timestamp` added when it had none).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub tenant_id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub event: String,
    pub endpoint_id: i64,
    pub status: DeliveryStatus,
    pub attempts: i64,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct EventWithDeliveries {
    #[serde(flatten)]
    pub event: Event,
    pub deliveries: Vec<Delivery>,
}

/// One HTTP request of a delivery.
#[derive(ToSchema)]
pub struct Attempt {
    /// Grows with each attempt; 0 for a delivery's first attempt when it succeeded (that
    /// one is kept with its delivery rather than as an attempt of its own).
    pub id: i64,
    #[schema(format = DateTime)]
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub response_headers: Option<serde_json::Value>,
    /// The first few KiB of the response.
    pub response_body: Option<String>,
}

#[derive(ToSchema)]
pub struct DeliveryWithAttempts {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<Attempt>,
}

#[derive(ToSchema)]
pub struct EventType {
    pub name: String,
    pub description: String,
    /// An example payload, used by "send test" and the pages.
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
    /// The JSON Schema (draft 2020-12) its payloads must satisfy, if any.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// One pending delivery of a poll endpoint.
#[derive(ToSchema)]
pub struct PolledItem {
    pub delivery_id: i64,
    pub event_id: String,
    pub event: String,
    /// The stored body, byte for byte: what the signatures cover.
    pub body: String,
    /// The signature headers (and extra headers) a push would carry.
    pub headers: BTreeMap<String, String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct DeletedWebhook {
    pub id: i64,
}

#[derive(ToSchema)]
pub struct DeletedTenant {
    pub id: String,
}

#[derive(ToSchema)]
pub struct DeletedByName {
    pub name: String,
}

#[derive(ToSchema)]
pub struct Recovered {
    pub id: i64,
    /// Failed deliveries queued again.
    #[schema(minimum = 0)]
    pub recovered: i64,
}

#[derive(ToSchema)]
pub struct TestSent {
    pub event_id: String,
    pub delivery_id: i64,
    pub event: String,
}

#[derive(ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: String,
}

/// `POST /api/v1/events`: any JSON object with a string `event` (other members are kept).
#[derive(ToSchema)]
pub struct PublishPayload {
    /// The event type, such as `job.completed`.
    #[schema(pattern = "^[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,126}[A-Za-z0-9_:-])?$")]
    pub event: String,
    /// ISO-8601 UTC by convention; added when absent, kept as sent otherwise.
    pub timestamp: Option<serde_json::Value>,
    /// Every other member, delivered as sent: said as `additionalProperties`, without
    /// which a generated client's type allows only `event` and `timestamp`.
    #[serde(flatten)]
    pub other: std::collections::HashMap<String, serde_json::Value>,
}

#[derive(ToSchema)]
pub struct PublishBatch {
    /// 1 to 1000 payloads, published all or nothing.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<PublishPayload>,
}

/// `signature`: a list of schemes, or a string with one scheme or a comma list.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum SchemeList {
    List(Vec<SignatureScheme>),
    Text(String),
}

/// `retry_schedule`: `"10s,1m,5m"` or `["10s", "1m", "5m"]`.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum RetrySchedule {
    List(Vec<String>),
    Text(String),
}

/// What a replay created (`POST /webhooks/{id}/replay`), or would create (a dry run).
#[derive(ToSchema)]
pub struct Replay {
    /// The webhook.
    pub id: i64,
    pub dry_run: bool,
    #[schema(format = DateTime)]
    pub since: String,
    #[schema(format = DateTime)]
    pub until: String,
    /// Deliveries created (a dry run: that would be), one per event.
    #[schema(minimum = 0)]
    pub count: i64,
    /// The first ten of those events, oldest first.
    pub event_ids: Vec<String>,
    /// Pass as `cursor` (with the same since and until) to go on; `null`: the window is done.
    #[schema(pattern = "^[0-9]{1,18}$")]
    pub next: Option<String>,
    /// Present only when `since` is before what `retention` keeps.
    #[schema(required = false)]
    pub retention: Option<ReplayPruned>,
}

/// The part of a replay's window that retention has pruned already.
#[derive(ToSchema)]
pub struct ReplayPruned {
    /// Events older than this are pruned.
    #[schema(format = DateTime)]
    pub kept_since: String,
    /// The tenant's oldest event still kept.
    pub oldest_event: Option<ReplayOldestEvent>,
    pub message: String,
}

#[derive(ToSchema)]
pub struct ReplayOldestEvent {
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}
