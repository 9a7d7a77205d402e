//! An endpoint's shape: the settings a person chooses for it, written out once.
//!
//! `EndpointSettings` is what the API's create and the pages' form produce, what the
//! store writes and reads back, and what a GET answers (flattened into `Endpoint`).
//! `EndpointPatch` is its partial update, and `COLUMNS` the one list of the table columns
//! that hold it, which both backends' writers and readers and `herald migrate` walk.
//!
//! Every function here destructures the settings without `..` (STYLE.md, habit 25): a new
//! setting does not compile until the patch, the columns and each front end's parser say
//! what to do with it. What is not a setting stays out: the kind (chosen at creation and
//! fixed), the secret (generated or rotated, never patched), and the state the engine
//! keeps (failures, circuit, last attempt).

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::clock::ser;
use crate::domain::{
    CaBundle, ClientCert, EndpointAuth, EndpointKind, EndpointProxy, EndpointStatus, EndpointUrl,
    EventFilter, ExtraHeaders, Ordering, PayloadFilter,
};
use crate::secrets::secret_key;
use crate::units::{format_schedule, parse_schedule};
use crate::wire::signing::{parse_schemes, Scheme};
use crate::wire::transform::Transformation;

/// The settings of an endpoint, validated (each field's type checked it when built).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSettings {
    /// `Some` for a push endpoint, `None` for a poll endpoint (answered as `null`).
    #[serde(serialize_with = "url_or_null")]
    pub url: Option<EndpointUrl>,
    #[serde(rename = "events", serialize_with = "patterns")]
    pub filter: EventFilter,
    pub description: String,
    /// Answered with every value masked: they often carry a receiver's credentials.
    #[serde(serialize_with = "masked")]
    pub headers: ExtraHeaders,
    /// The endpoint's own schemes; `None` means the deployment default.
    pub signature: Option<Vec<Scheme>>,
    pub status: EndpointStatus,
    /// Requests per second; `None`: the deployment's `rate_limit`, if any.
    pub rate_limit: Option<f64>,
    pub ordering: Ordering,
    /// The endpoint's own retry schedule; `None`: the deployment's.
    #[serde(serialize_with = "ser::opt_schedule")]
    pub retry_schedule: Option<Vec<Duration>>,
    /// The endpoint's own request timeout; `None`: the deployment's.
    #[serde(serialize_with = "ser::opt_duration")]
    pub request_timeout: Option<Duration>,
    /// How long it may fail without a success before it is disabled; `None`: the
    /// deployment's `disable_after`.
    #[serde(serialize_with = "ser::opt_duration")]
    pub disable_after: Option<Duration>,
    /// How Herald authenticates to the endpoint; answered with its secret masked.
    #[serde(serialize_with = "masked_auth")]
    pub auth: Option<EndpointAuth>,
    /// The endpoint's transformation (JavaScript, `wire::transform`); `None`: sent as published.
    #[serde(serialize_with = "opt_source")]
    pub transformation: Option<Transformation>,
    /// The certificate Herald presents on the TLS handshake to this endpoint (mTLS), with
    /// its key. Answered as the certificate's subject, issuer, fingerprint and expiry: the
    /// key is sealed at rest and never shown.
    #[serde(rename = "client_certificate", serialize_with = "cert_info")]
    pub client_cert: Option<ClientCert>,
    /// PEM: the only roots trusted for this endpoint's server certificate; `None`: the
    /// web's roots and the deployment's `extra_ca_file`.
    #[serde(serialize_with = "ca_pem")]
    pub ca_bundle: Option<CaBundle>,
    /// The endpoint's own forward proxy, or `Direct` (`"none"`); `None`: the deployment's
    /// `proxy` and `no_proxy`. Answered with the proxy's password masked.
    #[serde(serialize_with = "proxy_shown")]
    pub proxy: Option<EndpointProxy>,
    /// A JSONPath filter over the payload (`domain::PayloadFilter`), answered as `filter`
    /// (the Rust `filter` above is the `events` patterns); `None`: every event that the
    /// patterns match.
    #[serde(rename = "filter", serialize_with = "payload_filter")]
    pub payload_filter: Option<PayloadFilter>,
}

