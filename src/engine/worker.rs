//! Workers send one delivery at a time; the recorder writes their outcomes in batches.
//!
//! A worker signs the stored body, posts it, and turns the response into an
//! `AttemptRecord` with its verdict (`retry::decide`). The record goes to the recorder
//! before the worker tells the dispatcher its slot is free, and the delivery keeps its lease
//! until the record is committed, so it cannot be claimed twice in between.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::{http, retry, EngineStats, Signal};
use crate::clock::now_ms;
use crate::config::Config;
use crate::signing::{self, HeaderNames, SignInput};
use crate::store::outbox::{self, AttemptRecord, Claimed, Verdict};
use crate::store::Store;

pub struct WorkerContext {
    pub work: Arc<Mutex<mpsc::Receiver<Claimed>>>,
    pub agent: ureq::Agent,
    pub config: Arc<Config>,
    pub results: mpsc::Sender<AttemptRecord>,
    pub signals: mpsc::Sender<Signal>,
    pub stopping: Arc<AtomicBool>,
    pub busy: Arc<AtomicUsize>,
    pub stats: Arc<EngineStats>,
}

pub fn run(ctx: WorkerContext) {
    let names = HeaderNames {
        prefix: ctx.config.signature_prefix.clone(),
        body_header: ctx.config.body_signature_header.clone(),
    };
    loop {
        let next = match ctx.work.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(delivery) = next else { return };
        if ctx.stopping.load(Ordering::SeqCst) {
            continue; // not sent: its lease is released at shutdown
        }
        ctx.busy.fetch_add(1, Ordering::SeqCst);
        let record = attempt(&ctx, &names, &delivery);
        count(&ctx.stats, &record);
        let gone = record.gone;
        let _ = ctx.results.send(record);
        ctx.busy.fetch_sub(1, Ordering::SeqCst);
        let _ = ctx.signals.send(Signal::Done {
            endpoint: delivery.endpoint_id,
            gone,
        });
    }
}

fn count(stats: &EngineStats, record: &AttemptRecord) {
    stats.attempts.fetch_add(1, Ordering::Relaxed);
    if record.verdict == Verdict::Succeeded {
        stats.succeeded.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends one delivery and describes what happened.
fn attempt(ctx: &WorkerContext, names: &HeaderNames, d: &Claimed) -> AttemptRecord {
    let span = tracing::info_span!("attempt", tenant = %d.tenant_id, endpoint = d.endpoint_id,
        event = %d.event_id, delivery = d.delivery_id);
    let _enter = span.enter();
    let started_at = now_ms();
    let schemes = d
        .schemes
        .as_deref()
        .unwrap_or(&ctx.config.signature_schemes);
    let mut headers = signing::sign(
        schemes,
        names,
        &SignInput {
            event_id: &d.event_id,
            timestamp: started_at / 1000,
            body: d.body.as_bytes(),
            secret: &d.secret,
            previous_secret: d.previous_secret.as_deref(),
        },
    );
    // An extra header never replaces or doubles one Herald sets: a receiver that reads
    // the first `X-Webhook-Signature` must get ours.
    let ours: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    headers.extend(
        d.headers
            .map()
            .iter()
            .filter(|(k, _)| !ours.contains(&k.to_ascii_lowercase()))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let response = http::post(&ctx.agent, &d.url, &headers, &d.body);
    let status = response.status;
    let success = status.is_some_and(|s| (200..300).contains(&s));
    let gone = status == Some(410);
    let retry_after = match status {
        Some(429) | Some(503) => response.retry_after,
        _ => None,
    };
    let verdict = retry::decide(
        success,
        gone,
        retry_after,
        d.round_attempts + 1,
        &ctx.config.retry_schedule,
        now_ms(),
    );
    let error = response.error.or_else(|| match status {
        Some(s) if (300..400).contains(&s) => Some(format!("HTTP {s}: redirects are not followed")),
        Some(s) if !success => Some(format!("HTTP {s}")),
        _ => None,
    });
    tracing::debug!(status = ?status, ms = response.duration.as_millis() as u64, ?verdict, "attempt done");
    AttemptRecord {
        delivery_id: d.delivery_id,
        endpoint_id: d.endpoint_id,
        started_at,
        duration_ms: response.duration.as_millis() as i64,
        status_code: status,
        error,
        response_headers: status.map(|_| response.headers),
        response_body: response.body,
        verdict,
        gone,
    }
}

/// Writes outcomes: blocks for the first, takes every other one already waiting, and
/// commits them as one writer job. Then tells the dispatcher which 410s are written and
/// wakes it, since a retry may now be due sooner than it planned to look.
pub fn record(
    results: mpsc::Receiver<AttemptRecord>,
    store: Store,
    disable_after: Duration,
    signals: mpsc::Sender<Signal>,
) {
    let disable_after_ms = disable_after.as_millis() as i64;
    while let Ok(first) = results.recv() {
        let mut batch = vec![first];
        batch.extend(results.try_iter().take(1023));
        let n = batch.len();
        let gone: Vec<i64> = batch
            .iter()
            .filter(|r| r.gone)
            .map(|r| r.endpoint_id)
            .collect();
        let written = store.write_blocking(move |c| {
            outbox::record_attempts(c, &batch, disable_after_ms, now_ms())
        });
        if let Err(e) = written {
            // Not recorded: the leases expire and the deliveries are sent again.
            tracing::error!(error = %e, attempts = n, "recording attempts failed");
        }
        // Sent even if the write failed: the dispatcher must not hold an endpoint back
        // forever; the store's status decides from here on.
        for endpoint in gone {
            let _ = signals.send(Signal::GoneRecorded(endpoint));
        }
        let _ = signals.send(Signal::Wake);
    }
}
