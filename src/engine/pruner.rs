//! Retention: deletes events (and by cascade their deliveries and attempts) older than
//! `retention`, a few hundred at a time, so the file does not grow forever and a publish
//! never queues behind one huge delete.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::store::{outbox, Store};

const BATCH: usize = 500;

/// How often to look: a tenth of the retention, between 1 s and a minute, so a short
/// retention (tests, tight disks) is honoured closely and a long one costs nothing.
fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

pub fn run(store: Store, retention: Duration, stopping: Arc<AtomicBool>) {
    let every = interval(retention);
    while !stopping.load(Ordering::Relaxed) {
        let before = now_ms() - retention.as_millis() as i64;
        loop {
            match store.write_blocking(move |c| outbox::prune(c, before, BATCH)) {
                Ok(n) if n == BATCH && !stopping.load(Ordering::Relaxed) => {
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
        // Sleep in short steps so shutdown is not held up.
        for _ in 0..every.as_millis().div_ceil(250) {
            if stopping.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