impl EndpointSettings {
    /// A push (`Some(url)`) or poll (`None`) endpoint with every other setting at its
    /// default: active, parallel, the deployment's signature, limits and schedule.
    pub fn new(url: Option<EndpointUrl>, filter: EventFilter) -> EndpointSettings {
        EndpointSettings {
            url,
            filter,
            description: String::new(),
            headers: ExtraHeaders::default(),
            signature: None,
            status: EndpointStatus::Active,
            rate_limit: None,
            ordering: Ordering::Parallel,
            retry_schedule: None,
            request_timeout: None,
            disable_after: None,
            auth: None,
            transformation: None,
            client_cert: None,
            ca_bundle: None,
            proxy: None,
            payload_filter: None,
        }
    }

    /// What the front ends check of `auth` against the rest, before storing (create, PATCH
    /// after the patch is applied, the forms): a poll endpoint is sent nothing to
    /// authenticate to; auth and an extra `Authorization` header do not mix; a masked
    /// secret must have been filled in from the stored one.
    pub fn check_auth(&self, kind: EndpointKind) -> Result<(), String> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if kind == EndpointKind::Poll {
            return Err("auth: a poll endpoint is not sent requests; it has no auth".into());
        }
        if auth.has_masked() {
            return Err(format!(
                "auth: the {} secret is required (`{}`, or a blank form field, keeps a stored \
                 one, and there is none)",
                auth.kind(),
                ExtraHeaders::MASKED
            ));
        }
        crate::domain::auth::check_no_authorization_header(Some(auth), &self.headers)
    }

    /// The URL as stored and shown: empty for a poll endpoint.
    pub fn url_str(&self) -> &str {
        self.url.as_ref().map_or("", |u| u.as_str())
    }
}

/// A partial update; `None` leaves a setting as it is. For the settings that may fall
/// back to the deployment's, `Some(None)` returns to it.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<EndpointUrl>,
    pub filter: Option<EventFilter>,
    pub description: Option<String>,
    pub headers: Option<ExtraHeaders>,
    pub signature: Option<Option<Vec<Scheme>>>,
    pub status: Option<EndpointStatus>,
    pub rate_limit: Option<Option<f64>>,
    pub ordering: Option<Ordering>,
    pub retry_schedule: Option<Option<Vec<Duration>>>,
    pub request_timeout: Option<Option<Duration>>,
    pub disable_after: Option<Option<Duration>>,
    pub auth: Option<Option<EndpointAuth>>,
    pub transformation: Option<Option<Transformation>>,
    pub client_cert: Option<Option<ClientCert>>,
    pub ca_bundle: Option<Option<CaBundle>>,
    pub proxy: Option<Option<EndpointProxy>>,
    pub payload_filter: Option<Option<PayloadFilter>>,
}

impl EndpointPatch {
    /// A patch that sets every setting: what a form that shows them all submits.
    pub fn all(settings: EndpointSettings) -> EndpointPatch {
        let EndpointSettings {
            url,
            filter,
            description,
            headers,
            signature,
            status,
            rate_limit,
            ordering,
            retry_schedule,
            request_timeout,
            disable_after,
            auth,
            transformation,
            client_cert,
            ca_bundle,
            proxy,
            payload_filter,
        } = settings;
        EndpointPatch {
            url,
            filter: Some(filter),
            description: Some(description),
            headers: Some(headers),
            signature: Some(signature),
            status: Some(status),
            rate_limit: Some(rate_limit),
            ordering: Some(ordering),
            retry_schedule: Some(retry_schedule),
            request_timeout: Some(request_timeout),
            disable_after: Some(disable_after),
            auth: Some(auth),
            transformation: Some(transformation),
            client_cert: Some(client_cert),
            ca_bundle: Some(ca_bundle),
            proxy: Some(proxy),
            payload_filter: Some(payload_filter),
        }
    }

