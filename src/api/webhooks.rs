//! `/api/v1/webhooks`: the endpoints of a tenant, in the seeds' shapes.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::extract::ApiJson;
use super::{auth::Auth, cursor, list, ok, respond, schemas, AppState};
use crate::clock::now_ms;
use crate::domain::auth::AuthInput;
use crate::domain::{
    parse_request_timeout, parse_retry_schedule, CaBundle, ClientCert, EndpointAuth, EndpointKind,
    EndpointProxy, EndpointStatus, EndpointUrl, EventFilter, ExtraHeaders, Ordering, PayloadFilter,
};
use crate::error::ApiError;
use crate::service::check_description;
use crate::store::endpoint_settings::parse_disable_after;
use crate::store::{Endpoint, EndpointPatch, EndpointSettings, NewEndpoint};
use crate::units::parse_rate_limit;
use crate::wire::signing::{generate_secret, short_key_warning, validate_secret, Scheme};
use crate::wire::transform::Transformation;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks")
            .route(web::get().to(list_webhooks))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/webhooks/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/webhooks/{id}/rotate-secret").route(web::post().to(rotate_secret)))
    .service(
        web::resource("/webhooks/{id}/transformation/test")
            .route(web::post().to(test_transformation)),
    );
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    /// `push` (default) or `poll`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<schemas::EndpointKind>)]
    kind: Option<String>,
    /// Required for a push endpoint; a poll endpoint has none.
    url: Option<String>,
    /// Event names, `*`, or prefix wildcards such as `book.*`.
    #[schema(min_items = 1, max_items = 100, value_type = Vec<EventPattern>)]
    #[serde(deserialize_with = "event_list")]
    events: Vec<String>,
    /// `whsec_<base64>` or any string of visible characters (Standard Webhooks asks for a key
    /// of 24 to 64 bytes; a shorter one is accepted with a warning); generated when absent.
    secret_key: Option<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<schemas::EndpointStatus>)]
    status: Option<String>,
    #[schema(value_type = Option<schemas::SchemeList>)]
    signature: Option<SchemeList>,
    /// Requests per second.
    rate_limit: Option<f64>,
    #[schema(value_type = Option<schemas::Ordering>)]
    ordering: Option<String>,
    #[schema(value_type = Option<schemas::RetrySchedule>)]
    retry_schedule: Option<serde_json::Value>,
    /// Such as `"5s"`.
    request_timeout: Option<String>,
    /// Such as `"12h"` (1m to 365d): disabled after failing this long without a success;
    /// absent: the deployment's `disable_after`.
    disable_after: Option<String>,
    /// PEM: the client certificate Herald presents to this endpoint on the TLS handshake
    /// (mTLS), with any intermediates after it; needs `client_key`.
    client_certificate: Option<String>,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1). Write-only: sealed at
    /// rest and never answered.
    client_key: Option<String>,
    /// PEM: the only CA certificates trusted for this endpoint's server certificate.
    ca_bundle: Option<String>,
    /// The endpoint's forward proxy (`http://user:pass@proxy:3128`; the password is sealed
    /// and answered masked), or `none` for no proxy; absent: the deployment's `proxy`.
    proxy: Option<String>,
    /// How Herald authenticates to the endpoint; the secret is write-only.
    #[schema(value_type = Option<schemas::EndpointAuthInput>)]
    auth: Option<AuthInput>,
    /// JavaScript defining `function handler(webhook) { … return webhook; }`, run on each
    /// delivery before it is signed (README: Transformations). Push endpoints only.
    #[schema(max_length = 65536)]
    transformation: Option<String>,
    /// An RFC 9535 JSONPath filter expression over the payload, such as
    /// `$.data.amount > 1000 && $.status == "paid"`: only events it matches (beside
    /// `events`) are delivered. Absent, null or empty: every event `events` matches.
    #[schema(
        max_length = 1024,
        example = "$.data.amount > 1000 && $.status == \"paid\""
    )]
    filter: Option<String>,
}

