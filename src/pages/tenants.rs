//! `/admin/tenants`: the tenants, and each tenant's API keys (created — shown once —,
//! revoked). A tenant's key is also what opens the portal for that tenant.

use super::resource::page;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::flash::Flash;
use super::guard::{Admin, Button, PathId, Posted, Tenant};
use super::render::{ok, render, Layout, PageError, PageResult, Section};
use crate::clock::now_ms;
use crate::domain::TenantId;
use crate::service::check_tenant_name;
use crate::store::{ApiKey, Cursor, Page};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/tenants")).get(list).post(create))
        .service(page(web::resource("/tenants/{tenant}")).get(show))
        .service(page(web::resource("/tenants/{tenant}/keys")).post(create_key))
        .service(page(web::resource("/tenants/{tenant}/keys/{key}/revoke")).post(revoke_key));
}

pub const PAGE_SIZE: usize = 25;

/// `?cursor=` of the list pages: the id below which the page starts.
#[derive(Deserialize, Default)]
pub struct Paging {
    pub cursor: Option<i64>,
}

impl Paging {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            before: self.cursor.filter(|c| *c > 0),
            limit: PAGE_SIZE,
        }
    }
}

#[derive(Template)]
#[template(path = "tenants.html")]
struct TenantsPage {
    page: Layout,
    tenants: Page<crate::store::Tenant>,
    paged: bool,
    form: NewTenant,
    problem: Option<String>,
}

#[derive(Deserialize, Default)]
struct NewTenant {
    id: String,
    #[serde(default)]
    name: String,
}

async fn tenants_page(
    admin: &Admin,
    paging: &Paging,
    form: NewTenant,
    problem: Option<String>,
) -> PageResult {
    let cursor = paging.cursor();
    let tenants = admin.0.state.store.list_tenants(cursor).await?;
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = admin.0.layout("Tenants", Section::Tenants);
    let paged = paging.cursor.is_some();
    Ok(render(
        status,
        &TenantsPage {
            page,
            tenants,
            paged,
            form,
            problem,
        },
    ))
}

async fn list(admin: Admin, paging: web::Query<Paging>) -> PageResult {
    tenants_page(&admin, &paging, NewTenant::default(), None).await
}

async fn create(admin: Admin, Posted(form): Posted<NewTenant>) -> PageResult {
    let id = match TenantId::parse(form.id.trim()) {
        Ok(id) => id,
        Err(e) => return tenants_page(&admin, &Paging::default(), form, Some(e)).await,
    };
    let name = match form.name.trim() {
        "" => id.as_str().to_owned(),
        n => n.to_owned(),
    };
    if let Err(e) = check_tenant_name(&name) {
        return tenants_page(&admin, &Paging::default(), form, Some(e.to_string())).await;
    }
    let created = admin
        .0
        .state
        .store
        .create_tenant(id.as_str(), &name, now_ms())
        .await;
    match created {
        Ok(t) => {
            admin
                .0
                .redirect(
                    &format!("/admin/tenants/{}", t.id),
                    Flash::notice("Tenant created."),
                )
                .await
        }
        Err(crate::store::StoreError::Conflict(m)) => {
            tenants_page(&admin, &Paging::default(), form, Some(m)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "tenant.html")]
struct TenantPage {
    page: Layout,
    base: String,
    tenant: crate::store::Tenant,
    keys: Page<ApiKey>,
    paged: bool,
}

async fn show(t: Tenant, paging: web::Query<Paging>) -> PageResult {
    let store = &t.state().store;
    let tenant = store.get_tenant(&t.tenant).await?;
    let keys = store.list_keys(&t.tenant, paging.cursor()).await?;
    let page = t.layout(format!("Tenant {}", tenant.name), Section::Keys);
    let paged = paging.cursor.is_some();
    Ok(ok(&TenantPage {
        page,
        base: t.base.clone(),
        tenant,
        keys,
        paged,
    }))
}

#[derive(Deserialize)]
struct NewKey {
    #[serde(default)]
    name: String,
}

async fn create_key(t: Tenant, Posted(form): Posted<NewKey>) -> PageResult {
    admin_only(&t)?;
    t.room_for_reveal().await?;
    let created = t
        .state()
        .issue_key(&t.tenant, form.name.trim().to_owned())
        .await;
    Ok(match created {
        Ok(key) => {
            t.redirect(
                &t.base,
                Flash::notice(format!(
                    "API key {} created. The tenant can use it for the API and the portal.",
                    key.key.prefix
                ))
                .reveal("API key", key.token),
            )
            .await?
        }
        Err(e) => t.redirect(&t.base, Flash::problem(e.to_string())).await?,
    })
}

async fn revoke_key(t: Tenant, PathId(key_id): PathId<i64>, _: Posted<Button>) -> PageResult {
    admin_only(&t)?;
    let key = t
        .state()
        .store
        .revoke_key(&t.tenant, key_id, now_ms())
        .await?;
    t.redirect(
        &t.base,
        Flash::notice(format!("API key {} revoked.", key.prefix)),
    )
    .await
}

/// Key management sits under `/admin` only, but the check costs nothing and keeps it so.
fn admin_only(t: &Tenant) -> Result<(), PageError> {
    if t.signed.area.is_admin() {
        Ok(())
    } else {
        Err(PageError::forbidden("only the admin manages API keys"))
    }
}
