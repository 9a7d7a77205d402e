//! The delivery log of a tenant (filter by status and endpoint), one delivery with every
//! attempt — status code, duration, the start of the response, the error — and its retry
//! button.

use super::resource::page;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::flash::Flash;
use super::format::excerpt;
use super::guard::{Button, PathId, Posted, Tenant};
use super::render::{ok, query_link, Layout, PageError, PageResult, Section};
use super::tenants::PAGE_SIZE;
use crate::service::ServiceError;
use crate::store::{Attempt, Cursor, Delivery, DeliveryQuery, Endpoint, Page, StoreError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/deliveries")).get(list))
        .service(page(web::resource("/deliveries/{id}")).get(show))
        .service(page(web::resource("/deliveries/{id}/retry")).post(retry));
}

pub const STATUSES: [&str; 4] = ["pending", "succeeded", "failed", "cancelled"];

#[derive(Deserialize, Default)]
struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    endpoint: String,
    cursor: Option<i64>,
}

impl Filters {
    fn query(&self) -> Result<DeliveryQuery, PageError> {
        let status = match self.status.as_str() {
            "" => None,
            s if STATUSES.contains(&s) => Some(s.to_owned()),
            _ => {
                return Err(PageError::bad(
                    "status must be pending, succeeded, failed or cancelled",
                ))
            }
        };
        let endpoint_id = match self.endpoint.as_str() {
            "" => None,
            e => Some(
                e.parse::<i64>()
                    .map_err(|_| PageError::bad("endpoint must be an endpoint id"))?,
            ),
        };
        Ok(DeliveryQuery {
            status,
            endpoint_id,
            ..Default::default()
        })
    }

    fn link(&self, path: &str, cursor: &str) -> String {
        query_link(
            path,
            &[
                ("status", &self.status),
                ("endpoint", &self.endpoint),
                ("cursor", cursor),
            ],
        )
    }
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct ListPage {
    page: Layout,
    base: String,
    filters: Filters,
    statuses: [&'static str; 4],
    endpoints: Vec<Endpoint>,
    deliveries: Page<Delivery>,
    older: Option<String>,
    newest: Option<String>,
}

impl ListPage {
    /// The endpoint URL of a delivery's row (endpoints are few, deliveries many).
    fn url_of(&self, endpoint_id: &i64) -> &str {
        self.endpoints
            .iter()
            .find(|e| e.id == *endpoint_id)
            .map_or("(deleted endpoint)", |e| e.settings.url_str())
    }
}

async fn list(t: Tenant, filters: web::Query<Filters>) -> PageResult {
    let filters = filters.into_inner();
    let q = filters.query()?;
    let (tenant, cursor) = (
        t.tenant.clone(),
        Cursor {
            before: filters.cursor,
            limit: PAGE_SIZE,
        },
    );
    let store = &t.state().store;
    // The endpoint menu of the filter form; a tenant with more endpoints than this still
    // filters by any id through the URL.
    let menu = Cursor {
        before: None,
        limit: 200,
    };
    let endpoints = store.list_endpoints(&tenant, None, menu).await?.items;
    let deliveries = store.list_deliveries(&tenant, q, cursor).await?;
    let path = format!("{}/deliveries", t.base);
    let older = deliveries
        .next_cursor
        .as_deref()
        .map(|c| filters.link(&path, c));
    let newest = filters.cursor.map(|_| filters.link(&path, ""));
    let page = t.layout("Deliveries", Section::Deliveries);
    let base = t.base.clone();
    Ok(ok(&ListPage {
        page,
        base,
        filters,
        statuses: STATUSES,
        endpoints,
        deliveries,
        older,
        newest,
    }))
}

/// An attempt as the page shows it.
struct AttemptRow {
    attempt: Attempt,
    /// The error, unless it only repeats the status code the badge already shows.
    error: Option<String>,
    response: Option<String>,
    headers: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct ShowPage {
    page: Layout,
    base: String,
    delivery: Delivery,
    endpoint: Option<Endpoint>,
    attempts: Vec<AttemptRow>,
}

async fn show(t: Tenant, PathId(id): PathId<i64>) -> PageResult {
    let tenant = t.tenant.clone();
    let store = &t.state().store;
    let (delivery, attempts) = store.delivery_with_attempts(&tenant, id).await?;
    let endpoint = store.get_endpoint(&tenant, delivery.endpoint_id).await.ok();
    let attempts = attempts.into_iter().map(attempt_row).collect();
    let page = t.layout(format!("Delivery {}", delivery.id), Section::Deliveries);
    Ok(ok(&ShowPage {
        page,
        base: t.base.clone(),
        delivery,
        endpoint,
        attempts,
    }))
}

fn attempt_row(attempt: Attempt) -> AttemptRow {
    let only_code = attempt.status_code.map(|c| format!("HTTP {c}"));
    let error = attempt
        .error
        .clone()
        .filter(|e| Some(e) != only_code.as_ref());
    let response = attempt
        .response_body
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| excerpt(b, 2000));
    let headers = attempt
        .response_headers
        .iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    AttemptRow {
        attempt,
        error,
        response,
        headers,
    }
}

async fn retry(t: Tenant, PathId(id): PathId<i64>, _: Posted<Button>) -> PageResult {
    let to = format!("{}/deliveries/{id}", t.base);
    Ok(match t.state().retry_delivery(&t.tenant, id).await {
        Ok(_) => {
            t.redirect(
                &to,
                Flash::notice("Delivery queued again; reload to see the new attempt."),
            )
            .await?
        }
        Err(ServiceError::Store(StoreError::Conflict(message))) => {
            t.redirect(&to, Flash::problem(message)).await?
        }
        Err(e) => return Err(e.into()),
    })
}