/// PATCH: absent fields stay; `signature: null` returns to the deployment default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateWebhook {
    url: Option<String>,
    #[schema(min_items = 1, max_items = 100, value_type = Option<Vec<EventPattern>>)]
    #[serde(default, deserialize_with = "some_event_list")]
    events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    description: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<schemas::EndpointStatus>)]
    status: Option<String>,
    /// `null` returns to the deployment default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<schemas::SchemeList>)]
    signature: Option<Option<SchemeList>>,
    /// `null` returns to the deployment's `rate_limit`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    rate_limit: Option<Option<f64>>,
    #[schema(value_type = Option<schemas::Ordering>)]
    ordering: Option<String>,
    /// `null` returns to the deployment's schedule.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<schemas::RetrySchedule>)]
    retry_schedule: Option<Option<serde_json::Value>>,
    /// `null` returns to the deployment's timeout.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    request_timeout: Option<Option<String>>,
    /// `null` returns to the deployment's `disable_after`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    disable_after: Option<Option<String>>,
    /// PEM; `null` removes the client certificate and its key. Sent without `client_key`,
    /// the stored key is kept (a renewed certificate for the same key).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    client_certificate: Option<Option<String>>,
    /// PEM; only with `client_certificate`. Write-only.
    client_key: Option<String>,
    /// PEM; `null` returns to the web's roots and `extra_ca_file`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    ca_bundle: Option<Option<String>>,
    /// A proxy URL or `none`; `null` returns to the deployment's `proxy`. A masked password
    /// (`********`, as answered) keeps the stored one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    proxy: Option<Option<String>>,
    /// `null` removes the endpoint's auth; a secret sent as `********` keeps the stored one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<schemas::EndpointAuthInput>, nullable)]
    auth: Option<Option<AuthInput>>,
    /// `null` removes it: deliveries go as published.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 65536)]
    transformation: Option<Option<String>>,
    /// A JSONPath filter expression over the payload; `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 1024)]
    filter: Option<Option<String>>,
}

/// One subscription: an event name, `*`, or a prefix wildcard (`book.*`); for the document.
#[derive(ToSchema)]
#[schema(pattern = r"^(\*|[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,126}[A-Za-z0-9_:-])?(\.\*)?)$")]
#[allow(dead_code)]
struct EventPattern(String);

/// `signature` as a list (`["standard", "body"]`) or a string with one scheme or a comma
/// list (`"standard,body"`), the spelling of the `signature_schemes` config key.
enum SchemeList {
    List(Vec<String>),
    Text(String),
}

impl<'de> Deserialize<'de> for SchemeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let expected = "signature: expected a scheme name, a comma-separated string such as \"standard,body\", or a list of scheme names";
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(text) => Ok(SchemeList::Text(text)),
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(D::Error::custom(expected)),
                })
                .collect::<Result<_, _>>()
                .map(SchemeList::List),
            _ => Err(D::Error::custom(expected)),
        }
    }
}

impl SchemeList {
    fn joined(&self) -> String {
        match self {
            SchemeList::List(items) => items.join(","),
            SchemeList::Text(text) => text.clone(),
        }
    }
}

/// Tells "absent" (None) from "null" (Some(None)).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
    #[allow(dead_code)]
    tenant: Option<String>,
}

/// An endpoint together with its secret: only answered on create and rotate.
#[derive(Serialize)]
pub struct WithSecret<'a> {
    #[serde(flatten)]
    pub endpoint: &'a Endpoint,
    pub secret: &'a str,
    /// Why the chosen `secret_key` is weak, when it is (see `short_key_warning`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

fn invalid(field: &str) -> impl Fn(String) -> ApiError + '_ {
    move |e| ApiError::bad("validation_error", format!("{field}: {e}"))
}

/// A message that names its field already (`auth.password: …`).
fn validation(e: String) -> ApiError {
    ApiError::bad("validation_error", e)
}

