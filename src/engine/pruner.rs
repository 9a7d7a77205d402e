//! Retention: deletes events (and by cascade their deliveries and attempts) older than
//! `retention`, a few hundred at a time, so the file does not grow forever and a publish
//! never queues behind one huge delete.
//!
//! The same thread looks at the endpoints' client certificates every few seconds and raises
//! `herald.endpoint.certificate_expiring` once per certificate when it has 14 days or less
//! left (the store marks it announced in the event's transaction); a renewed certificate
//! is a new fingerprint, announced again when its turn comes.

use std::time::Duration;

use crate::clock::now_ms;
use crate::lifecycle::Shutdown;
use std::sync::Arc;

use serde_json::json;

use crate::domain::ClientCert;
use crate::store::Outbox;

/// Rows per delete statement. Each batch is one short write transaction; on SQLite the
/// single writer serves publishes between batches, so this bounds how long one publish
/// can wait behind retention.
const BATCH: usize = 500;

/// How often to look: a tenth of the retention, between 1 s and a minute, so a short
/// retention (tests, tight disks) is honoured closely and a long one costs nothing.
fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The pruner thread's loop. The cutoff is recomputed every round from the clock, so a
/// process that runs for months keeps a sliding window rather than the start-up one.
pub fn run(store: Arc<dyn Outbox>, retention: Duration, shutdown: Shutdown) {
    let every = interval(retention);
    let tick = every.min(CERTIFICATE_CHECK);
    let mut next_prune = std::time::Instant::now();
    while !shutdown.is_set() {
        certificates(&*store, now_ms());
        if std::time::Instant::now() < next_prune {
            if shutdown.sleep(tick) {
                return;
            }
            continue;
        }
        next_prune = std::time::Instant::now() + every;
        let before = now_ms() - retention.as_millis() as i64;
        loop {
            match store.prune(before, BATCH) {
                // A full batch means more is due: keep going, but pause so the writer is
                // not monopolised and publishes interleave with the backlog.
                Ok(n) if n == BATCH && !shutdown.is_set() => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(pruned = n, "pruned old events");
                    }
                    break;
                }
                // A failed prune loses nothing (the rows are still there, just old): log and
                // retry next interval rather than stop retention for the process lifetime.
                Err(e) => {
                    tracing::warn!(error = %e, "pruning failed; will try again");
                    break;
                }
            }
        }
        if shutdown.sleep(tick) {
            return;
        }
    }
}

/// How often client certificates are looked at: a new endpoint's near expiry is announced
/// within seconds.
const CERTIFICATE_CHECK: Duration = Duration::from_secs(5);

/// Announces each client certificate that expires within `CERT_WARNING_DAYS` (policy here,
/// once for both backends; the store only lists and marks).
pub fn certificates(store: &dyn Outbox, now: i64) {
    let listed = match store.client_certificates() {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list client certificates; will try again");
            return;
        }
    };
    for (endpoint, pem, announced) in listed {
        let Some(cert) = ClientCert::from_stored(pem, String::new()) else {
            continue;
        };
        let info = cert.info();
        if announced.as_deref() == Some(&info.fingerprint_sha256)
            || !info.expires_within(now, super::CERT_WARNING_DAYS)
        {
            continue;
        }
        let data = json!({
            "subject": info.subject,
            "issuer": info.issuer,
            "fingerprint_sha256": info.fingerprint_sha256,
            "not_after": crate::clock::rfc3339_seconds(info.not_after),
            "expired": info.not_after <= now,
        });
        match store.announce_certificate(endpoint, info.fingerprint_sha256.clone(), data, now) {
            Ok(true) => tracing::warn!(
                endpoint,
                not_after = %crate::clock::rfc3339_seconds(info.not_after),
                "an endpoint's client certificate expires soon"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, endpoint, "cannot announce a certificate"),
        }
    }
}
