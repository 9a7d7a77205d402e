//! Who is asking: the extractors page handlers start with, and the cookie they read.
//!
//! - `Visitor`: anyone, with the session of this area if there is one (login pages).
//! - `Signed`: a logged-in session of this area — the admin in `/admin`, a tenant in
//!   `/portal`; otherwise GETs go to the login form and POSTs are refused.
//! - `Tenant`: `Signed` plus the tenant the page is about: the `{tenant}` in the admin's
//!   URL, or the portal session's own tenant (never a tenant named by the request).
//! - `Posted<T>`: a form body, accepted only with the session's CSRF token. Handlers take
//!   it after the session extractor, so nothing runs before the token is checked.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::flash::{self, Flash};
use super::render::{admin_nav, see_other, tenant_nav, Area, Layout, PageError, Section};
use super::session::{Session, SessionKey, Who};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::service::AppState;

/// Derived on the first page request and shared by every worker thread
/// (`pages::configure` runs once per worker, so it cannot own process-wide state).
static KEY: OnceLock<SessionKey> = OnceLock::new();

pub async fn session_key(state: &AppState) -> Result<&'static SessionKey, PageError> {
    Ok(KEY.get_or_init(|| SessionKey::derive(&state.secret_key, &state.admin_token_hash)))
}

pub fn area_of(req: &HttpRequest) -> Area {
    req.app_data::<Area>().copied().unwrap_or(Area::Admin)
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, PageError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            PageError::Status(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "not ready".into(),
            )
        })
}

fn cookie_name(area: Area) -> &'static str {
    match area {
        Area::Admin => "herald_admin",
        Area::Portal => "herald_portal",
    }
}

/// The value of this area's session cookie in the request's `Cookie` headers.
fn read_cookie(req: &HttpRequest, area: Area) -> Option<String> {
    let name = cookie_name(area);
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for a session (or its removal with `None`). Each area has its own cookie,
/// scoped to its path, so the admin and a tenant can be logged in side by side.
pub fn session_cookie(req: &HttpRequest, area: Area, value: Option<(&str, i64)>) -> String {
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let (value, max_age) = match value {
        Some((v, expires_ms)) => (v, ((expires_ms - now_ms()) / 1000).max(0)),
        None => ("", 0),
    };
    format!(
        "{}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        cookie_name(area),
        area.root()
    )
}

/// The valid session of the request's area, whatever kind: signed, not expired, and not
/// ended by a logout since it was made (its principal's epoch has not moved on).
async fn current_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Session>, PageError> {
    let key = session_key(state).await?;
    let Some(session) = read_cookie(req, area_of(req)).and_then(|c| key.open(&c, now_ms())) else {
        return Ok(None);
    };
    if session.epoch != session.who.current_epoch(&state.store).await? {
        return Ok(None);
    }
    Ok(Some(session))
}

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, PageError>>>>;

/// Anyone, on a login page.
pub struct Visitor {
    pub area: Area,
    pub session: Option<Session>,
    pub key: &'static SessionKey,
    pub state: web::Data<AppState>,
}

impl FromRequest for Visitor {
    type Error = PageError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let key = session_key(&state).await?;
            let session = current_session(&req, &state).await?;
            Ok(Visitor {
                area: area_of(&req),
                session,
                key,
                state,
            })
        })
    }
}

/// A logged-in session of this area.
pub struct Signed {
    pub area: Area,
    pub session: Session,
    pub csrf: String,
    pub state: web::Data<AppState>,
    /// The one-time message the previous POST left for this page.
    pub flash: Option<Flash>,
}

#[derive(Deserialize)]
struct FlashQuery {
    flash: Option<String>,
}

impl Signed {
    async fn extract(req: &HttpRequest) -> Result<Signed, PageError> {
        let state = app_state(req)?;
        let area = area_of(req);
        let session = current_session(req, &state)
            .await?
            .ok_or(PageError::Login)?;
        match (&session.who, area) {
            (Who::Admin, Area::Admin) => {}
            (Who::Tenant { tenant, key_id }, Area::Portal) => {
                let active = state.store.key_is_active(tenant, *key_id).await?;
                if !active {
                    return Err(PageError::Login);
                }
            }
            _ => return Err(PageError::Login),
        }
        let csrf = session_key(&state).await?.csrf_token(&session);
        let ticket = web::Query::<FlashQuery>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.into_inner().flash);
        let flash = match ticket {
            Some(ticket) => flash::take(&*state.store, &session.nonce, &ticket, now_ms()).await?,
            None => None,
        };
        Ok(Signed {
            area,
            session,
            csrf,
            state,
            flash,
        })
    }

    pub fn layout(&self, title: impl Into<String>, section: Section) -> Layout {
        Layout {
            title: title.into(),
            area: self.area,
            nav: if self.area.is_admin() {
                admin_nav(section)
            } else {
                Vec::new()
            },
            tenant_nav: Vec::new(),
            tenant: None,
            csrf: self.csrf.clone(),
            logged_in: true,
            flash: self.flash.clone(),
            now: now_ms(),
        }
    }

    /// Called before an action that creates a secret shown once: when its message could
    /// not be kept, nothing is created and the page says why.
    pub async fn room_for_reveal(&self) -> Result<(), PageError> {
        let principal = self.session.who.flash_principal();
        if flash::room_for_reveal(
            &*self.state.store,
            &self.session.nonce,
            &principal,
            now_ms(),
        )
        .await?
        {
            return Ok(());
        }
        Err(PageError::Status(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "Too many one-time messages are waiting to be shown. Nothing was created; \
             try again in a few minutes."
                .into(),
        ))
    }

    /// Redirects after a POST, leaving `flash` for the next page.
    pub async fn redirect(&self, to: &str, flash: Flash) -> Result<HttpResponse, PageError> {
        let principal = self.session.who.flash_principal();
        let ticket = flash::put(
            &*self.state.store,
            &self.session.nonce,
            &principal,
            flash,
            now_ms(),
        )
        .await?;
        let sep = if to.contains('?') { '&' } else { '?' };
        Ok(see_other(&format!("{to}{sep}flash={ticket}")))
    }
}