fn parse_signature(schemes: &SchemeList) -> Result<Vec<Scheme>, ApiError> {
    crate::wire::signing::parse_schemes(&schemes.joined()).map_err(invalid("signature"))
}

/// A push endpoint needs a URL; a poll endpoint must not have one (nothing is sent to it).
fn parse_url_for(
    kind: EndpointKind,
    url: Option<&str>,
    allow_private: bool,
) -> Result<Option<EndpointUrl>, ApiError> {
    match (kind, url) {
        (EndpointKind::Push, None) => Err(ApiError::bad(
            "validation_error",
            "url: required for a push endpoint (or set \"type\": \"poll\")",
        )),
        (EndpointKind::Push, Some(u)) => EndpointUrl::parse(u, allow_private)
            .map(Some)
            .map_err(invalid("url")),
        (EndpointKind::Poll, None) => Ok(None),
        (EndpointKind::Poll, Some(_)) => Err(ApiError::bad(
            "validation_error",
            "url: a poll endpoint has no URL; its consumer reads GET /api/v1/webhooks/{id}/poll",
        )),
    }
}

fn reach_error(e: String) -> ApiError {
    ApiError::bad("validation_error", e)
}

/// A create's certificate and key: both or neither.
fn parse_client_cert(
    cert: Option<&str>,
    key: Option<&str>,
) -> Result<Option<ClientCert>, ApiError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => ClientCert::parse(cert, Some(key), now_ms())
            .map(Some)
            .map_err(reach_error),
        (Some(_), None) => Err(reach_error(
            "client_key: required with client_certificate".into(),
        )),
        (None, Some(_)) => Err(reach_error(
            "client_certificate: required with client_key".into(),
        )),
    }
}

fn parse_ca_bundle(pem: &str) -> Result<CaBundle, ApiError> {
    CaBundle::parse("ca_bundle", pem).map_err(reach_error)
}

fn parse_proxy(proxy: &str, allow_private: bool) -> Result<EndpointProxy, ApiError> {
    EndpointProxy::parse(proxy, allow_private).map_err(|e| reach_error(format!("proxy: {e}")))
}

fn parse_description(d: String) -> Result<String, ApiError> {
    Ok(check_description(d)?)
}

/// `events` as a list. Written as a bare string (`"events": "job.completed"`) serde would
/// answer "invalid type: string, expected a sequence"; this says what to write instead.
fn event_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    let not_a_list = |what: &str| {
        D::Error::custom(format!(
            "`events` must be an array of event names, such as [\"job.completed\"] or [\"*\"], not {what}"
        ))
    };
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(name) => Ok(name),
                other => Err(D::Error::custom(format!(
                    "`events` lists event names as strings; {other} is not one"
                ))),
            })
            .collect(),
        serde_json::Value::String(name) => Err(not_a_list(&format!(
            "a string (write [{}])",
            serde_json::Value::String(name)
        ))),
        serde_json::Value::Null => Err(not_a_list("null")),
        _ => Err(not_a_list("this value")),
    }
}

/// `event_list` for PATCH, where an absent `events` keeps the endpoint's.
fn some_event_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    event_list(d).map(Some)
}

