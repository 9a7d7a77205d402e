//! Renaming and deleting a tenant from its page (admin only). Deleting asks first, on a
//! page of its own, because it takes the tenant's keys, endpoints and history with it.

use super::resource::page;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::flash::Flash;
use super::guard::{Button, Posted, Tenant};
use super::render::{ok, Layout, PageError, PageResult, Section};
use crate::service::check_tenant_name;
use crate::store::StoreError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/tenants/{tenant}/rename")).post(rename))
        .service(
            page(web::resource("/tenants/{tenant}/delete"))
                .get(confirm_delete)
                .post(delete),
        );
}

fn admin_only(t: &Tenant) -> Result<(), PageError> {
    if t.signed.area.is_admin() {
        Ok(())
    } else {
        Err(PageError::forbidden("only the admin manages tenants"))
    }
}

#[derive(Deserialize)]
struct Rename {
    name: String,
}

async fn rename(t: Tenant, Posted(form): Posted<Rename>) -> PageResult {
    admin_only(&t)?;
    let name = form.name.trim();
    if let Err(e) = check_tenant_name(name) {
        return t.redirect(&t.base, Flash::problem(e.to_string())).await;
    }
    let tenant = t.state().store.rename_tenant(&t.tenant, name).await?;
    t.redirect(
        &t.base,
        Flash::notice(format!("Tenant renamed to {}.", tenant.name)),
    )
    .await
}

#[derive(Template)]
#[template(path = "tenant_delete.html")]
struct ConfirmPage {
    page: Layout,
    base: String,
    tenant: crate::store::Tenant,
}

async fn confirm_delete(t: Tenant) -> PageResult {
    admin_only(&t)?;
    let tenant = t.state().store.get_tenant(&t.tenant).await?;
    let page = t.layout(format!("Delete tenant {}?", tenant.name), Section::Keys);
    Ok(ok(&ConfirmPage {
        page,
        base: t.base.clone(),
        tenant,
    }))
}

async fn delete(t: Tenant, _: Posted<Button>) -> PageResult {
    admin_only(&t)?;
    match t.state().store.delete_tenant(&t.tenant).await {
        Ok(()) => {
            tracing::info!(tenant = %t.tenant, "tenant deleted from the pages");
            t.redirect(
                "/admin/tenants",
                Flash::notice(format!("Tenant {} deleted.", t.tenant)),
            )
            .await
        }
        Err(StoreError::Conflict(m)) => t.redirect(&t.base, Flash::problem(m)).await,
        Err(e) => Err(e.into()),
    }
}
