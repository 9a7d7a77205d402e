//! `/admin/event-types`: the deployment's optional catalogue of event names, with a
//! description and an example payload.

use super::resource::page;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::flash::Flash;
use super::format::pretty_json;
use super::guard::{Admin, Button, PathId, Posted};
use super::render::{render, Layout, PageResult, Section};
use crate::store::EventType;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource("/event-types")).get(list).post(upsert))
        .service(page(web::resource("/event-types/{name}/delete")).post(delete));
}

#[derive(Deserialize, Default)]
struct TypeForm {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    example: String,
    #[serde(default)]
    schema: String,
}

/// A catalogue entry with its example indented for reading.
struct Row {
    event_type: EventType,
    example: Option<String>,
    schema: Option<String>,
}

#[derive(Template)]
#[template(path = "event_types.html")]
struct ListPage {
    page: Layout,
    rows: Vec<Row>,
    form: TypeForm,
    problem: Option<String>,
}

async fn list_page(admin: &Admin, form: TypeForm, problem: Option<String>) -> PageResult {
    let types = admin.0.state.store.all_event_types().await?;
    let rows = types
        .into_iter()
        .map(|t| Row {
            example: t.example.as_ref().map(|e| pretty_json(e.get())),
            schema: t.schema.as_ref().map(|e| pretty_json(e.get())),
            event_type: t,
        })
        .collect();
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = admin.0.layout("Event types", Section::EventTypes);
    Ok(render(
        status,
        &ListPage {
            page,
            rows,
            form,
            problem,
        },
    ))
}

async fn list(admin: Admin) -> PageResult {
    list_page(&admin, TypeForm::default(), None).await
}

async fn upsert(admin: Admin, Posted(form): Posted<TypeForm>) -> PageResult {
    let example = match form.example.trim() {
        "" => None,
        text => match crate::wire::canonical_json::parse(text.as_bytes()) {
            Ok(v) => Some(v),
            Err(e) => {
                return list_page(&admin, form, Some(format!("example: not valid JSON: {e}"))).await
            }
        },
    };
    let schema = match form.schema.trim() {
        "" => None,
        text => match crate::wire::canonical_json::parse(text.as_bytes()) {
            Ok(v) => Some(v),
            Err(e) => {
                return list_page(&admin, form, Some(format!("schema: not valid JSON: {e}"))).await
            }
        },
    };
    let saved = admin
        .0
        .state
        .upsert_event_type(
            form.name.trim(),
            form.description.trim().to_owned(),
            example,
            schema,
        )
        .await;
    match saved {
        Ok(t) => {
            admin
                .0
                .redirect(
                    "/admin/event-types",
                    Flash::notice(format!("Event type {} saved.", t.name)),
                )
                .await
        }
        Err(e) => list_page(&admin, form, Some(e.to_string())).await,
    }
}

async fn delete(admin: Admin, PathId(name): PathId<String>, _: Posted<Button>) -> PageResult {
    admin.0.state.delete_event_type(&name).await?;
    admin
        .0
        .redirect(
            "/admin/event-types",
            Flash::notice(format!("Event type {name} deleted.")),
        )
        .await
}
