//! A tenant's endpoints: the list, the create form (the secret is shown once, after the
//! redirect), and one endpoint's page with its edit form and recent deliveries. The
//! buttons on that page (pause, test, rotate, delete) live in `endpoint_actions`.

use super::resource::page;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

pub use super::auth_form::AuthForm;
use super::flash::Flash;
use super::format::{header_lines, parse_header_lines, split_list};
use super::guard::{PathId, Posted, Tenant};
use super::render::{ok, render, Layout, PageResult, Section};
use super::tenants::Paging;
use crate::clock::now_ms;
use crate::domain::{
    CaBundle, ClientCert, EndpointKind, EndpointProxy, EndpointStatus, EndpointUrl, EventFilter,
    ExtraHeaders, Ordering, PayloadFilter,
};
use crate::service::check_description;
use crate::store::{
    Cursor, Delivery, DeliveryQuery, Endpoint, EndpointPatch, EndpointSettings, NewEndpoint, Page,
};
use crate::wire::signing::{generate_secret, parse_schemes, Scheme};
use crate::wire::transform::Transformation;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/endpoints")).get(list).post(create))
        .service(page(web::resource("/endpoints/new")).get(new))
        .service(
            page(web::resource("/endpoints/{id}"))
                .get(show)
                .post(update),
        );
}

/// The endpoint form as typed: events separated by commas or spaces, headers one per line.
#[derive(Deserialize, Default)]
pub struct EndpointForm {
    /// `push` or `poll`; absent (an older form) means push.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: String,
    pub events: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub headers: String,
    pub status: Option<String>,
    /// Signature schemes as a comma list; empty for the deployment default; absent (an
    /// older form) leaves the endpoint's choice as it is.
    pub signature: Option<String>,
    #[serde(default)]
    pub rate_limit: String,
    /// `parallel` or `fifo`; absent (an older form) means parallel.
    pub ordering: Option<String>,
    /// Empty: the deployment's settings.
    #[serde(default)]
    pub retry_schedule: String,
    #[serde(default)]
    pub request_timeout: String,
    /// Empty: the deployment's `disable_after`.
    #[serde(default)]
    pub disable_after: String,
    /// PEM; empty: none. The key is write-only: empty keeps the stored one.
    #[serde(default)]
    pub client_certificate: String,
    #[serde(default)]
    pub client_key: String,
    /// PEM; empty: the web's roots.
    #[serde(default)]
    pub ca_bundle: String,
    /// A URL (the password shown masked), `none`, or empty for the deployment's.
    #[serde(default)]
    pub proxy: String,
    /// How Herald authenticates to the endpoint (`auth_form`); `None` (an older form) leaves
    /// it as it is.
    #[serde(flatten)]
    pub auth: AuthForm,
    /// JavaScript (`function handler(webhook) { … }`); empty: none.
    #[serde(default)]
    pub transformation: String,
    /// The payload filter (JSONPath); empty: none.
    #[serde(default)]
    pub filter: String,
}

/// The choices of the signature select: every combination of the three schemes.
const SIGNATURE_CHOICES: [(&str, &str); 8] = [
    ("", "deployment default"),
    ("standard", "standard (Standard Webhooks)"),
    (
        "timestamped",
        "timestamped (<prefix>-Timestamp + -Signature)",
    ),
    ("body", "body (HMAC of the body)"),
    ("standard,timestamped", "standard + timestamped"),
    ("standard,body", "standard + body"),
    ("timestamped,body", "timestamped + body"),
    ("standard,timestamped,body", "all three"),
];

