//! `/admin`: how the deployment is doing — what waits in the queue, what the last day's
//! attempts did, which deliveries failed for good, which endpoints need someone's
//! attention, and charts of the last 24 hours and 7 days.
//!
//! Attempts and deliveries are different things and the cards keep them apart: a failed
//! attempt is usually retried; a delivery fails only after its last retry. The success rate
//! is the attempts' (what `/metrics` counts as `herald_attempts_total`).
//!
//! Every figure comes from a rollup or a bounded read (`store::activity`): the page costs
//! the same with a million deliveries of history as with ten.

use super::resource::page;
use actix_web::web;
use askama::Template;

use super::charts::{self, Chart, DAY, HOUR};
use super::guard::Admin;
use super::render::{ok, Layout, PageResult, Section};
use crate::clock::now_ms;
use crate::store::{Endpoint, Gauges};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page(web::resource(["", "/"])).get(overview));
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    page: Layout,
    gauges: Gauges,
    attempts_succeeded: i64,
    attempts_failed: i64,
    deliveries_failed: i64,
    charts: Vec<Chart>,
    troubled: Vec<Endpoint>,
}

impl Overview {
    /// Succeeded share of the last 24 h's attempts, if any were made.
    fn success_rate(&self) -> Option<String> {
        let all = self.attempts_succeeded + self.attempts_failed;
        (all > 0).then(|| {
            format!(
                "{:.1} %",
                100.0 * self.attempts_succeeded as f64 / all as f64
            )
        })
    }
}

async fn overview(Admin(admin): Admin) -> PageResult {
    let store = &admin.state.store;
    let now = now_ms();
    let hours = charts::slots(now, HOUR, 24);
    let days = charts::slots(now, DAY, 7);
    let hourly = store.attempt_buckets(hours[0], HOUR).await?;
    let daily = store.attempt_buckets(days[0], DAY).await?;
    let latency = store.first_attempt_latency(hours[0]).await?;
    // The cards use the same 24 whole hours as the hourly chart, so they agree with it.
    let (attempts_succeeded, attempts_failed) = hourly
        .iter()
        .fold((0, 0), |(s, f), b| (s + b.succeeded, f + b.failed));
    let charts = vec![
        charts::attempts_chart(
            "chart-hourly",
            "Attempts per hour, last 24 h",
            &hourly,
            &hours,
            HOUR,
        ),
        charts::attempts_chart(
            "chart-daily",
            "Attempts per day, last 7 days",
            &daily,
            &days,
            DAY,
        ),
        charts::latency_histogram_chart(
            "chart-latency",
            "Publish → first attempt, per hour",
            &latency,
            &hours,
            HOUR,
        ),
    ];
    Ok(ok(&Overview {
        page: admin.layout("Overview", Section::Overview),
        gauges: store.gauges().await?,
        attempts_succeeded,
        attempts_failed,
        deliveries_failed: store.deliveries_failed_since(hours[0]).await?,
        charts,
        troubled: store.troubled_endpoints(50).await?,
    }))
}
