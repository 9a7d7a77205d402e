//! Retention: deletes events (and by cascade their deliveries and attempts) older than
//! `retention`, a few hundred at a time, so the file does not grow forever and a publish
//! never queues behind one huge delete.

use std::time::Duration;

use crate::clock::now_ms;
use crate::lifecycle::Shutdown;
use std::sync::Arc;

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
    while !shutdown.is_set() {
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
        if shutdown.sleep(every) {
            return;
        }
    }
}