    /// The settings after this patch. (A poll endpoint's missing URL is not the patch's
    /// business: the front ends refuse a URL for one before it gets here.)
    pub fn apply(self, current: EndpointSettings) -> EndpointSettings {
        let EndpointPatch {
            url,
            filter,
            description,
            headers,
            signature,
            status,
            rate_limit,
            ordering,
            retry_schedule,
            request_timeout,
            disable_after,
            auth,
            transformation,
            client_cert,
            ca_bundle,
            proxy,
            payload_filter,
        } = self;
        EndpointSettings {
            url: url.or(current.url),
            filter: filter.unwrap_or(current.filter),
            description: description.unwrap_or(current.description),
            headers: headers.unwrap_or(current.headers),
            signature: signature.unwrap_or(current.signature),
            status: status.unwrap_or(current.status),
            rate_limit: rate_limit.unwrap_or(current.rate_limit),
            ordering: ordering.unwrap_or(current.ordering),
            retry_schedule: retry_schedule.unwrap_or(current.retry_schedule),
            request_timeout: request_timeout.unwrap_or(current.request_timeout),
            disable_after: disable_after.unwrap_or(current.disable_after),
            auth: auth.unwrap_or(current.auth),
            transformation: transformation.unwrap_or(current.transformation),
            client_cert: client_cert.unwrap_or(current.client_cert),
            ca_bundle: ca_bundle.unwrap_or(current.ca_bundle),
            proxy: proxy.unwrap_or(current.proxy),
            payload_filter: payload_filter.unwrap_or(current.payload_filter),
        }
    }
}

/// A column's SQL type, in the words both backends (and `herald migrate`) map from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    /// 64 bits.
    Bigint,
    Real,
}

/// One column's value, on its way to or from a backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Option<String>),
    Bigint(Option<i64>),
    Real(Option<f64>),
}

/// The columns of `endpoints` that hold the settings, in the order of
/// `EndpointSettings::columns` and `EndpointSettings::read`.
pub const COLUMNS: [(&str, ColumnType); 19] = [
    ("url", ColumnType::Text),
    ("events", ColumnType::Text),
    ("description", ColumnType::Text),
    ("headers", ColumnType::Text),
    ("signature", ColumnType::Text),
    ("status", ColumnType::Text),
    ("rate_limit", ColumnType::Real),
    ("ordering", ColumnType::Text),
    ("retry_schedule", ColumnType::Text),
    ("request_timeout_ms", ColumnType::Bigint),
    ("disable_after_ms", ColumnType::Bigint),
    // JSON with the credentials inside: sealed whole (`SEALED`).
    ("auth", ColumnType::Text),
    ("transformation", ColumnType::Text),
    // The client certificate (PEM, in clear) and its key (PEM, sealed).
    ("client_cert", ColumnType::Text),
    ("client_key", ColumnType::Text),
    ("ca_bundle", ColumnType::Text),
    // `none`, or the proxy's URL without credentials; the credentials (sealed) beside it.
    ("proxy", ColumnType::Text),
    ("proxy_credentials", ColumnType::Text),
    ("payload_filter", ColumnType::Text),
];

/// The settings columns whose values are sealed at rest for their endpoint (README:
/// Security), so a copied database or backup reveals no credential a setting carries: the
/// extra header values (often a receiver's `Authorization`), the auth setting (its
/// password, token or client secret), a client certificate's private key and a proxy's
/// credentials. A text column listed here is
/// written through `EndpointSettings::sealed_columns` and read through
/// `EndpointSettings::read_sealed`; rows written before it was listed (or by a process
/// without the key) are sealed when the store opens (`resealed`).
pub const SEALED: &[&str] = &["headers", "auth", "client_key", "proxy_credentials"];

/// Whether entry `i` of `COLUMNS` is sealed.
fn sealed_at(i: usize) -> bool {
    SEALED.contains(&COLUMNS[i].0)
}

/// A sealed column's stored value in clear, for endpoint `owner`
/// (`secret_key::endpoint_owner`). One that does not open (another key, a value copied
/// from another row) reads as absent, so the setting falls back to its default, and is
/// logged for the admin without its value.
pub fn open_value(name: &str, stored: Option<String>, owner: &str) -> Option<String> {
    let stored = stored?;
    match secret_key::open_stored(&stored, owner) {
        Ok(plain) => Some(plain),
        Err(e) => {
            tracing::warn!(column = name, owner, error = %e, "an endpoint setting cannot be opened; set it again");
            None
        }
    }
}