/// An endpoint's schemes as one of the select's values (their order does not matter).
fn signature_choice(schemes: Option<&[Scheme]>) -> String {
    let Some(schemes) = schemes else {
        return String::new();
    };
    [Scheme::Standard, Scheme::Timestamped, Scheme::Body]
        .into_iter()
        .filter(|s| schemes.contains(s))
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl EndpointForm {
    fn from_endpoint(e: &Endpoint) -> EndpointForm {
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
            client_cert,
            ca_bundle,
            proxy,
            auth,
            transformation,
            payload_filter,
        } = &e.settings;
        EndpointForm {
            kind: Some(e.kind.as_str().to_owned()),
            url: url.as_ref().map_or("", |u| u.as_str()).to_owned(),
            events: filter.patterns().join(", "),
            description: description.clone(),
            headers: header_lines(&ExtraHeaders::masked(headers.map())),
            status: Some(status.as_str().to_owned()),
            signature: Some(signature_choice(signature.as_deref())),
            rate_limit: rate_limit.map(|r| r.to_string()).unwrap_or_default(),
            ordering: Some(ordering.as_str().to_owned()),
            retry_schedule: retry_schedule
                .as_deref()
                .map(crate::units::format_schedule)
                .unwrap_or_default(),
            request_timeout: request_timeout
                .map(crate::units::format_duration)
                .unwrap_or_default(),
            disable_after: disable_after
                .map(crate::units::format_duration)
                .unwrap_or_default(),
            client_certificate: client_cert
                .as_ref()
                .map_or(String::new(), |c| c.cert_pem().to_owned()),
            client_key: String::new(),
            ca_bundle: ca_bundle
                .as_ref()
                .map_or(String::new(), |b| b.pem().to_owned()),
            proxy: proxy.as_ref().map_or(String::new(), |p| p.shown()),
            auth: AuthForm::from_auth(auth.as_ref()),
            transformation: transformation
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            filter: payload_filter
                .as_ref()
                .map_or(String::new(), |f| f.as_str().to_owned()),
        }
    }

    fn rate_limit(&self) -> Result<Option<f64>, String> {
        match self.rate_limit.trim() {
            "" => Ok(None),
            v => v
                .parse::<f64>()
                .map_err(|_| format!("rate limit: `{v}` is not a number"))
                .and_then(crate::units::parse_rate_limit)
                .map(Some)
                .map_err(|e| format!("rate limit: {e}")),
        }
    }

    /// `None`: leave as is; `Some(None)`: the deployment default; `Some(Some(..))`: these.
    fn signature(&self) -> Result<Option<Option<Vec<Scheme>>>, String> {
        match self.signature.as_deref().map(str::trim) {
            None => Ok(None),
            Some("") => Ok(Some(None)),
            Some(list) => parse_schemes(list)
                .map(|s| Some(Some(s)))
                .map_err(|e| format!("signature: {e}")),
        }
    }

    pub fn signature_choices(&self) -> &'static [(&'static str, &'static str)] {
        &SIGNATURE_CHOICES
    }

    pub fn is_signature(&self, choice: &str) -> bool {
        self.signature.as_deref().unwrap_or("") == choice
    }

    fn status(&self) -> Result<EndpointStatus, String> {
        EndpointStatus::parse(self.status.as_deref().unwrap_or("active"))
            .map_err(|e| format!("status: {e}"))
    }

    /// Parses every field through the same domain types as the JSON API. Every field is
    /// named (no `..`), so a new setting does not compile until the form learns it.
    fn parse(&self, allow_private: bool) -> Result<NewEndpoint, String> {
        let EndpointForm {
            kind,
            url,
            events,
            description,
            headers,
            status: _,
            signature: _,
            rate_limit: _,
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
        } = self;
        let kind = EndpointKind::parse(kind.as_deref().unwrap_or("push"))?;
        let settings = EndpointSettings {
            url: match (kind, url.trim()) {
                (EndpointKind::Poll, "") => None,
                (EndpointKind::Poll, _) => {
                    return Err("url: a poll endpoint has no URL; leave it empty".into())
                }
                (EndpointKind::Push, url) => {
                    Some(EndpointUrl::parse(url, allow_private).map_err(|e| format!("url: {e}"))?)
                }
            },
            filter: EventFilter::parse(&split_list(events)).map_err(|e| format!("events: {e}"))?,
            description: check_description(description.trim().to_owned())
                .map_err(|e| e.to_string())?,
            headers: parse_header_lines(headers)
                .and_then(ExtraHeaders::parse)
                .map_err(|e| format!("headers: {e}"))?,
            signature: self.signature()?.flatten(),
            status: self.status()?,
            rate_limit: self.rate_limit()?,
            ordering: Ordering::parse(ordering.as_deref().unwrap_or("parallel"))
                .map_err(|e| format!("ordering: {e}"))?,
            retry_schedule: match retry_schedule.trim() {
                "" => None,
                text => Some(
                    crate::domain::parse_retry_schedule(&serde_json::Value::String(text.into()))
                        .map_err(|e| format!("retry schedule: {e}"))?,
                ),
            },
            request_timeout: match request_timeout.trim() {
                "" => None,
                text => Some(
                    crate::domain::parse_request_timeout(text)
                        .map_err(|e| format!("request timeout: {e}"))?,
                ),
            },
            disable_after: match disable_after.trim() {
                "" => None,
                text => Some(
                    crate::store::endpoint_settings::parse_disable_after(text)
                        .map_err(|e| format!("disable after: {e}"))?,
                ),
            },
            // An empty key keeps the stored one (`Service::update_endpoint`).
            client_cert: match (client_certificate.trim(), client_key.trim()) {
                ("", _) => None,
                (cert, "") => Some(ClientCert::parse(cert, None, now_ms())?),
                (cert, key) => Some(ClientCert::parse(cert, Some(key), now_ms())?),
            },
            ca_bundle: match ca_bundle.trim() {
                "" => None,
                pem => Some(CaBundle::parse("ca_bundle", pem)?),
            },
            proxy: match proxy.trim() {
                "" => None,
                p => Some(
                    EndpointProxy::parse(p, allow_private).map_err(|e| format!("proxy: {e}"))?,
                ),
            },
            auth: auth.parse(allow_private)?.flatten(),
            transformation: match (kind, transformation.trim()) {
                (_, "") => None,
                (EndpointKind::Poll, _) => {
                    return Err("transformation: a poll endpoint has none; leave it empty".into())
                }
                (EndpointKind::Push, _) => Some(
                    Transformation::parse(transformation)
                        .map_err(|e| format!("transformation: {e}"))?,
                ),
            },
            payload_filter: match filter.trim() {
                "" => None,
                text => Some(PayloadFilter::parse(text).map_err(|e| format!("filter: {e}"))?),
            },
        };
        Ok(NewEndpoint {
            kind,
            secret: generate_secret(),
            settings,
        })
    }

    /// The form shows every setting, so a save sets them all; but a form without the
    /// signature field (an older page) leaves the endpoint's choice as it is.
    fn patch(&self, allow_private: bool) -> Result<EndpointPatch, String> {
        let parsed = self.parse(allow_private)?;
        Ok(EndpointPatch {
            signature: self.signature()?,
            auth: self.auth.parse(allow_private)?,
            ..EndpointPatch::all(parsed.settings)
        })
    }

    pub fn is_poll(&self) -> bool {
        self.kind.as_deref() == Some("poll")
    }

    pub fn is_fifo(&self) -> bool {
        self.ordering.as_deref() == Some("fifo")
    }

    pub fn is_status(&self, s: &str) -> bool {
        self.status.as_deref().unwrap_or("active") == s
    }
}

