//! The event log of a tenant: filter by type and time, and one event's payload (pretty-
//! printed) with the delivery it got at each endpoint.

use super::resource::page;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::format::{pretty_json, time_filter};
use super::guard::{PathId, Tenant};
use super::render::{ok, query_link, render, Layout, PageResult, Section};
use super::tenants::PAGE_SIZE;
use crate::store::{Cursor, Delivery, Event, EventQuery, Page};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/events")).get(list))
        .service(page(web::resource("/events/{id}")).get(show));
}

/// The filter form, as typed (so it can be shown back).
#[derive(Deserialize, Default)]
struct Filters {
    #[serde(default)]
    event: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    cursor: Option<i64>,
}

#[derive(Template)]
#[template(path = "events.html")]
struct ListPage {
    page: Layout,
    base: String,
    filters: Filters,
    problem: Option<String>,
    events: Page<Event>,
    older: Option<String>,
    newest: Option<String>,
}

impl Filters {
    fn query(&self) -> Result<EventQuery, String> {
        Ok(EventQuery {
            event_type: Some(self.event.trim().to_owned()).filter(|e| !e.is_empty()),
            since: time_filter(&self.since).map_err(|e| format!("from: {e}"))?,
            until: time_filter(&self.until).map_err(|e| format!("until: {e}"))?,
        })
    }

    fn link(&self, path: &str, cursor: &str) -> String {
        let pairs = [
            ("event", self.event.as_str()),
            ("since", &self.since),
            ("until", &self.until),
            ("cursor", cursor),
        ];
        query_link(path, &pairs)
    }

    fn filtered(&self) -> bool {
        !(self.event.is_empty() && self.since.is_empty() && self.until.is_empty())
    }
}

async fn list(t: Tenant, filters: web::Query<Filters>) -> PageResult {
    let filters = filters.into_inner();
    let path = format!("{}/events", t.base);
    let page = t.layout("Events", Section::Events);
    let (q, problem) = match filters.query() {
        Ok(q) => (Some(q), None),
        Err(e) => (None, Some(e)),
    };
    let events = match q {
        Some(q) => {
            let (tenant, cursor) = (
                t.tenant.clone(),
                Cursor {
                    before: filters.cursor,
                    limit: PAGE_SIZE,
                },
            );
            t.state().store.list_events(&tenant, q, cursor).await?
        }
        None => Page {
            items: Vec::new(),
            next_cursor: None,
        },
    };
    let older = events
        .next_cursor
        .as_deref()
        .map(|c| filters.link(&path, c));
    let newest = filters.cursor.map(|_| filters.link(&path, ""));
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let base = t.base.clone();
    Ok(render(
        status,
        &ListPage {
            page,
            base,
            filters,
            problem,
            events,
            older,
            newest,
        },
    ))
}

#[derive(Template)]
#[template(path = "event.html")]
struct ShowPage {
    page: Layout,
    base: String,
    event: Event,
    payload: String,
    deliveries: Vec<Delivery>,
}

async fn show(t: Tenant, PathId(id): PathId<String>) -> PageResult {
    let store = &t.state().store;
    let event = store.get_event(&t.tenant, &id).await?;
    let deliveries = store.event_deliveries(&t.tenant, &id).await?;
    let payload = pretty_json(event.payload.get());
    let page = t.layout(format!("Event {}", event.event), Section::Events);
    Ok(ok(&ShowPage {
        page,
        base: t.base.clone(),
        event,
        payload,
        deliveries,
    }))
}