impl FromRequest for Signed {
    type Error = PageError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Signed::extract(&req).await })
    }
}

/// The admin, on a page of the admin area.
pub struct Admin(pub Signed);

impl FromRequest for Admin {
    type Error = PageError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let signed = Signed::extract(&req).await?;
            match signed.area {
                Area::Admin => Ok(Admin(signed)),
                Area::Portal => Err(PageError::Login),
            }
        })
    }
}

/// A logged-in session and the one tenant its page shows.
pub struct Tenant {
    pub signed: Signed,
    pub tenant: String,
    /// Where this tenant's pages live: `/admin/tenants/<id>` or `/portal`.
    pub base: String,
}

impl Tenant {
    pub fn layout(&self, title: impl Into<String>, section: Section) -> Layout {
        let admin = self.signed.area.is_admin();
        let mut layout = self
            .signed
            .layout(title, if admin { Section::Tenants } else { section });
        layout.tenant_nav = tenant_nav(&self.base, admin, section);
        layout.tenant = Some(self.tenant.clone());
        layout
    }

    pub fn state(&self) -> &AppState {
        &self.signed.state
    }

    pub async fn redirect(&self, to: &str, flash: Flash) -> Result<HttpResponse, PageError> {
        self.signed.redirect(to, flash).await
    }

    pub async fn room_for_reveal(&self) -> Result<(), PageError> {
        self.signed.room_for_reveal().await
    }
}

impl FromRequest for Tenant {
    type Error = PageError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let signed = Signed::extract(&req).await?;
            let tenant = match &signed.session.who {
                Who::Tenant { tenant, .. } => tenant.clone(),
                _ => {
                    let named = req
                        .match_info()
                        .get("tenant")
                        .unwrap_or_default()
                        .to_owned();
                    if !signed.state.store.tenant_exists(&named).await? {
                        return Err(PageError::not_found("tenant"));
                    }
                    named
                }
            };
            let base = match signed.area {
                Area::Admin => format!("/admin/tenants/{tenant}"),
                Area::Portal => "/portal".to_owned(),
            };
            Ok(Tenant {
                signed,
                tenant,
                base,
            })
        })
    }
}

/// The largest form body a page takes.
pub const FORM_LIMIT: usize = 256 * 1024;
/// The largest login form (a token, `next`, the CSRF token), and the most an anonymous
/// session (a login page's) may post anywhere: strangers cannot take the body budget.
pub const LOGIN_FORM_LIMIT: usize = 4 * 1024;

/// A form body of at most `LIMIT` bytes that carried the right CSRF token.
pub struct Posted<T, const LIMIT: usize = FORM_LIMIT>(pub T);

#[derive(Deserialize)]
struct CsrfField {
    csrf_token: Option<String>,
}

/// A form with no fields besides the token (buttons such as "Pause" or "Retry").
#[derive(Deserialize)]
pub struct Button {}

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for Posted<T, LIMIT> {
    type Error = PageError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = crate::server::body::take(&req, payload);
        Box::pin(async move {
            let state = app_state(&req)?;
            let session = current_session(&req, &state)
                .await?
                .ok_or(PageError::Login)?;
            // Read within `max_body_memory`, and only now that the session is known.
            let limit = match session.who {
                Who::Anonymous => LIMIT.min(LOGIN_FORM_LIMIT),
                _ => LIMIT,
            };
            let body = body.read(limit).await.map_err(|e| match e {
                ApiError::Busy(_) | ApiError::PayloadTooLarge(_) => PageError::from(e),
                e => PageError::bad(format!("the form could not be read: {e}")),
            })?;
            let text = std::str::from_utf8(&body.0)
                .map_err(|_| PageError::bad("the form is not UTF-8"))?;
            // A form body is the same encoding as a query string.
            let token = web::Query::<CsrfField>::from_query(text)
                .ok()
                .and_then(|f| f.into_inner().csrf_token)
                .unwrap_or_default();
            if !session_key(&state).await?.csrf_ok(&session, &token) {
                tracing::warn!(path = %req.path(), "form refused: missing or wrong CSRF token");
                return Err(PageError::forbidden(
                    "This form is missing its security token (or it belongs to another session). \
                     Nothing was changed; reload the page and try again.",
                ));
            }
            let form = web::Query::<T>::from_query(text)
                .map_err(|e| PageError::bad(format!("the form is incomplete: {e}")))?;
            Ok(Posted(form.into_inner()))
        })
    }
}

/// The id of what a page is about: the last `{…}` of its path. (`web::Path<i64>` would not
/// fit both areas: the admin's paths also carry `{tenant}`.) A malformed id is a 404.
pub struct PathId<T>(pub T);

impl<T: std::str::FromStr + 'static> FromRequest for PathId<T> {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = req
            .match_info()
            .iter()
            .last()
            .and_then(|(_, v)| v.parse().ok())
            .map(PathId)
            .ok_or_else(|| PageError::not_found("page"));
        std::future::ready(parsed)
    }
}