#[derive(Template)]
#[template(path = "endpoints.html")]
struct ListPage {
    page: Layout,
    base: String,
    endpoints: Page<Endpoint>,
    paged: bool,
}

async fn list(t: Tenant, paging: web::Query<Paging>) -> PageResult {
    let (tenant, cursor) = (t.tenant.clone(), paging.cursor());
    let endpoints = t
        .state()
        .store
        .list_endpoints(&tenant, None, cursor)
        .await?;
    let page = t.layout("Endpoints", Section::Endpoints);
    Ok(ok(&ListPage {
        page,
        base: t.base.clone(),
        endpoints,
        paged: paging.cursor.is_some(),
    }))
}

#[derive(Template)]
#[template(path = "endpoint_new.html")]
struct NewPage {
    page: Layout,
    base: String,
    form: EndpointForm,
    problem: Option<String>,
    known_events: Vec<String>,
}

async fn new_page(t: &Tenant, form: EndpointForm, problem: Option<String>) -> PageResult {
    let known_events = known_events(t).await?;
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = t.layout("New endpoint", Section::Endpoints);
    Ok(render(
        status,
        &NewPage {
            page,
            base: t.base.clone(),
            form,
            problem,
            known_events,
        },
    ))
}

/// The catalogue's names, offered as a hint beside the events field.
async fn known_events(t: &Tenant) -> Result<Vec<String>, super::render::PageError> {
    let types = t.state().store.all_event_types().await?;
    Ok(types.into_iter().map(|e| e.name).collect())
}

async fn new(t: Tenant) -> PageResult {
    // Events start empty (the placeholder shows `*`): a pre-filled `*` turned a typed
    // `book.*` into `*book.*`.
    new_page(&t, EndpointForm::default(), None).await
}

async fn create(t: Tenant, Posted(form): Posted<EndpointForm>) -> PageResult {
    let parsed = form
        .parse(t.state().config.allow_private_targets)
        .and_then(nothing_to_keep)
        .and_then(|new| new.settings.check_auth(new.kind).map(|()| new));
    let new = match parsed {
        Ok(new) => new,
        Err(problem) => return new_page(&t, form, Some(problem)).await,
    };
    t.room_for_reveal().await?;
    let endpoint = t
        .state()
        .store
        .create_endpoint(&t.tenant, new, now_ms())
        .await?;
    tracing::info!(tenant = %t.tenant, endpoint = endpoint.id, "endpoint created from the pages");
    let flash = Flash::notice(
        "Endpoint created. Give its signing secret to whoever verifies the requests.",
    )
    .reveal("Signing secret", endpoint.secret.clone());
    t.redirect(&format!("{}/endpoints/{}", t.base, endpoint.id), flash)
        .await
}

