//! Logging in and out of both areas: the admin with the admin token, a tenant with one of
//! its API keys. Failed attempts are slowed down, then refused, per area and client address
//! (`crate::server::throttle`).

use super::resource::page;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use askama::Template;
use serde::Deserialize;

use super::guard::{session_cookie, Button, Posted, Visitor, LOGIN_FORM_LIMIT};
use super::render::{render, see_other, with_cookie, Area, Layout, PageError, PageResult};
use super::session::{Session, Who};
use crate::clock::now_ms;
use crate::secrets::keys::{hash_token, same_hash};
use crate::server::throttle::{self, Door, Gate};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/login")).get(form).post(login))
        .service(
            page(web::resource("/logout"))
                .post(logout)
                .get(
                    |req: HttpRequest| async move { see_other(super::guard::area_of(&req).root()) },
                ),
        );
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Layout,
    next: String,
    problem: Option<String>,
    bye: bool,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    bye: Option<String>,
}

/// Where to go after logging in: only a page of the same area, never another site.
fn safe_next(area: Area, next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with(area.root())
                && n[area.root().len()..].starts_with(['/', '?'])
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => area.root().to_owned(),
    }
}

fn login_page(
    v: &Visitor,
    session: &Session,
    next: String,
    problem: Option<String>,
    bye: bool,
) -> LoginPage {
    let title = match v.area {
        Area::Admin => "Admin login",
        Area::Portal => "Webhooks portal login",
    };
    let page = Layout {
        title: title.into(),
        area: v.area,
        nav: Vec::new(),
        tenant_nav: Vec::new(),
        tenant: None,
        csrf: v.key.csrf_token(session),
        logged_in: false,
        flash: None,
        now: now_ms(),
    };
    LoginPage {
        page,
        next,
        problem,
        bye,
    }
}

/// Shows the form, first giving the browser an anonymous session so that the form, like
/// every other, carries a CSRF token.
async fn form(req: HttpRequest, v: Visitor, query: web::Query<LoginQuery>) -> PageResult {
    let next = safe_next(v.area, query.next.as_deref());
    let logged_in = matches!(
        (&v.session, v.area),
        (
            Some(Session {
                who: Who::Admin,
                ..
            }),
            Area::Admin
        ) | (
            Some(Session {
                who: Who::Tenant { .. },
                ..
            }),
            Area::Portal
        )
    );
    if logged_in {
        return Ok(see_other(&next));
    }
    let (session, fresh) = match &v.session {
        Some(s) if s.who == Who::Anonymous => (s.clone(), false),
        _ => (Session::new(Who::Anonymous, now_ms()), true),
    };
    let page = login_page(&v, &session, next, None, query.bye.is_some());
    let response = render(StatusCode::OK, &page);
    Ok(if fresh {
        with_cookie(
            response,
            &session_cookie(
                &req,
                v.area,
                Some((&v.key.seal(&session), session.expires_ms)),
            ),
        )
    } else {
        response
    })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    req: HttpRequest,
    v: Visitor,
    Posted(f): Posted<LoginForm, LOGIN_FORM_LIMIT>,
) -> PageResult {
    let ip = crate::server::client_addr::client_key(&req, &v.state.config);
    let door = match v.area {
        Area::Admin => Door::AdminLogin,
        Area::Portal => Door::PortalLogin,
    };
    // A guard: dropped on an early return (the store failed) the slot goes back.
    let Gate::Open(slot) = throttle::begin(&v.state.store, door, ip, now_ms()).await? else {
        return Err(PageError::Status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins from your address. Wait 15 minutes and try again.".into(),
        ));
    };
    let token = f.token.trim().to_owned();
    let who = match v.area {
        Area::Admin => {
            same_hash(&hash_token(&token), &v.state.admin_token_hash).then_some(Who::Admin)
        }
        Area::Portal => {
            let hash = hash_token(&token);
            v.state
                .store
                .active_key(&hash)
                .await?
                // `_herald` has no keys; one minted before that rule opens nothing.
                .filter(|key| key.tenant_id != crate::store::OPERATOR_TENANT)
                .map(|key| Who::Tenant {
                    tenant: key.tenant_id,
                    key_id: key.id,
                })
        }
    };
    let next = safe_next(v.area, f.next.as_deref());
    let Some(who) = who else {
        let delay = slot.failed(now_ms()).await;
        actix_web::rt::time::sleep(delay).await;
        let session = v
            .session
            .clone()
            .unwrap_or_else(|| Session::new(Who::Anonymous, now_ms()));
        let what = if v.area.is_admin() {
            "admin token"
        } else {
            "API key"
        };
        let problem = format!("That {what} is not valid. Check it and try again.");
        return Ok(render(
            StatusCode::UNAUTHORIZED,
            &login_page(&v, &session, next, Some(problem), false),
        ));
    };
    slot.succeeded().await;
    // A fresh nonce on login: a session id planted before login is worth nothing after it.
    let epoch = who.current_epoch(&v.state.store).await?;
    let session = Session::with_epoch(who, epoch, now_ms());
    let cookie = session_cookie(
        &req,
        v.area,
        Some((&v.key.seal(&session), session.expires_ms)),
    );
    Ok(with_cookie(see_other(&next), &cookie))
}

/// Ends the session on the server as well (see `session`): a copy of the cookie is refused.
async fn logout(req: HttpRequest, v: Visitor, _: Posted<Button>) -> PageResult {
    if let Some(session) = &v.session {
        let of_this_area = matches!(
            (&session.who, v.area),
            (Who::Admin, Area::Admin) | (Who::Tenant { .. }, Area::Portal)
        );
        if of_this_area {
            session.who.end_sessions(&v.state.store).await?;
        }
    }
    let to = format!("{}?bye=1", v.area.login());
    Ok(with_cookie(
        see_other(&to),
        &session_cookie(&req, v.area, None),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_area() {
        assert_eq!(
            safe_next(Area::Admin, Some("/admin/tenants")),
            "/admin/tenants"
        );
        assert_eq!(safe_next(Area::Admin, Some("/admin?x=1")), "/admin?x=1");
        assert_eq!(safe_next(Area::Admin, Some("/administrator")), "/admin");
        assert_eq!(safe_next(Area::Admin, Some("/portal/endpoints")), "/admin");
        assert_eq!(safe_next(Area::Admin, Some("/admin//evil.com")), "/admin");
        assert_eq!(
            safe_next(Area::Portal, Some("https://evil.com/portal/")),
            "/portal"
        );
        assert_eq!(safe_next(Area::Portal, None), "/portal");
    }

    #[test]
    fn hashes_compare_whole() {
        assert!(same_hash("ab", "ab") && !same_hash("ab", "ac") && !same_hash("ab", "abc"));
    }
}
