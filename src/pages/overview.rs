//! `/admin`: how the deployment is doing — what waits in the queue, what succeeded and
//! failed in the last day, and which endpoints need someone's attention.

use actix_web::web;
use askama::Template;

use super::guard::Admin;
use super::render::{ok, Layout, PageResult, Section};
use crate::clock::now_ms;
use crate::store::{Counts, Endpoint};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(["", "/"]).route(web::get().to(overview)));
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    page: Layout,
    counts: Counts,
    troubled: Vec<Endpoint>,
}

impl Overview {
    /// Succeeded share of the deliveries that finished in the last 24 h, if any did.
    fn success_rate(&self) -> Option<String> {
        let done = self.counts.succeeded_24h + self.counts.failed_24h;
        (done > 0).then(|| {
            format!(
                "{:.1} %",
                100.0 * self.counts.succeeded_24h as f64 / done as f64
            )
        })
    }
}

async fn overview(Admin(admin): Admin) -> PageResult {
    let counts = admin.state.store.counts(None, now_ms()).await?;
    let troubled = admin.state.store.troubled_endpoints(50).await?;
    Ok(ok(&Overview {
        page: admin.layout("Overview", Section::Overview),
        counts,
        troubled,
    }))
}