/// A create's body as a new endpoint. Every field is named (no `..`), so a new setting
/// does not compile until it is parsed here; the checks run in the fields' order.
fn parse_create(body: CreateWebhook, allow_private: bool) -> Result<NewEndpoint, ApiError> {
    let CreateWebhook {
        kind,
        url,
        events,
        secret_key,
        description,
        headers,
        status,
        signature,
        rate_limit,
        ordering,
        retry_schedule,
        request_timeout,
        disable_after,
        client_certificate,
        client_key,
        ca_bundle,
        proxy,
        auth,
        transformation,
        filter,
    } = body;
    let secret = match secret_key {
        Some(s) => {
            validate_secret(&s).map_err(invalid("secret_key"))?;
            s
        }
        None => generate_secret(),
    };
    let kind = kind
        .as_deref()
        .map(EndpointKind::parse)
        .transpose()
        .map_err(invalid("type"))?
        .unwrap_or_default();
    let settings = EndpointSettings {
        url: parse_url_for(kind, url.as_deref(), allow_private)?,
        filter: EventFilter::parse(&events).map_err(invalid("events"))?,
        description: parse_description(description.unwrap_or_default())?,
        headers: ExtraHeaders::parse(headers.unwrap_or_default()).map_err(invalid("headers"))?,
        signature: signature.as_ref().map(parse_signature).transpose()?,
        status: match status.as_deref() {
            None => EndpointStatus::Active,
            Some(s) => EndpointStatus::parse(s).map_err(invalid("status"))?,
        },
        rate_limit: rate_limit
            .map(parse_rate_limit)
            .transpose()
            .map_err(invalid("rate_limit"))?,
        ordering: ordering
            .as_deref()
            .map(Ordering::parse)
            .transpose()
            .map_err(invalid("ordering"))?
            .unwrap_or_default(),
        retry_schedule: retry_schedule
            .as_ref()
            .map(parse_retry_schedule)
            .transpose()
            .map_err(invalid("retry_schedule"))?,
        request_timeout: request_timeout
            .as_deref()
            .map(parse_request_timeout)
            .transpose()
            .map_err(invalid("request_timeout"))?,
        disable_after: disable_after
            .as_deref()
            .map(parse_disable_after)
            .transpose()
            .map_err(invalid("disable_after"))?,
        client_cert: parse_client_cert(client_certificate.as_deref(), client_key.as_deref())?,
        ca_bundle: ca_bundle.as_deref().map(parse_ca_bundle).transpose()?,
        // A masked password has nothing stored to keep on a create.
        proxy: match proxy
            .as_deref()
            .map(|p| parse_proxy(p, allow_private))
            .transpose()?
        {
            Some(EndpointProxy::Via(p)) => Some(EndpointProxy::Via(
                p.keep_masked(None).map_err(reach_error)?,
            )),
            other => other,
        },
        auth: auth
            .map(|a| EndpointAuth::parse(a, allow_private))
            .transpose()
            .map_err(validation)?,
        transformation: match (kind, transformation) {
            (_, None) => None,
            (EndpointKind::Poll, Some(_)) => {
                return Err(ApiError::bad(
                    "validation_error",
                    "transformation: a poll endpoint has none; its consumer reads the events as published",
                ))
            }
            (EndpointKind::Push, Some(source)) => Some(parse_transformation(&source)?),
        },
        payload_filter: parse_payload_filter(filter.as_deref())?,
    };
    settings.check_auth(kind).map_err(validation)?;
    Ok(NewEndpoint {
        kind,
        secret,
        settings,
    })
}

