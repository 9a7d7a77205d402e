//! The buttons of an endpoint's page: pause and resume, send a test event, rotate the
//! secret, replay what it missed, and delete (after a confirmation page). Each is one POST
//! that redirects back.

use super::resource::page;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::flash::Flash;
use super::format::When;
use super::guard::{Button, PathId, Posted, Tenant};
use super::render::{ok, PageError, PageResult, Section};
use crate::clock::{self, now_ms};
use crate::domain::EndpointStatus;
use crate::service::replay::Window;
use crate::store::replay::SCAN;
use crate::store::{Endpoint, EndpointPatch};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/endpoints/{id}/status")).post(set_status))
        .service(page(web::resource("/endpoints/{id}/test")).post(send_test))
        .service(page(web::resource("/endpoints/{id}/rotate-secret")).post(rotate))
        .service(page(web::resource("/endpoints/{id}/replay")).post(replay))
        .service(
            page(web::resource("/endpoints/{id}/delete"))
                .get(confirm_delete)
                .post(delete),
        );
}

fn endpoint_url(t: &Tenant, id: i64) -> String {
    format!("{}/endpoints/{id}", t.base)
}

#[derive(Deserialize)]
struct StatusForm {
    status: String,
}

/// Pause or resume. Pausing keeps new deliveries pending; resuming sends them.
async fn set_status(
    t: Tenant,
    PathId(id): PathId<i64>,
    Posted(form): Posted<StatusForm>,
) -> PageResult {
    let status = EndpointStatus::parse(&form.status).map_err(PageError::bad)?;
    let patch = EndpointPatch {
        status: Some(status),
        ..Default::default()
    };
    t.state().update_endpoint(&t.tenant, id, patch).await?;
    let message = match status {
        EndpointStatus::Active => "Endpoint resumed: waiting deliveries go out now.",
        EndpointStatus::Paused => "Endpoint paused: new events wait for it until it is resumed.",
        EndpointStatus::Disabled => "Endpoint disabled: its pending deliveries were cancelled.",
    };
    t.redirect(&endpoint_url(&t, id), Flash::notice(message))
        .await
}

async fn send_test(t: Tenant, PathId(id): PathId<i64>, _: Posted<Button>) -> PageResult {
    let (_, delivery_id) = t.state().send_test(&t.tenant, id).await?;
    let flash = Flash::notice(
        "Test event sent. This page shows its delivery; reload it to see the attempt.",
    );
    t.redirect(&format!("{}/deliveries/{delivery_id}", t.base), flash)
        .await
}

async fn rotate(t: Tenant, PathId(id): PathId<i64>, _: Posted<Button>) -> PageResult {
    t.room_for_reveal().await?;
    let endpoint = t.state().rotate_secret(&t.tenant, id).await?;
    let until = endpoint.previous_secret_until.unwrap_or_default();
    let when = When {
        ms: until,
        now: now_ms(),
    };
    let message = format!(
        "Secret rotated. The previous secret keeps signing beside the new one until {} ({}).",
        when.utc(),
        when.age()
    );
    let flash = Flash::notice(message).reveal("New signing secret", endpoint.secret.clone());
    t.redirect(&endpoint_url(&t, endpoint.id), flash).await
}

/// The endpoint page's replay form: its dry-run count over what retention keeps.
pub struct Missed {
    /// Events the endpoint matches with no delivery for it, in the window.
    pub count: usize,
    /// The count stopped at the page's bound: there are at least `count`.
    pub more: bool,
    /// The window's start as the form shows it (RFC 3339), and its length in words.
    pub since: String,
    pub window: String,
}

/// Stored events the page's count reads at most: a page view stays cheap, and the button
/// replays the whole window anyway.
const PAGE_SCAN: usize = 20_000;

/// The dry run the endpoint page shows beside its replay button.
pub async fn missed(t: &Tenant, id: i64) -> Result<Missed, PageError> {
    let state = t.state();
    let retention = state.config.retention;
    let since = now_ms().saturating_sub(retention.as_millis() as i64);
    let window = Window {
        since,
        until: None,
        cursor: None,
        limit: None,
        dry_run: true,
        scan: PAGE_SCAN,
    };
    let dry = state.replay(&t.tenant, id, window).await?;
    Ok(Missed {
        count: dry.count,
        more: dry.next.is_some(),
        since: clock::rfc3339_seconds(since),
        window: crate::units::format_duration(retention),
    })
}

#[derive(Deserialize)]
struct ReplayForm {
    since: String,
    #[serde(default)]
    until: String,
}

/// Creates the deliveries the endpoint missed since the form's time (one bounded call;
/// pressing again goes on, since what was created is never created twice).
async fn replay(
    t: Tenant,
    PathId(id): PathId<i64>,
    Posted(form): Posted<ReplayForm>,
) -> PageResult {
    let time = |name: &str, v: &str| {
        clock::parse(v.trim()).map_err(|e| PageError::bad(format!("{name}: {e}")))
    };
    let until = match form.until.trim() {
        "" => None,
        v => Some(time("until", v)?),
    };
    let window = Window {
        since: time("since", &form.since)?,
        until,
        cursor: None,
        limit: None,
        dry_run: false,
        scan: SCAN,
    };
    let done = t.state().replay(&t.tenant, id, window).await?;
    let mut message = match done.count {
        0 => "Nothing to replay: every event it matches has a delivery.".to_owned(),
        1 => "Replayed: 1 delivery created.".to_owned(),
        n => format!("Replayed: {n} deliveries created, oldest event first."),
    };
    if done.next.is_some() {
        message.push_str(" More of the window remains: press Replay again to go on.");
    }
    if let Some(pruned) = &done.retention {
        message.push(' ');
        message.push_str(&pruned.message);
        message.push('.');
    }
    t.redirect(&endpoint_url(&t, id), Flash::notice(message))
        .await
}

#[derive(Template)]
#[template(path = "endpoint_delete.html")]
struct ConfirmPage {
    page: super::render::Layout,
    base: String,
    endpoint: Endpoint,
}

async fn confirm_delete(t: Tenant, PathId(id): PathId<i64>) -> PageResult {
    let endpoint = t.state().store.get_endpoint(&t.tenant, id).await?;
    let page = t.layout(format!("Delete endpoint {id}?"), Section::Endpoints);
    Ok(ok(&ConfirmPage {
        page,
        base: t.base.clone(),
        endpoint,
    }))
}

async fn delete(t: Tenant, PathId(id): PathId<i64>, _: Posted<Button>) -> PageResult {
    t.state().store.delete_endpoint(&t.tenant, id).await?;
    tracing::info!(tenant = %t.tenant, endpoint = id, "endpoint deleted from the pages");
    t.redirect(
        &format!("{}/endpoints", t.base),
        Flash::notice(format!("Endpoint {id} deleted.")),
    )
    .await
}