/// The endpoint columns the re-seal on opening rewrites: the signing secrets, then `SEALED`.
pub fn resealed_columns() -> Vec<&'static str> {
    ["secret", "previous_secret"]
        .into_iter()
        .chain(SEALED.iter().copied())
        .collect()
}

/// For the store, on opening: given the stored values of `resealed_columns()` of endpoint
/// `owner`, the values to write instead (each one still in clear, or sealed the legacy way,
/// sealed now; the rest as they are), or `None` when there is nothing to change (all
/// sealed already, or no key is loaded).
pub fn resealed(values: &[Option<String>], owner: &str) -> Option<Vec<Option<String>>> {
    let new: Vec<Option<String>> = values
        .iter()
        .map(|v| secret_key::reseal_stored(v.as_deref()?, owner))
        .collect();
    if new.iter().all(Option::is_none) {
        return None;
    }
    Some(
        new.into_iter()
            .zip(values)
            .map(|(new, old)| new.or_else(|| old.clone()))
            .collect(),
    )
}

/// The column names joined for a statement (`url, events, …`).
pub fn column_list() -> String {
    COLUMNS.map(|(name, _)| name).join(", ")
}

impl EndpointSettings {
    /// The values to store, one per entry of `COLUMNS`.
    pub fn columns(&self) -> [Value; COLUMNS.len()] {
        let EndpointSettings {
            url,
            filter,
            description,
            headers,
            signature,
            status,
            rate_limit,
            ordering,
            retry_schedule,
            request_timeout,
            disable_after,
            auth,
            transformation,
            client_cert,
            ca_bundle,
            proxy,
            payload_filter,
        } = self;
        let text = |s: &str| Value::Text(Some(s.to_owned()));
        [
            text(url.as_ref().map_or("", |u| u.as_str())),
            text(&json(&filter.patterns())),
            text(description),
            text(&json(headers.map())),
            Value::Text(signature.as_deref().map(schemes_text)),
            text(status.as_str()),
            Value::Real(*rate_limit),
            text(ordering.as_str()),
            Value::Text(retry_schedule.as_deref().map(format_schedule)),
            Value::Bigint(request_timeout.map(millis)),
            Value::Bigint(disable_after.map(millis)),
            Value::Text(auth.as_ref().map(EndpointAuth::to_stored)),
            Value::Text(transformation.as_ref().map(|t| t.as_str().to_owned())),
            Value::Text(client_cert.as_ref().map(|c| c.cert_pem().to_owned())),
            Value::Text(client_cert.as_ref().map(|c| c.key_pem().to_owned())),
            Value::Text(ca_bundle.as_ref().map(|b| b.pem().to_owned())),
            Value::Text(proxy.as_ref().map(|p| p.stored().to_owned())),
            Value::Text(match proxy {
                Some(EndpointProxy::Via(p)) => p.credentials().map(str::to_owned),
                _ => None,
            }),
            Value::Text(payload_filter.as_ref().map(|f| f.as_str().to_owned())),
        ]
    }