/// A PATCH body as a patch: absent stays, `null` (where allowed) returns to the
/// deployment's. Every field is named, as in `parse_create`.
fn parse_patch(body: UpdateWebhook, allow_private: bool) -> Result<EndpointPatch, ApiError> {
    let UpdateWebhook {
        url,
        events,
        description,
        headers,
        status,
        signature,
        rate_limit,
        ordering,
        retry_schedule,
        request_timeout,
        disable_after,
        client_certificate,
        client_key,
        ca_bundle,
        proxy,
        auth,
        transformation,
        filter,
    } = body;
    // A certificate without its key keeps the stored key (`Service::update_endpoint`).
    let client_cert = match (client_certificate, client_key) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(reach_error(
                "client_key: send it with client_certificate".into(),
            ))
        }
        (Some(None), _) => Some(None),
        (Some(Some(cert)), key) => Some(Some(
            ClientCert::parse(&cert, key.as_deref(), now_ms()).map_err(reach_error)?,
        )),
    };
    Ok(EndpointPatch {
        url: url
            .map(|u| EndpointUrl::parse(&u, allow_private))
            .transpose()
            .map_err(invalid("url"))?,
        filter: events
            .map(|e| EventFilter::parse(&e))
            .transpose()
            .map_err(invalid("events"))?,
        description: description.map(parse_description).transpose()?,
        headers: headers
            .map(ExtraHeaders::parse)
            .transpose()
            .map_err(invalid("headers"))?,
        signature: nullable(signature, |s| parse_signature(&s))?,
        status: status
            .as_deref()
            .map(EndpointStatus::parse)
            .transpose()
            .map_err(invalid("status"))?,
        rate_limit: nullable(rate_limit, |r| {
            parse_rate_limit(r).map_err(invalid("rate_limit"))
        })?,
        ordering: ordering
            .as_deref()
            .map(Ordering::parse)
            .transpose()
            .map_err(invalid("ordering"))?,
        retry_schedule: nullable(retry_schedule, |v| {
            parse_retry_schedule(&v).map_err(invalid("retry_schedule"))
        })?,
        request_timeout: nullable(request_timeout, |v| {
            parse_request_timeout(&v).map_err(invalid("request_timeout"))
        })?,
        disable_after: nullable(disable_after, |v| {
            parse_disable_after(&v).map_err(invalid("disable_after"))
        })?,
        client_cert,
        ca_bundle: nullable(ca_bundle, |v| parse_ca_bundle(&v))?,
        proxy: nullable(proxy, |v| parse_proxy(&v, allow_private))?,
        auth: nullable(auth, |a| {
            EndpointAuth::parse(a, allow_private).map_err(validation)
        })?,
        transformation: nullable(transformation, |v| parse_transformation(&v))?,
        payload_filter: match filter {
            None => None,
            Some(f) => Some(parse_payload_filter(f.as_deref())?),
        },
    })
}

/// Compiles a transformation in the sandbox (its top level runs under the same budget as a
/// delivery's run, so this is bounded too): a syntax error comes back with its line.
fn parse_transformation(source: &str) -> Result<Transformation, ApiError> {
    Transformation::parse(source).map_err(invalid("transformation"))
}

/// The payload filter as written; blank means none. The error says where it goes wrong
/// (`filter: at character 16 (near `…`): …`).
fn parse_payload_filter(f: Option<&str>) -> Result<Option<PayloadFilter>, ApiError> {
    match f.map(str::trim) {
        None | Some("") => Ok(None),
        Some(expr) => PayloadFilter::parse(expr)
            .map(Some)
            .map_err(invalid("filter")),
    }
}

/// A field PATCH may set to `null`: absent stays absent, `null` is kept, a value parsed.
#[allow(clippy::option_option)]
fn nullable<T, U>(
    field: Option<Option<T>>,
    parse: impl FnOnce(T) -> Result<U, ApiError>,
) -> Result<Option<Option<U>>, ApiError> {
    match field {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(v)) => parse(v).map(|u| Some(Some(u))),
    }
}

