//! The endpoint page's "Try the transformation" form: runs the endpoint's transformation
//! (or the source typed beside the sample, unsaved) on a sample payload, as the API's
//! `POST /webhooks/{id}/transformation/test` does, and shows the request that would be
//! sent, the cancel, or the error. Nothing is sent or saved.

use actix_web::web;
use askama::Template;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::guard::{PathId, Posted, Tenant};
use super::render::{ok, Layout, PageError, PageResult, Section};
use super::resource::page;
use crate::service::transformations::Trial;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/endpoints/{id}/transformation/test")).post(try_it));
}

/// The form as typed.
#[derive(Deserialize, Default)]
pub struct TrialForm {
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub event: String,
    /// Empty: the saved transformation.
    #[serde(default)]
    pub transformation: String,
}

impl TrialForm {
    /// What the endpoint page offers: a sample in the shape `POST /api/v1/events` takes.
    pub fn sample() -> TrialForm {
        TrialForm {
            payload: r#"{"event": "test.event", "data": {"id": 1, "amount": 1200}}"#.into(),
            event: "test.event".into(),
            transformation: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "transformation_trial.html")]
struct TrialPage {
    page: Layout,
    base: String,
    trial_id: i64,
    trial_form: TrialForm,
    trial: Trial,
}

async fn try_it(t: Tenant, PathId(id): PathId<i64>, Posted(form): Posted<TrialForm>) -> PageResult {
    let payload = RawValue::from_string(form.payload.trim().to_owned())
        .map_err(|e| PageError::bad(format!("sample payload: not JSON ({e})")))?;
    let event = match form.event.trim() {
        "" => "test.event".to_owned(),
        name => name.to_owned(),
    };
    let source = Some(form.transformation.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let trial = t
        .state()
        .try_transformation(&t.tenant, id, source, event, payload)
        .await?;
    let page = t.layout(
        format!("Endpoint {id}: transformation trial"),
        Section::Endpoints,
    );
    Ok(ok(&TrialPage {
        page,
        base: t.base.clone(),
        trial_id: id,
        trial_form: form,
        trial,
    }))
}