    /// Rebuilds stored settings; `get(i, type)` reads entry `i` of `COLUMNS`. They were
    /// validated when written, so a value that no longer parses (a row edited by hand)
    /// falls back to the default rather than hiding the endpoint; an unknown status reads
    /// as disabled, so nothing is sent to it.
    pub fn read<E>(mut get: impl FnMut(usize, ColumnType) -> Result<Value, E>) -> Result<Self, E> {
        let mut at = |i: usize| get(i, COLUMNS[i].1);
        let url = text(at(0)?).filter(|u| !u.is_empty());
        let events = text(at(1)?).unwrap_or_default();
        let headers = text(at(3)?).unwrap_or_default();
        let (cert, key) = (text(at(13)?), text(at(14)?));
        let ca_bundle = text(at(15)?);
        let (proxy, proxy_credentials) = (text(at(16)?), text(at(17)?));
        Ok(EndpointSettings {
            url: url.map(EndpointUrl::from_stored),
            filter: EventFilter::from_stored(serde_json::from_str(&events).unwrap_or_default()),
            description: text(at(2)?).unwrap_or_default(),
            headers: ExtraHeaders::from_stored(serde_json::from_str(&headers).unwrap_or_default()),
            signature: text(at(4)?).and_then(|s| parse_schemes(&s).ok()),
            status: text(at(5)?)
                .and_then(|s| EndpointStatus::parse(&s).ok())
                .unwrap_or(EndpointStatus::Disabled),
            rate_limit: real(at(6)?),
            ordering: text(at(7)?)
                .and_then(|s| Ordering::parse(&s).ok())
                .unwrap_or_default(),
            retry_schedule: text(at(8)?).and_then(|s| parse_schedule(&s).ok()),
            request_timeout: bigint(at(9)?).map(from_millis),
            disable_after: bigint(at(10)?).map(from_millis),
            auth: text(at(11)?).and_then(|a| EndpointAuth::from_stored(&a)),
            transformation: text(at(12)?)
                .filter(|t| !t.is_empty())
                .map(Transformation::from_stored),
            client_cert: cert.and_then(|c| ClientCert::from_stored(c, key.unwrap_or_default())),
            ca_bundle: ca_bundle.and_then(CaBundle::from_stored),
            proxy: proxy.map(|p| EndpointProxy::from_stored(p, proxy_credentials)),
            payload_filter: text(at(18)?).map(|f| PayloadFilter::from_stored(&f)),
        })
    }
}

impl EndpointSettings {
    /// `columns()` with the `SEALED` ones sealed for endpoint `owner`: what both backends
    /// write. (Without a loaded key, as in the CLI, they are written as given and sealed
    /// when a server opens the store.)
    pub fn sealed_columns(&self, owner: &str) -> [Value; COLUMNS.len()] {
        let mut values = self.columns();
        for (i, value) in values.iter_mut().enumerate() {
            if let (true, Value::Text(Some(plain))) = (sealed_at(i), &*value) {
                *value = Value::Text(Some(secret_key::seal_stored(plain, owner)));
            }
        }
        values
    }

    /// `read` for a row of endpoint `owner`, opening the `SEALED` columns.
    pub fn read_sealed<E>(
        mut get: impl FnMut(usize, ColumnType) -> Result<Value, E>,
        owner: &str,
    ) -> Result<Self, E> {
        Self::read(|i, ty| match get(i, ty)? {
            Value::Text(stored) if sealed_at(i) => {
                Ok(Value::Text(open_value(COLUMNS[i].0, stored, owner)))
            }
            other => Ok(other),
        })
    }
}

/// An endpoint's own `disable_after`: a duration like the config key's, from 1m to 365d.
pub fn parse_disable_after(v: &str) -> Result<Duration, String> {
    let d = crate::units::parse_duration(v.trim())?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(365 * 86_400) {
        return Err(format!("must be from 1m to 365d, not `{v}`"));
    }
    Ok(d)
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::Text(t) => t,
        _ => None,
    }
}

fn bigint(v: Value) -> Option<i64> {
    match v {
        Value::Bigint(n) => n,
        _ => None,
    }
}

fn real(v: Value) -> Option<f64> {
    match v {
        Value::Real(x) => x,
        Value::Bigint(n) => n.map(|n| n as f64),
        Value::Text(_) => None,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

fn schemes_text(s: &[Scheme]) -> String {
    s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn url_or_null<S: Serializer>(url: &Option<EndpointUrl>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => s.serialize_str(u.as_str()),
        None => s.serialize_none(),
    }
}

fn patterns<S: Serializer>(filter: &EventFilter, s: S) -> Result<S::Ok, S::Error> {
    filter.patterns().serialize(s)
}

fn masked_auth<S: Serializer>(auth: &Option<EndpointAuth>, s: S) -> Result<S::Ok, S::Error> {
    auth.as_ref().map(EndpointAuth::masked).serialize(s)
}

fn opt_source<S: Serializer>(t: &Option<Transformation>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(t.as_str()),
        None => s.serialize_none(),
    }
}

/// A client certificate as answered: what identifies it, never the key.
fn cert_info<S: Serializer>(cert: &Option<ClientCert>, s: S) -> Result<S::Ok, S::Error> {
    cert.as_ref()
        .map(|c| {
            let i = c.info();
            serde_json::json!({
                "subject": i.subject,
                "issuer": i.issuer,
                "fingerprint_sha256": i.fingerprint_sha256,
                "not_before": crate::clock::rfc3339_seconds(i.not_before),
                "not_after": crate::clock::rfc3339_seconds(i.not_after),
            })
        })
        .serialize(s)
}

fn ca_pem<S: Serializer>(bundle: &Option<CaBundle>, s: S) -> Result<S::Ok, S::Error> {
    bundle.as_ref().map(|b| b.pem()).serialize(s)
}

fn proxy_shown<S: Serializer>(proxy: &Option<EndpointProxy>, s: S) -> Result<S::Ok, S::Error> {
    proxy.as_ref().map(|p| p.shown()).serialize(s)
}

fn payload_filter<S: Serializer>(f: &Option<PayloadFilter>, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Some(f) => s.serialize_str(f.as_str()),
        None => s.serialize_none(),
    }
}