#[utoipa::path(
    post,
    operation_id = "createWebhook",
    summary = "Create a webhook",
    path = "/api/v1/webhooks",
    tag = "webhooks",
    description = "Create a webhook: {type?, url, events, secret_key?, description?, headers?, status?, signature?, rate_limit?, ordering?, retry_schedule?, request_timeout?, disable_after?, auth?}; answers the secret once. type: push (default; url required) or poll (no url; the consumer reads GET /api/v1/webhooks/{id}/poll). retry_schedule (\"10s,1m\" or a list), request_timeout (\"5s\") and disable_after (\"12h\", 1m to 365d: disabled after failing that long without a success) override the deployment settings. client_certificate + client_key (PEM; the key is write-only, sealed at rest): presented on the TLS handshake to this endpoint (mTLS); an expired certificate or a key that does not match it is refused (400); answered as {subject, issuer, fingerprint_sha256, not_before, not_after}. ca_bundle (PEM): the only roots trusted for this endpoint. proxy: a forward proxy URL (credentials sealed, the password answered masked) or \"none\"; absent: the deployment's proxy. rate_limit: requests per second. ordering: parallel (default) or fifo (one in flight, in publish order). `signature` picks the endpoint's signature schemes (standard, timestamped, body): a list such as [\"standard\", \"body\"] or a string with one scheme or a comma list such as \"standard,body\"; absent means the deployment default. `auth` authenticates Herald to the endpoint: {\"type\": \"basic\", username, password}, {\"type\": \"bearer\", token} or {\"type\": \"oauth2_client_credentials\", token_url, client_id, client_secret, scope?, audience?} (a token fetched with the client credentials grant, cached until shortly before expires_in, replaced once on a 401); its secret is write-only (answered as ********), token_url follows the url's address rules, and an extra Authorization header beside it is refused. filter: an RFC 9535 JSONPath filter expression over the payload (e.g. `$.data.amount > 1000 && $.status == \"paid\"`); only matching events are delivered; a bad one is refused with the character where it goes wrong. transformation: JavaScript `function handler(webhook) { … return webhook; }` run on each delivery before it is signed, in a sandbox with no I/O, a budget of 10 million operations and 16 MiB; a source that does not compile is refused (400); try it with POST /api/v1/webhooks/{id}/transformation/test.",
    request_body(content = CreateWebhook, content_type = "application/json"),
    responses((status = 201, description = "created; `secret` is shown this once", body = schemas::Success<schemas::WebhookWithSecret>))
)]
async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let new = parse_create(body, state.config.allow_private_targets)?;
    // Accepted, not refused: seed 000's own example registers "your-secret-key".
    let warning = short_key_warning(&new.secret).map(|w| format!("secret_key: {w}"));
    let endpoint = state
        .store
        .create_endpoint(&auth.tenant, new, now_ms())
        .await?;
    tracing::info!(tenant = %auth.tenant, endpoint = endpoint.id, "webhook created");
    if let Some(warning) = &warning {
        tracing::warn!(tenant = %auth.tenant, endpoint = endpoint.id, "{warning}");
    }
    Ok(respond(
        StatusCode::CREATED,
        WithSecret {
            endpoint: &endpoint,
            secret: &endpoint.secret,
            warning,
        },
    ))
}

#[utoipa::path(
    get,
    operation_id = "listWebhooks",
    summary = "List webhooks",
    path = "/api/v1/webhooks",
    tag = "webhooks",
    description = "List the tenant's webhooks (also at /api/webhooks), newest first.",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page"),
        ("status" = Option<schemas::EndpointStatus>, Query),
    ),
    responses((status = 200, description = "a page of webhooks", body = schemas::ListPage<schemas::Webhook>))
)]
async fn list_webhooks(
    state: web::Data<AppState>,
    auth: Auth,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let cursor = cursor(query.limit.as_deref(), query.cursor.as_deref())?;
    let status = query
        .status
        .as_deref()
        .map(EndpointStatus::parse)
        .transpose()
        .map_err(invalid("status"))?;
    let page = state
        .store
        .list_endpoints(&auth.tenant, status, cursor)
        .await?;
    let page = crate::store::Page {
        items: page.items.into_iter().map(|e| state.live(e)).collect(),
        next_cursor: page.next_cursor,
    };
    Ok(list(page))
}

#[utoipa::path(
    get,
    operation_id = "getWebhook",
    summary = "Get a webhook",
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    description = "One webhook.",
    params(("id" = i64, Path)),
    responses((status = 200, description = "the webhook", body = schemas::Success<schemas::Webhook>))
)]
async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let endpoint = state.store.get_endpoint(&auth.tenant, id).await?;
    Ok(ok(state.live(endpoint)))
}

