//! Retention: deletes events (and by cascade their deliveries and attempts) older than
//! `retention`, a few hundred at a time, so the file does not grow forever and a publish
//! never queues behind one huge delete.

use std::time::Duration;

use crate::clock::now_ms;
use crate::lifecycle::Shutdown;
use std::sync::Arc;

use crate::store::Outbox;

const BATCH: usize = 500;

/// How often to look: a tenth of the retention, between 1 s and a minute, so a short
/// retention (tests, tight disks) is honoured closely and a long one costs nothing.
fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

pub fn run(store: Arc<dyn Outbox>, retention: Duration, shutdown: Shutdown) {
    let every = interval(retention);
    while !shutdown.is_set() {
        let before = now_ms() - retention.as_millis() as i64;
        loop {
            match store.prune(before, BATCH) {
                Ok(n) if n == BATCH && !shutdown.is_set() => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(pruned = n, "pruned old events");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning failed; will try again");
                    break;
                }
            }
        }
        if shutdown.sleep(every) {
            return;
        }
    }
}
