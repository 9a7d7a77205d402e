//! Admin pages (`/admin`) and the tenant portal (`/portal`): server-rendered with askama.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