#[utoipa::path(
    patch,
    operation_id = "updateWebhook",
    summary = "Update a webhook",
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    description = "Change url, events, description, headers, status, signature, rate_limit (requests per second; null: the deployment default) ordering (parallel, fifo), retry_schedule, request_timeout or disable_after (null: the deployment setting), auth (null removes it; a secret sent as ******** keeps the stored one), client_certificate (+ client_key; without a key the stored key is kept; null removes both), ca_bundle (null: the web's roots), proxy (a URL, \"none\", or null for the deployment's; a masked password keeps the stored one). `signature` takes a list of schemes or a string (one scheme or a comma list such as \"standard,body\"); null returns to the deployment default. filter: a JSONPath filter expression over the payload; null or \"\" removes it. transformation: null removes it.",
    params(("id" = i64, Path)),
    request_body(content = UpdateWebhook, content_type = "application/json"),
    responses((status = 200, description = "the changed webhook", body = schemas::Success<schemas::Webhook>))
)]
async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let allow_private = state.config.allow_private_targets;
    let id = id.into_inner();
    if body.url.is_some() || matches!(body.transformation, Some(Some(_))) {
        let current = state.store.get_endpoint(&auth.tenant, id).await?;
        if body.url.is_some() {
            parse_url_for(current.kind, body.url.as_deref(), allow_private)?;
        }
        if current.kind == EndpointKind::Poll && matches!(body.transformation, Some(Some(_))) {
            return Err(ApiError::bad(
                "validation_error",
                "transformation: a poll endpoint has none; its consumer reads the events as published",
            ));
        }
    }
    let patch = parse_patch(body, allow_private)?;
    // A resumed endpoint may have deliveries waiting: the service wakes the dispatcher.
    let endpoint = state.update_endpoint(&auth.tenant, id, patch).await?;
    Ok(ok(state.live(endpoint)))
}

#[utoipa::path(
    delete,
    operation_id = "deleteWebhook",
    summary = "Delete a webhook",
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    description = "Delete a webhook and its delivery history.",
    params(("id" = i64, Path)),
    responses((status = 200, description = "deleted", body = schemas::Success<schemas::DeletedWebhook>))
)]
async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    state.store.delete_endpoint(&auth.tenant, id).await?;
    Ok(ok(json!({ "id": id })))
}

#[utoipa::path(
    post,
    operation_id = "rotateWebhookSecret",
    summary = "Rotate a webhook's secret",
    path = "/api/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    description = "New secret; the previous one keeps signing for rotation_grace.",
    params(("id" = i64, Path)),
    responses((status = 200, description = "the webhook with its new secret", body = schemas::Success<schemas::WebhookWithSecret>))
)]
async fn rotate_secret(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state.rotate_secret(&auth.tenant, id.into_inner()).await?;
    Ok(ok(WithSecret {
        endpoint: &endpoint,
        secret: &endpoint.secret,
        warning: None,
    }))
}

/// A sample for a transformation's trial.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TrialBody {
    /// The event's payload, as it would be published.
    #[schema(value_type = Object)]
    payload: Box<serde_json::value::RawValue>,
    /// `webhook.eventType` in the run; absent: the payload's `event`, else `test.event`.
    event: Option<String>,
    /// A transformation to try instead of the saved one (nothing is saved).
    #[schema(max_length = 65536)]
    transformation: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "testWebhookTransformation",
    summary = "Try a webhook's transformation",
    path = "/api/v1/webhooks/{id}/transformation/test",
    tag = "webhooks",
    description = "Runs the webhook's transformation (or `transformation`, unsaved) on a sample payload in the same sandbox a delivery uses, and answers the request that would be sent (method, url, added headers, the body to sign), a cancel, or the error. Nothing is sent or stored.",
    params(("id" = i64, Path)),
    request_body(content = TrialBody, content_type = "application/json"),
    responses((status = 200, description = "what the run came to", body = schemas::Success<schemas::TransformationTrial>))
)]
async fn test_transformation(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<i64>,
    ApiJson(body): ApiJson<TrialBody>,
) -> Result<HttpResponse, ApiError> {
    let TrialBody {
        payload,
        event,
        transformation,
    } = body;
    let event_type = event
        .or_else(|| {
            serde_json::from_str::<serde_json::Value>(payload.get())
                .ok()?
                .get("event")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "test.event".to_owned());
    let trial = state
        .try_transformation(
            &auth.tenant,
            id.into_inner(),
            transformation,
            event_type,
            payload,
        )
        .await?;
    Ok(ok(trial))
}