/// A new endpoint has no stored key or proxy password for an empty or masked field to keep.
fn nothing_to_keep(mut new: NewEndpoint) -> Result<NewEndpoint, String> {
    if new
        .settings
        .client_cert
        .as_ref()
        .is_some_and(|c| c.needs_key())
    {
        return Err("client key: required with a client certificate".into());
    }
    if let Some(EndpointProxy::Via(p)) = new.settings.proxy.take() {
        new.settings.proxy = Some(EndpointProxy::Via(p.keep_masked(None)?));
    }
    Ok(new)
}

#[derive(Template)]
#[template(path = "endpoint.html")]
struct ShowPage {
    page: Layout,
    base: String,
    endpoint: Endpoint,
    form: EndpointForm,
    problem: Option<String>,
    recent: Page<Delivery>,
    known_events: Vec<String>,
    default_rate_limit: Option<f64>,
    health: super::endpoint_health::EndpointHealth,
    trial_id: i64,
    trial_form: super::transformation::TrialForm,
    missed: super::endpoint_actions::Missed,
}

impl ShowPage {
    /// The endpoint's own retry schedule and timeout, or what it uses instead.
    fn retries(&self) -> String {
        let schedule = match &self.endpoint.settings.retry_schedule {
            Some(s) if s.is_empty() => "no retries".to_owned(),
            Some(s) => format!("after {}", crate::units::format_schedule(s)),
            None => "the deployment's schedule".to_owned(),
        };
        match self.endpoint.settings.request_timeout {
            Some(t) => format!(
                "{schedule}; requests time out after {}",
                crate::units::format_duration(t)
            ),
            None => schedule,
        }
    }

    /// The client certificate's expiry, and whether it is close (14 days, when
    /// `herald.endpoint.certificate_expiring` is raised).
    fn certificate_expiry(&self) -> Option<(String, bool)> {
        let info = self.endpoint.settings.client_cert.as_ref()?.info().clone();
        let soon = info.expires_within(self.page.now, crate::engine::CERT_WARNING_DAYS);
        Some((self.page.when(&info.not_after).to_string(), soon))
    }

    /// The endpoint's auth: its type and who it authenticates as, never a secret.
    fn auth(&self) -> String {
        super::auth_form::describe(self.endpoint.settings.auth.as_ref())
    }

    /// While a rotation's grace period lasts, the previous secret still signs.
    fn previous_secret_until(&self) -> Option<i64> {
        self.endpoint
            .previous_secret_until
            .filter(|until| self.endpoint.previous_secret.is_some() && *until > self.page.now)
    }
}

async fn show_page(
    t: &Tenant,
    id: i64,
    form: Option<EndpointForm>,
    problem: Option<String>,
) -> PageResult {
    let store = &t.state().store;
    let endpoint = t.state().live(store.get_endpoint(&t.tenant, id).await?);
    let q = DeliveryQuery {
        endpoint_id: Some(id),
        ..Default::default()
    };
    let latest = Cursor {
        before: None,
        limit: 10,
    };
    let recent = store.list_deliveries(&t.tenant, q, latest).await?;
    let health = super::endpoint_health::load(store, &t.tenant, id).await?;
    let missed = super::endpoint_actions::missed(t, id).await?;
    let known_events = known_events(t).await?;
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let form = form.unwrap_or_else(|| EndpointForm::from_endpoint(&endpoint));
    let page = t.layout(format!("Endpoint {}", endpoint.id), Section::Endpoints);
    let base = t.base.clone();
    Ok(render(
        status,
        &ShowPage {
            page,
            base,
            endpoint,
            form,
            problem,
            recent,
            known_events,
            default_rate_limit: t.state().config.rate_limit,
            health,
            trial_id: id,
            trial_form: super::transformation::TrialForm::sample(),
            missed,
        },
    ))
}

async fn show(t: Tenant, PathId(id): PathId<i64>) -> PageResult {
    show_page(&t, id, None, None).await
}

async fn update(
    t: Tenant,
    PathId(id): PathId<i64>,
    Posted(mut form): Posted<EndpointForm>,
) -> PageResult {
    // The type is chosen at creation; an edit keeps it whatever the form says.
    let current = t.state().store.get_endpoint(&t.tenant, id).await?;
    form.kind = Some(current.kind.as_str().to_owned());
    let patch = match form.patch(t.state().config.allow_private_targets) {
        Ok(p) => p,
        Err(problem) => return show_page(&t, id, Some(form), Some(problem)).await,
    };
    // A resumed endpoint may have deliveries waiting: the service wakes the dispatcher.
    t.state().update_endpoint(&t.tenant, id, patch).await?;
    t.redirect(
        &format!("{}/endpoints/{id}", t.base),
        Flash::notice("Endpoint saved."),
    )
    .await
}
