//! Turning templates into responses: the layout every page shares, the security headers,
//! redirects, and the error page.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::flash::Flash;
use super::format::When;
use crate::error::ApiError;
use crate::store::StoreError;

/// Which half of the pages a request is in, set as data on each scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Admin,
    Portal,
}

impl Area {
    pub fn root(self) -> &'static str {
        match self {
            Area::Admin => "/admin",
            Area::Portal => "/portal",
        }
    }

    pub fn login(self) -> &'static str {
        match self {
            Area::Admin => "/admin/login",
            Area::Portal => "/portal/login",
        }
    }

    pub fn is_admin(&self) -> bool {
        *self == Area::Admin
    }
}

/// The parts of the site a page can belong to (for highlighting the menu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Tenants,
    EventTypes,
    Endpoints,
    Events,
    Deliveries,
    Keys,
}

pub struct Link {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// What `base.html` needs: title, menus, the CSRF token for the logout form, the flash.
pub struct Layout {
    pub title: String,
    pub area: Area,
    pub nav: Vec<Link>,
    /// The admin's menu inside one tenant; empty elsewhere.
    pub tenant_nav: Vec<Link>,
    pub tenant: Option<String>,
    pub csrf: String,
    pub logged_in: bool,
    pub flash: Option<Flash>,
    pub now: i64,
}

impl Layout {
    pub fn when(&self, ms: &i64) -> When {
        When {
            ms: *ms,
            now: self.now,
        }
    }

    pub fn opt_when(&self, ms: &Option<i64>) -> Option<When> {
        ms.map(|ms| When { ms, now: self.now })
    }
}

fn link(label: &'static str, href: String, section: Section, current: Section) -> Link {
    Link {
        label,
        href,
        current: section == current,
    }
}

/// The admin's top menu.
pub fn admin_nav(current: Section) -> Vec<Link> {
    vec![
        link("Overview", "/admin".into(), Section::Overview, current),
        link(
            "Tenants",
            "/admin/tenants".into(),
            Section::Tenants,
            current,
        ),
        link(
            "Event types",
            "/admin/event-types".into(),
            Section::EventTypes,
            current,
        ),
    ]
}

/// The pages of one tenant, under `base` (`/admin/tenants/<id>` or `/portal`).
pub fn tenant_nav(base: &str, admin: bool, current: Section) -> Vec<Link> {
    let mut links = vec![
        link(
            "Endpoints",
            format!("{base}/endpoints"),
            Section::Endpoints,
            current,
        ),
        link("Events", format!("{base}/events"), Section::Events, current),
        link(
            "Deliveries",
            format!("{base}/deliveries"),
            Section::Deliveries,
            current,
        ),
    ];
    if admin {
        links.push(link("API keys", base.to_owned(), Section::Keys, current));
    }
    links
}

/// A rendered page with the headers every page carries: no caching (pages show secrets
/// once), no framing, and a policy that allows no script at all — a second wall behind
/// the escaping of every user-supplied value.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError().body("the page could not be rendered")
        }
    }
}

pub fn ok(page: &impl Template) -> HttpResponse {
    render(StatusCode::OK, page)
}

/// 303 See Other: the answer to every successful POST (POST-redirect-GET).
pub fn see_other(location: &str) -> HttpResponse {
    // Locations are built from our own paths; one that is not a valid header value goes
    // to the front page rather than failing the request.
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/admin"));
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Adds a `Set-Cookie` header to a response.
pub fn with_cookie(mut response: HttpResponse, cookie: &str) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub type PageResult = Result<HttpResponse, PageError>;

/// Why a page cannot be shown. The scope's middleware (`mod.rs`) renders it, because it
/// knows the area; errors raised deep in a handler (`?` on a store call) do not.
#[derive(Debug)]
pub enum PageError {
    /// No valid session: back to the login form (GET) or refused (POST).
    Login,
    Status(StatusCode, String),
}

impl PageError {
    pub fn not_found(what: &str) -> PageError {
        PageError::Status(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn forbidden(message: &str) -> PageError {
        PageError::Status(StatusCode::FORBIDDEN, message.into())
    }

    pub fn bad(message: impl Into<String>) -> PageError {
        PageError::Status(StatusCode::BAD_REQUEST, message.into())
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Login => f.write_str("log in first"),
            PageError::Status(_, m) => f.write_str(m),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Login => StatusCode::SEE_OTHER,
            PageError::Status(s, _) => *s,
        }
    }

    /// A plain fallback; `render_error` replaces it with the full page.
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).body(self.to_string())
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::Status(e.status_code(), e.to_string())
    }
}

impl From<crate::service::ServiceError> for PageError {
    fn from(e: crate::service::ServiceError) -> Self {
        match e {
            crate::service::ServiceError::Invalid { message, .. } => PageError::bad(message),
            crate::service::ServiceError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Layout,
    status: u16,
    message: String,
}

/// The full error page of an area.
pub fn render_error(area: Area, error: &PageError, is_get: bool, next: &str) -> HttpResponse {
    let (status, message) = match error {
        PageError::Login if is_get => {
            let to = format!("{}?next={}", area.login(), urlencode(next));
            return see_other(&to);
        }
        PageError::Login => (
            StatusCode::FORBIDDEN,
            "Your session has ended or the form is stale. Log in again; nothing was changed."
                .to_owned(),
        ),
        PageError::Status(status, message) => (*status, message.clone()),
    };
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let page = Layout {
        title,
        area,
        nav: Vec::new(),
        tenant_nav: Vec::new(),
        tenant: None,
        csrf: String::new(),
        logged_in: false,
        flash: None,
        now: 0,
    };
    render(
        status,
        &ErrorPage {
            page,
            status: status.as_u16(),
            message,
        },
    )
}

/// Percent-encodes a query value (for `next=` and filter links).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `path?k=v&…` with the non-empty pairs, for pagination links that keep the filters.
pub fn query_link(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}
