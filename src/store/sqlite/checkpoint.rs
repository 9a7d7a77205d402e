//! WAL checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold, so one
//! unlucky publish waits for a whole checkpoint. The writer connection has it turned off
//! (`wal_autocheckpoint = 0`); this thread runs a PASSIVE checkpoint on its own connection
//! every `INTERVAL`, which copies what it can without blocking the writer or readers. Once
//! readers let go, the writer starts the WAL over from the top, and `journal_size_limit`
//! (in `connection.rs`) trims the file back, so it stays small.
//!
//! A failing checkpoint (an fsync of the database file refused, an I/O error) loses
//! nothing: SQLite advances its count of copied frames only after the database file is
//! synced, so every frame stays in the WAL (already synced at its commit) and the next
//! checkpoint copies it again. It is not harmless either: the WAL then grows without bound
//! toward a full disk. So a failure is logged at ERROR (the first, then at most once a
//! minute with the count), counted (`herald_checkpoint_failures_total`), and `/readyz`
//! answers 503 once the WAL is past `wal_alarm_size` while checkpoints keep failing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection;
use crate::lifecycle::Shutdown;
use crate::store::{Result, WriterStats};

/// Twice a second: often enough that the WAL never grows far past `journal_size_limit`
/// under a sustained publish rate, and a PASSIVE checkpoint with nothing to copy is nearly
/// free.
const INTERVAL: Duration = Duration::from_millis(500);

/// The least time between two ERROR lines about failing checkpoints.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Stops the thread when the store is dropped: the store outlives the engine (the recorder
/// writes while the engine stops), so its threads end with it, not with the process's token.
pub struct Checkpointer {
    stop: Shutdown,
    state: Arc<State>,
}

/// What the checkpointer saw last, for `/metrics` and `/readyz`.
#[derive(Default)]
struct State {
    failures: AtomicU64,
    /// The last checkpoint failed.
    failing: AtomicBool,
    wal_bytes: AtomicU64,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Checkpointer> {
        let conn = connection::open_plain(path)?;
        let stop = Shutdown::default();
        let state = Arc::new(State::default());
        let (token, seen) = (stop.clone(), state.clone());
        let wal = wal_path(path);
        std::thread::Builder::new()
            .name("herald-checkpoint".into())
            .spawn(move || {
                let mut log = Throttled::default();
                while !token.sleep(INTERVAL) {
                    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    seen.failing.store(result.is_err(), Ordering::SeqCst);
                    if let Err(e) = result {
                        let total = seen.failures.fetch_add(1, Ordering::Relaxed) + 1;
                        log.failed(&e, total);
                    }
                    // Absent between a truncation and the next write: 0 bytes.
                    let bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                    seen.wal_bytes.store(bytes, Ordering::Relaxed);
                }
            })
            .map_err(|e| crate::store::StoreError::Open(format!("checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop, state })
    }

    /// Adds what the checkpointer saw to the writer's figures.
    pub fn fill(&self, stats: &mut WriterStats) {
        stats.checkpoint_failures = self.state.failures.load(Ordering::Relaxed);
        stats.checkpoint_failing = self.state.failing.load(Ordering::SeqCst);
        stats.wal_bytes = self.state.wal_bytes.load(Ordering::Relaxed);
    }
}

/// `herald.db` → `herald.db-wal`, as SQLite names it.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Logs the first failure at once, then at most one line per `LOG_EVERY` with the count:
/// a checkpoint runs twice a second, and a disk that refuses one refuses them all.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
}

impl Throttled {
    fn failed(&mut self, e: &rusqlite::Error, total: u64) {
        if self.last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        tracing::error!(
            error = %e,
            failures = total,
            "WAL checkpoint failed: the WAL keeps every commit but grows until a checkpoint \
             succeeds; check the disk (dmesg) and free space"
        );
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}