fn masked<S: Serializer>(headers: &ExtraHeaders, s: S) -> Result<S::Ok, S::Error> {
    ser::masked_headers(headers.map(), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting away from its default, so a swapped pair of columns shows.
    fn unusual() -> EndpointSettings {
        EndpointSettings {
            url: Some(EndpointUrl::from_stored("https://example.com/hook".into())),
            filter: EventFilter::from_stored(vec!["book.*".into(), "job.done".into()]),
            description: "orders".into(),
            headers: ExtraHeaders::from_stored([("X-Team".to_owned(), "a".to_owned())].into()),
            signature: Some(vec![Scheme::Standard, Scheme::Body]),
            status: EndpointStatus::Paused,
            rate_limit: Some(2.5),
            ordering: Ordering::Fifo,
            retry_schedule: Some(vec![Duration::from_secs(10), Duration::from_secs(60)]),
            request_timeout: Some(Duration::from_millis(1_500)),
            disable_after: Some(Duration::from_secs(3_600)),
            auth: Some(EndpointAuth::Bearer {
                token: "t0ken".into(),
            }),
            transformation: Some(Transformation::from_stored(
                "function handler(w) { return w; }".into(),
            )),
            client_cert: None,
            ca_bundle: None,
            proxy: Some(EndpointProxy::Via(
                crate::domain::ProxyUrl::parse("http://u:p@proxy.example:3128").unwrap(),
            )),
            payload_filter: Some(PayloadFilter::parse("$.data.amount > 1000").unwrap()),
        }
    }

    fn round_trip(s: &EndpointSettings) -> EndpointSettings {
        let values = s.columns();
        EndpointSettings::read(|i, ty| {
            let v = values[i].clone();
            let matches = matches!(
                (&v, ty),
                (Value::Text(_), ColumnType::Text)
                    | (Value::Bigint(_), ColumnType::Bigint)
                    | (Value::Real(_), ColumnType::Real)
            );
            assert!(matches, "column {} is written as {v:?}", COLUMNS[i].0);
            Ok::<_, ()>(v)
        })
        .unwrap()
    }

    #[test]
    fn settings_read_back_as_written_column_by_column() {
        assert_eq!(round_trip(&unusual()), unusual());
        let poll = EndpointSettings::new(None, EventFilter::from_stored(vec!["*".into()]));
        assert_eq!(round_trip(&poll), poll);
    }

    #[test]
    fn an_empty_patch_changes_nothing_and_a_full_one_everything() {
        let plain = EndpointSettings::new(
            Some(EndpointUrl::from_stored("https://a.example/".into())),
            EventFilter::from_stored(vec!["*".into()]),
        );
        assert_eq!(EndpointPatch::default().apply(unusual()), unusual());
        assert_eq!(
            EndpointPatch::all(unusual()).apply(plain.clone()),
            unusual()
        );
        let back = EndpointPatch {
            rate_limit: Some(None),
            retry_schedule: Some(None),
            ..Default::default()
        }
        .apply(unusual());
        assert_eq!((back.rate_limit, back.retry_schedule), (None, None));
    }
}
